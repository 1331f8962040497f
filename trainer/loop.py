"""The RL loop: rollout -> credit -> update -> weight sync, for N iterations.

Read it top to bottom: `train` sets everything up, then each iteration plays groups of episodes
with the current policy, turns their rewards into per-token advantages, updates the policy and
hands the new weights to the inference engine. Under torchrun/deepspeed every rank runs all of
it on its own task groups (SPMD); only rank 0 writes the run folder.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import credit
from ..agent.chat import ChatFormatter
from ..agent.engines import SamplingParams, make_engine
from ..envs.base import make_suite, suite_tool_metrics, suite_tool_schemas
from ..rollouts.batch import build_batch
from ..rollouts.episode import EpisodeSettings
from ..rollouts.metrics import summarize
from ..rollouts.orchestrator import Orchestrator
from ..rollouts.arpo import ArpoSettings
from ..rollouts.staleness import split_stale
from .backends.base import make_backend, rl_schedule
from .checkpoint import find_resume, load_checkpoint, save_checkpoint, trim_metrics
from .config import Config
from .credit_steps import check_credit, dynamic_sampling, prepare, trainable
from .dist import init_world, rank_zero_log
from .evaluate import evaluate_policy
from .losses import truncated_is_weights
from .models import load_tokenizer, pick_device, resolve_model
from .reference import attach_reference, kl_penalised, masked_mean_abs_diff
from .report.episode_metrics import episode_extras, rollout_time_split
from .report.progress import TrainProgress
from .runlog import RunLog
from .sft import sft
from .sft_cache import check_cacheable, save_sft, sft_cache_path, sft_seed


@dataclass
class RunResult:
    run_dir: str
    history: list[dict[str, Any]]
    eval_before: dict[str, float]
    eval_after: dict[str, float]


def train(cfg: Config, *, echo=print) -> RunResult:
    """Run the recipe `cfg` to completion; returns where its outputs went and what it measured."""
    return asyncio.run(_train(cfg, echo))


async def _train(cfg: Config, echo) -> RunResult:
    seed_everything(cfg.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    check_credit(cfg.credit)
    suite = make_suite(cfg.env.name, **cfg.env.options)
    world = init_world(cfg.train.backend, tasks_per_iteration=cfg.rollout.tasks_per_iteration)
    if cfg.deterministic:
        use_deterministic_kernels()
    resume_dir, checkpoint = world.broadcast(find_resume(cfg) if world.is_main else None)
    if resume_dir is not None:  # continue in the folder of the run being resumed
        cfg.log.dir, cfg.log.run_name = str(resume_dir.parent), resume_dir.name
    echo = echo if world.is_main else _quiet
    log = rank_zero_log(world, lambda: RunLog(cfg))
    echo(f"run folder: {log.dir}")

    # The chat format and the episode settings: the oracle's demonstrations need them, the
    # engine and the learner only the policy's weights (a cached SFT folder keeps this tokenizer).
    path = resolve_model(cfg.model)
    tokenizer = load_tokenizer(path)
    # Tool suites with JSON calls (hermes) list their tool schemas through the chat template.
    formatter = ChatFormatter(tokenizer, tools=suite_tool_schemas(suite))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else formatter.eos_id
    r = cfg.rollout
    sampling = SamplingParams(temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                              stop=tuple(r.stop))
    settings = EpisodeSettings(mode=r.mode, history=r.history, max_turns=r.max_turns,
                               max_tokens_per_turn=r.max_tokens_per_turn,
                               max_episode_tokens=r.max_episode_tokens,
                               show_admissible=r.show_admissible, sampling=sampling,
                               template_mismatch=r.template_mismatch,
                               step_timeout=r.step_timeout)
    # Deterministic mode plays one episode at a time, so no request's numbers depend on which
    # others the engine happened to batch it with. The engine joins once the weights are known.
    orchestrator = Orchestrator(None, suite, formatter, settings,
                                max_concurrency=1 if cfg.deterministic else r.max_concurrency,
                                max_tool_concurrency=r.max_tool_concurrency, schedule=r.schedule,
                                quiet=cfg.log.quiet,
                                arpo=ArpoSettings(**r.arpo.model_dump()) if r.arpo else None)

    # Cold start: the oracle's demonstrations (a resumed run has done it already). They also key
    # the SFT cache, so a changed oracle or prompt format never loads a stale policy; a cached
    # policy then replaces SFT and loads already imitating the oracle.
    sft_now, demos, sft_cached = bool(cfg.sft.episodes) and checkpoint is None, [], None
    if sft_now:
        demos = await orchestrator.demonstrations(world.shard(
            suite.tasks(cfg.env.train_split, cfg.sft.episodes, sft_seed(cfg) + 2)), tag="sft")
    if sft_now and cfg.sft.cache:
        check_cacheable(cfg)
        sft_cached = sft_cache_path(cfg, path, demos)
        if (sft_cached / "config.json").exists():
            echo(f"sft: cached policy {sft_cached}")
            path, sft_now, demos = str(sft_cached), False, []

    # The policy twice: the backend's copy learns, the engine's copy serves rollouts.
    device = pick_device(cfg.train.device, world.local_rank)
    engine = make_engine(cfg.engine.kind, path, tokenizer,
                         device=pick_device(cfg.engine.device, world.local_rank),
                         dtype=cfg.model.dtype, max_batch=cfg.engine.max_batch,
                         batch_wait_ms=cfg.engine.batch_wait_ms)
    orchestrator.engine = engine
    backend = make_backend(cfg, path, world=world, device=device)
    eval_tasks = suite.tasks(cfg.eval.split, cfg.eval.tasks, cfg.seed + 1) if cfg.eval.tasks else []
    greedy = EpisodeSettings(**{**settings.__dict__, "sampling": SamplingParams(
        temperature=0.0 if cfg.eval.greedy else r.temperature, stop=tuple(r.stop))})

    async def evaluate(tag: str) -> dict[str, float]:
        if not eval_tasks or not world.is_main:
            return {}
        # The same function as `turnwise eval`: success with its interval, score, pass@1, turns.
        trajs, metrics = await evaluate_policy(orchestrator, eval_tasks, settings=greedy, tag=tag)
        return {**metrics, **episode_extras(trajs, "eval/")}

    async def play(iteration: int, roll: int = 0) -> list:
        """This rank's groups of fresh train tasks (roll > 0: a DAPO re-roll)."""
        tasks = world.shard(suite.tasks(cfg.env.train_split, r.tasks_per_iteration,
                                        cfg.seed * 100_003 + iteration + 1_000_003 * roll))
        return await orchestrator.rollout(tasks, group_size=r.group_size,
                                          tag=f"it{iteration}" + (f"r{roll}" if roll else ""),
                                          seed=rollout_seed(cfg, iteration + 1_000_003 * roll,
                                                            world.rank))

    # Cold start: imitate the environment's oracle.
    if sft_now:
        stats = sft(backend, demos, epochs=cfg.sft.epochs, lr=cfg.sft.lr,
                    rows_per_step=cfg.sft.rows_per_step, pad_id=pad_id, seed=sft_seed(cfg),
                    lr_schedule=cfg.sft.lr_schedule)
        backend.begin_phase(rl_schedule(cfg))  # RL starts with fresh optimizer moments
        engine.load_weights(backend.state_dict_for_engine(), version=0)
        if sft_cached is not None:
            save_sft(backend, tokenizer, sft_cached, cfg)
        log.log({"iteration": -1, **stats})
        echo(f"sft: {int(stats['sft/rows'])} rows, loss {stats['sft/loss_first']:.3f} -> "
             f"{stats['sft/loss_last']:.3f}")

    # RL draws the same numbers whether SFT just ran or came from the cache.
    seed_everything(cfg.seed + 1)

    # The reference policy (only with KL), then resuming from a checkpoint.
    if cfg.kl.coef:
        reference = attach_reference(backend, cfg, path, log.dir,
                                     sft_done=sft_now)
        echo(f"kl reference: {reference}")
    start = 0
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, backend, world)
        engine.load_weights(backend.state_dict_for_engine(), version=state["engine_version"])
        start = state["iteration"]
        if world.is_main:
            trim_metrics(log.metrics_path, start)
        echo(f"resumed from {checkpoint} at iteration {start}")
    eval_before = await evaluate("eval-before") if checkpoint is None else {}
    if eval_before:
        log.log({"iteration": 0, **eval_before})
        echo(f"eval before: success {eval_before['eval/success']:.3f}")

    history = []
    my_groups = len(world.shard(range(r.tasks_per_iteration)))  # groups this rank trains on
    progress = TrainProgress(cfg.train.iterations, quiet=cfg.log.quiet or not world.is_main,
                             echo=echo, start=start)
    progress.watch(backend)  # optimizer steps on the bar during the update
    for iteration in range(start, cfg.train.iterations):
        # 1. Rollout: groups of episodes with the current policy.
        started = time.perf_counter()
        progress.phase("rollout")
        suite_tool_metrics(suite, reset=True)  # tools/...: count this iteration's calls only
        trajs = await play(iteration)
        usable, credit_metrics = trainable(trajs), {}
        if cfg.credit.dynamic_sampling is not None:  # DAPO: re-roll groups with equal rewards
            usable, trajs, credit_metrics = await dynamic_sampling(
                trajs, lambda roll: play(iteration, roll), want=my_groups,
                max_rolls=cfg.credit.dynamic_sampling.max_rolls)
        rollout_s = time.perf_counter() - started
        tool_stats = suite_tool_metrics(suite, reset=True)

        # 2. Credit: shaping and scoring passes, the estimator, per-token advantages.
        progress.phase("credit")
        tick = time.perf_counter()
        # Off-policy guard: refuse samples from a policy older than max_staleness versions.
        usable, stale = split_stale(usable, current_version=engine.version,
                                    max_staleness=r.max_staleness)
        usable, prepared = prepare(usable, cfg.credit, model=backend.model, tokenizer=tokenizer,
                                   temperature=r.temperature)
        credit_metrics.update(prepared)
        # Groups whose episodes all scored alike give GRPO-style estimators no outcome signal.
        credit_metrics["credit/flat_groups"] = credit.flat_group_fraction(usable)
        batch = build_batch(usable, pad_id=pad_id)
        scoring, rollout_logprobs = {}, batch.old_logprobs
        if cfg.kl.coef:
            batch.ref_logprobs = backend.forward_logprobs(batch, reference=True)
        if cfg.train.old_logprobs == "recompute":
            batch.old_logprobs = backend.forward_logprobs(batch)
            scoring["train/rollout_logprob_diff"] = masked_mean_abs_diff(
                batch.old_logprobs, rollout_logprobs, batch.loss_mask)
        if cfg.kl.coef and cfg.kl.target == "reward":
            usable, scoring["train/ref_kl"] = kl_penalised(usable, batch, cfg.kl)
        per_turn = credit.compute(cfg.credit.estimator, usable, cfg.credit.options)
        credit.assign_advantages(batch, per_turn)
        if cfg.loss.tis_cap:  # truncated importance sampling, folded into the advantages
            batch.advantages = batch.advantages * truncated_is_weights(
                batch.old_logprobs, rollout_logprobs, batch.loss_mask, cfg.loss.tis_cap)
        credit_s = time.perf_counter() - tick
        # A sample of whole groups, scored by the trainer before the update moves it. Sharded
        # backends (ZeRO-3) need every rank in a forward pass, so only one process scores it.
        log.save_trajectories(iteration + 1, usable, per_turn, batch,
                              backend if world.size == 1 else None, tokenizer)

        # 3. Update the policy.
        progress.phase("update")
        tick = time.perf_counter()
        train_metrics = backend.update(batch)
        update_s = time.perf_counter() - tick

        # 4. Hand the new weights to the engine.
        progress.phase("sync")
        tick = time.perf_counter()
        engine.load_weights(backend.state_dict_for_engine(), version=iteration + 1)
        sync_s = time.perf_counter() - tick

        generated = sum(t.num_response_tokens() for t in trajs)
        metrics = {
            "iteration": iteration + 1,
            "policy_version": engine.version,
            "rollout/stale_dropped": float(len(stale)),
            **summarize(trajs),
            **episode_extras(trajs), **rollout_time_split(trajs, rollout_s),
            **tool_stats,
            **credit_metrics,
            **{f"train/{k}": v for k, v in train_metrics.items()},
            **scoring,
            "train/loss": train_metrics["pg_loss"],
            "train/kl": train_metrics["approx_kl"],
            "time/rollout": rollout_s, "time/credit": credit_s, "time/update": update_s,
            "time/sync": sync_s, "time/iteration": time.perf_counter() - started,
            "perf/gen_tokens_per_s": generated / max(rollout_s, 1e-9),
            "perf/train_tokens_per_s": train_metrics["trained_tokens"] / max(update_s, 1e-9),
            "perf/tokens_per_s": (generated + train_metrics["trained_tokens"])
            / max(time.perf_counter() - started, 1e-9),
        }
        metrics = world.reduce_metrics(metrics, summed=("rollout/episodes", "rollout/status_", "perf/"))
        if cfg.eval.every and (iteration + 1) % cfg.eval.every == 0:
            progress.phase("eval")
            metrics.update(await evaluate(f"eval-{iteration + 1}"))
        log.log(metrics)
        log.plot(iteration + 1)  # every log.plot_every iterations
        history.append(metrics)
        if cfg.checkpoint.every and (iteration + 1) % cfg.checkpoint.every == 0:
            save_checkpoint(log.dir, iteration + 1, backend, world, keep=cfg.checkpoint.keep,
                            meta={"engine_version": engine.version,
                                  "tasks_seen": (iteration + 1) * r.tasks_per_iteration})
        progress.iteration_done(metrics)  # bar + one summary line
    progress.close()

    eval_after = await evaluate("eval-after")
    if eval_after:
        log.log({"iteration": cfg.train.iterations, **eval_after})
        echo(f"eval after: success {eval_after['eval/success']:.3f} "
             f"(before {eval_before.get('eval/success', float('nan')):.3f})")
    # The final policy, loadable with from_pretrained (turnwise eval RUN_DIR reads it).
    backend.save_pretrained(str(log.dir / "policy"))
    if world.is_main:
        tokenizer.save_pretrained(log.dir / "policy")
    # sft_policy: the cached SFT model RL started from (None: no SFT, or SFT not cached).
    log.write_summary({"eval_before": eval_before, "eval_after": eval_after,
                       "iterations": cfg.train.iterations,
                       "sft_policy": str(sft_cached) if sft_cached is not None else None})
    log.close()  # final plots, tensorboard and wandb closed
    await engine.close()
    return RunResult(str(log.dir), history, eval_before, eval_after)


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


def rollout_seed(cfg: Config, iteration: int, rank: int) -> int | None:
    """Per-request sampling seeds in deterministic mode (distinct per iteration and rank)."""
    if not cfg.deterministic:
        return None
    return ((cfg.seed * 100_003 + iteration) * 1024 + rank) * 100_000


def _quiet(*args, **kwargs) -> None:
    """`echo` on ranks other than 0."""
