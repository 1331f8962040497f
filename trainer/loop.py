"""The RL loop: build the run, start from SFT or a checkpoint, then step: rollout -> credit ->
update -> weight sync, for N iterations.

The rollout stage is a producer (rollouts.producer) that plays whole groups on the event loop
while the trainer's work (credit, update, sync) runs on a thread of its own, so generation and
environment steps go on while the policy updates. `rollout.max_staleness: k` lets the producer
play k steps' groups ahead (asynchronous training); k = 0 plays each step's groups only once
the trainer asks for them, which is the synchronous loop. Under torchrun/deepspeed every rank
runs all of it on its own task groups (SPMD); only rank 0 writes the run folder.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..envs.base import suite_has_tools, suite_tool_metrics
from ..rollouts.producer import GroupProducer
from ..rollouts.progress import make_progress
from .build import Run, basics, build_run, eval_settings
from .checkpoint import (
    earlier_run,
    find_resume,
    load_checkpoint,
    save_checkpoint,
    superseded_from,
    trim_metrics,
)
from .cold_start import ColdStart, plan_cold_start, run_sft
from .config import Config
from .credit_stage import CreditStage
from .dist import World, init_world, rank_zero_log
from .engine_factory import refuse_training
from .evaluate import Evaluation
from .losses import Correction
from .models import resolve_model
from .recipe import RecipeError
from .reference import attach_reference
from .report.commands import next_commands
from .report.progress import TrainProgress
from .rollout_stage import StepPolicy, take_step
from .runlog import RunLog
from .step_metrics import StepTimes, step_metrics
from .task_sampling import TaskSource, build_task_source


@dataclass
class RunResult:
    run_dir: str
    history: list[dict[str, Any]]
    eval_before: dict[str, float]
    eval_after: dict[str, float]


# Engine counters reported per step as engine/<name> (agent/engines/server.py keeps them).
ENGINE_FAULTS = ("retries", "taken_out", "readmitted")


def train(cfg: Config, *, echo=print) -> RunResult:
    """Run the recipe `cfg` to completion; returns where its outputs went and what it measured."""
    return asyncio.run(_train(cfg, echo))


async def _train(cfg: Config, echo) -> RunResult:
    refuse_training(cfg.engine)  # an engine that cannot train stops before anything starts
    seed_everything(cfg.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    world = init_world(cfg.train.backend, tasks_per_iteration=cfg.rollout.tasks_per_iteration)
    if cfg.deterministic:
        use_deterministic_kernels()
    resume_dir, checkpoint = world.broadcast(
        find_resume(cfg.resume, log_dir=cfg.log.dir, run_name=cfg.log.run_name, name=cfg.name)
        if world.is_main else None)
    if resume_dir is not None:  # continue in the folder of the run being resumed
        cfg.log.dir, cfg.log.run_name = str(resume_dir.parent), resume_dir.name
    elif problem := world.broadcast(earlier_run(cfg.log.dir, cfg.log.run_name, cfg.resume)
                                    if world.is_main else None):
        raise RecipeError(problem)
    echo = echo if world.is_main else _quiet
    model_path = resolve_model(cfg.model)  # one that cannot load stops before a run folder
    run_dir = Path(cfg.log.dir) / cfg.log.run_name if cfg.log.run_name else None
    purge_from = superseded_from(run_dir, checkpoint) if world.is_main else None
    log = rank_zero_log(world, lambda: RunLog(cfg.log, name=cfg.name, resolved=cfg.model_dump(),
                                              purge_from=purge_from))
    echo(f"run folder: {log.dir}")
    if checkpoint is None and purge_from is not None:
        # resume=auto found no checkpoint in a folder that holds a run: start over there.
        echo(f"no checkpoint to resume in {log.dir}: starting over (its metrics.jsonl cleared, "
             "its tensorboard steps hidden)")
        log.metrics_path.write_text("")
    base = basics(cfg, model_path)
    start = await plan_cold_start(cfg, base, model_path, world=world,
                                  resuming=checkpoint is not None, echo=echo)
    run = build_run(cfg, base, start.model_path, world=world)
    try:
        return await _rl(cfg, run, start, checkpoint, world, log, echo)
    finally:
        await run.close()


async def _rl(cfg: Config, run: Run, start: ColdStart, checkpoint, world: World, log,
              echo) -> RunResult:
    engine, backend = run.engine, run.backend
    run_sft(cfg, run, start, log=log, echo=echo)
    seed_everything(cfg.seed + 1)  # RL draws the same numbers whether SFT ran or was cached
    if cfg.kl.coef:
        reference = attach_reference(backend, start.model_path, log.dir, lora=cfg.lora.enabled,
                                     sft_done=bool(start.demos))
        echo(f"kl reference: {reference}")
    first, producer_state = 0, None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, backend, world)
        engine.load_weights(backend.state_dict_for_engine(), version=state["engine_version"])
        first, producer_state = state["iteration"], state["rank_state"]
        if world.is_main:
            trim_metrics(log.metrics_path, first)
        echo(f"resumed from {checkpoint} at iteration {first}")
    evaluation = Evaluation(run.basics.suite.tasks(cfg.eval.split, cfg.eval.tasks,
                                                   cfg.eval.seed_for(cfg.seed))
                            if cfg.eval.tasks and world.is_main else [], eval_settings(cfg))
    eval_before = await evaluation.run(run.orchestrator, "eval-before") if checkpoint is None else {}
    if eval_before:
        log.log({"iteration": 0, **eval_before})
        echo(f"eval before: success {eval_before['eval/success']:.3f}")

    trainer = Trainer.build(cfg, run, world, log, producer_state, first=first, echo=echo)
    history, last_eval = [], {}
    try:
        for iteration in range(first, cfg.train.iterations):
            metrics = await trainer.step(iteration)
            if cfg.eval.every and (iteration + 1) % cfg.eval.every == 0:
                trainer.progress.phase("eval")
                last_eval = await evaluation.run(run.orchestrator, f"eval-{iteration + 1}")
                metrics.update(last_eval)
            log.log(metrics)
            log.plot(iteration + 1)  # every log.plot_every iterations
            history.append(metrics)
            if cfg.checkpoint.every and (iteration + 1) % cfg.checkpoint.every == 0:
                save_checkpoint(log.dir, iteration + 1, backend, world, keep=cfg.checkpoint.keep,
                                meta={"engine_version": engine.version,
                                      "tasks_seen": (iteration + 1) * cfg.rollout.tasks_per_iteration},
                                rank_state={**trainer.producer.state(),
                                            "task_sampling": trainer.source.state()})
            trainer.progress.iteration_done(metrics)  # bar + one summary line
    finally:
        await trainer.close()

    # The last iteration's evaluation, when it had one, is the evaluation after training.
    evaluated_last = cfg.eval.every and cfg.train.iterations % cfg.eval.every == 0 and history
    eval_after = last_eval if evaluated_last else await evaluation.run(run.orchestrator,
                                                                       "eval-after")
    if eval_after:
        if not evaluated_last:
            log.log({"iteration": cfg.train.iterations, **eval_after})
        echo(f"eval after: success {eval_after['eval/success']:.3f} "
             f"(before {eval_before.get('eval/success', float('nan')):.3f})")
    # The final policy, loadable with from_pretrained (turnwise eval RUN_DIR reads it).
    backend.save_pretrained(str(log.dir / "policy"))
    if world.is_main:
        run.basics.tokenizer.save_pretrained(log.dir / "policy")
    # sft_policy: the cached SFT model RL started from (None: no SFT, or SFT not cached).
    log.write_summary({"eval_before": eval_before, "eval_after": eval_after,
                       "iterations": cfg.train.iterations,
                       "sft_policy": str(start.cache) if start.cache is not None else None})
    log.close()  # final plots, tensorboard and wandb closed
    echo(next_commands(log.dir))
    return RunResult(str(log.dir), history, eval_before, eval_after)


@dataclass
class Trainer:
    """One training step at a time: take a step's groups from the producer, credit them,
    update the policy and sync the engine. The trainer's work runs on `worker`, one thread, so
    the event loop (the producer's episodes) never waits for it."""

    run: Run
    world: World
    log: Any
    producer: GroupProducer
    policy: StepPolicy
    credit: CreditStage
    progress: TrainProgress
    worker: ThreadPoolExecutor
    source: TaskSource  # which task each group plays; learns from what each step trained
    replayed: int = 0  # groups a resumed run plays again (reported once)
    sleep_engine: bool = False  # engine.sleep_during_update
    engine_faults: dict[str, int] = field(default_factory=dict)  # the engine's counts so far

    @classmethod
    def build(cls, cfg: Config, run: Run, world: World, log, producer_state, *, first: int,
              echo) -> Trainer:
        r = cfg.rollout
        done, replayed = GroupProducer.resume(producer_state)
        source = build_task_source(cfg.task_sampling, run.basics.suite, cfg.env.train_split, world,
                                   tasks_per_step=r.tasks_per_iteration, group_size=r.group_size,
                                   seed=cfg.seed, seeded=cfg.deterministic, done=done,
                                   state=(producer_state or {}).get("task_sampling"))
        quiet = cfg.log.quiet or not world.is_main
        producer = GroupProducer(run.orchestrator, source, group_size=r.group_size,
                                 lookahead=r.max_staleness * source.share, done=done,
                                 progress=make_progress("rollout", quiet=quiet,
                                                        tools=suite_has_tools(run.basics.suite)))
        ds = cfg.credit.dynamic_sampling
        policy = StepPolicy(groups=source.share, max_staleness=r.max_staleness,
                            stale_groups=r.stale_groups, max_rolls=ds.max_rolls if ds else None)
        fix = cfg.loss.is_correction
        credit = CreditStage(cfg.credit, cfg.kl, backend=run.backend,
                             tokenizer=run.basics.tokenizer, pad_id=run.basics.pad_id,
                             temperature=r.temperature,
                             proximal=cfg.train.old_logprobs,
                             correction=Correction(**fix.model_dump()) if fix else None)
        progress = TrainProgress(cfg.train.iterations, quiet=quiet, echo=echo, start=first)
        progress.watch(run.backend)  # optimizer steps on the bar during the update
        suite_tool_metrics(run.basics.suite, reset=True)  # tools/...: training episodes only
        # CUDA's current device is per thread: the worker trains on this rank's GPU.
        worker = ThreadPoolExecutor(1, thread_name_prefix="trainer",
                                    initializer=_bind_device, initargs=(world.local_rank,))
        trainer = cls(run, world, log, producer, policy, credit, progress, worker, source,
                      replayed, cfg.engine.sleep_during_update)
        trainer._engine_faults()  # faults before training (SFT, the first eval) are not a step's
        return trainer

    async def step(self, iteration: int) -> dict[str, Any]:
        """One step; the record it logs."""
        engine, backend, suite = self.run.engine, self.run.backend, self.run.basics.suite
        times, started = StepTimes(), time.perf_counter()
        idle_before = self.run.orchestrator.clock.idle_seconds()
        # 1. Rollout: whole groups, played with the newest weights the engine has.
        self.progress.phase("rollout")
        taken = await take_step(self.producer, self.policy, version=engine.version)
        tool_stats = suite_tool_metrics(suite, reset=True)  # tools/...: calls since last step
        times.rollout = time.perf_counter() - started
        trajectories = taken.trajectories()
        if not trajectories:  # every episode failed: nothing to learn from, nothing to sync
            return self._record(iteration, taken, {}, {}, tool_stats, times, started, idle_before)
        # 2. Credit: shaping, scoring passes, KL, estimator, per-token advantages, correction.
        self.progress.phase("credit")
        credited = await self._on_worker(self.credit, trajectories, iteration)
        times.credit = time.perf_counter() - started - times.rollout
        # The task sampler learns from the groups this step examined: outcomes, advantages.
        sampling_metrics = self.source.feedback(taken, credited.per_turn)
        # A sample of whole groups, scored by the trainer before the update moves it. Sharded
        # backends (ZeRO-3) need every rank in a forward pass, so only one process scores it.
        await self._on_worker(self.log.save_trajectories, iteration + 1, credited.trajectories,
                              credited.per_turn, credited.batch,
                              backend if self.world.size == 1 else None, self.run.basics.tokenizer)
        # 3. Update the policy, while the producer keeps playing (or the engine sleeps).
        self.progress.phase("update")
        tick = time.perf_counter()
        if self.sleep_engine:
            await engine.sleep()
        train_metrics = await self._on_worker(backend.update, credited.batch)
        if self.sleep_engine:
            await engine.wake()
        times.update = time.perf_counter() - tick
        # 4. Hand the new weights to the engine; episodes in flight go on with them.
        self.progress.phase("sync")
        tick = time.perf_counter()
        await self._on_worker(lambda: engine.load_weights(backend.state_dict_for_engine(),
                                                          version=iteration + 1))
        times.sync = time.perf_counter() - tick
        return self._record(iteration, taken, {**credited.metrics, **sampling_metrics},
                            train_metrics, tool_stats, times, started, idle_before)

    def _record(self, iteration, taken, credit_metrics, train_metrics, tool_stats, times,
                started, idle_before) -> dict[str, Any]:
        times.iteration = time.perf_counter() - started
        times.engine_idle = self.run.orchestrator.clock.idle_seconds() - idle_before
        rollout_metrics = {**taken.metrics, "async/in_flight": float(self.producer.in_flight),
                           **self._engine_faults()}
        if self.replayed:
            rollout_metrics["async/replayed_groups"], self.replayed = float(self.replayed), 0
        if not train_metrics:
            rollout_metrics["train/skipped_no_data"] = 1.0
        metrics = step_metrics(iteration + 1, version=self.run.engine.version,
                               played=taken.played(), rollout_metrics=rollout_metrics,
                               credit_metrics=credit_metrics, train_metrics=train_metrics,
                               tool_stats=tool_stats, times=times,
                               tools=suite_has_tools(self.run.basics.suite))
        return self.world.reduce_metrics(metrics, summed=("rollout/episodes", "rollout/status_",
                                                          "perf/", "engine/"))

    def _engine_faults(self) -> dict[str, float]:
        """Retried requests and servers taken out or readmitted since the last step (engines
        that serve over a network count them; the others have none)."""
        stats = getattr(self.run.engine, "stats", {})
        now = {key: stats[key] for key in ENGINE_FAULTS if key in stats}
        deltas = {f"engine/{key}": float(value - self.engine_faults.get(key, 0))
                  for key, value in now.items()}
        self.engine_faults = now
        return deltas

    async def _on_worker(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)

    async def close(self) -> None:
        await self.producer.close()
        self.progress.close()
        self.producer.progress.close()
        self.worker.shutdown(wait=True)


def _bind_device(local_rank: int) -> None:
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def use_deterministic_kernels() -> None:
    """Kernels that give the same bits on every run (cuBLAS needs its workspace fixed first).

    An op without a deterministic kernel warns instead of stopping the run.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def _quiet(*args, **kwargs) -> None:
    """`echo` on ranks other than 0."""
