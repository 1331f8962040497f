"""The RL loop: rollout -> credit -> update -> weight sync, for N iterations.

Read it top to bottom: `train` sets everything up, then each iteration plays groups of episodes
with the current policy, turns their rewards into per-token advantages, updates the policy and
hands the new weights to the inference engine.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import credit
from ..agent.chat import ChatFormatter
from ..agent.engines import SamplingParams, make_engine
from ..envs.base import make_suite
from ..rollouts.batch import build_batch
from ..rollouts.episode import EpisodeSettings
from ..rollouts.metrics import summarize
from ..rollouts.orchestrator import Orchestrator
from ..rollouts.staleness import split_stale
from .backends.torch_backend import TorchBackend
from .config import Config
from .models import load_policy, pick_device, resolve_model
from .runlog import RunLog
from .sft import sft


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
    credit.check_options(cfg.credit.estimator, cfg.credit.options)
    suite = make_suite(cfg.env.name, **cfg.env.options)
    log = RunLog(cfg)
    echo(f"run folder: {log.dir}")

    # The policy twice: the trainer's copy learns, the engine's copy serves rollouts.
    path = resolve_model(cfg.model)
    model, tokenizer = load_policy(path, cfg.model.dtype)
    device = pick_device(cfg.train.device)
    engine = make_engine(cfg.engine.kind, path, tokenizer, device=pick_device(cfg.engine.device),
                         dtype=cfg.model.dtype, max_batch=cfg.engine.max_batch,
                         batch_wait_ms=cfg.engine.batch_wait_ms)
    formatter = ChatFormatter(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else formatter.eos_id
    r = cfg.rollout
    sampling = SamplingParams(temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                              stop=tuple(r.stop))
    settings = EpisodeSettings(mode=r.mode, history=r.history, max_turns=r.max_turns,
                               max_tokens_per_turn=r.max_tokens_per_turn,
                               max_episode_tokens=r.max_episode_tokens,
                               show_admissible=r.show_admissible, sampling=sampling,
                               template_mismatch=r.template_mismatch)
    orchestrator = Orchestrator(engine, suite, formatter, settings,
                                max_concurrency=r.max_concurrency,
                                max_tool_concurrency=r.max_tool_concurrency, schedule=r.schedule,
                                quiet=cfg.log.quiet)
    eval_tasks = suite.tasks(cfg.eval.split, cfg.eval.tasks, cfg.seed + 1) if cfg.eval.tasks else []
    greedy = EpisodeSettings(**{**settings.__dict__, "sampling": SamplingParams(
        temperature=0.0 if cfg.eval.greedy else r.temperature, stop=tuple(r.stop))})

    async def evaluate(tag: str) -> dict[str, float]:
        if not eval_tasks:
            return {}
        trajs = await orchestrator.rollout(eval_tasks, group_size=1, tag=tag, settings=greedy)
        return summarize(trajs, prefix="eval/")

    # Cold start: imitate the environment's oracle.
    if cfg.sft.episodes:
        demos = await orchestrator.demonstrations(
            suite.tasks(cfg.env.train_split, cfg.sft.episodes, cfg.seed + 2), tag="sft")
        stats = sft(model, demos, epochs=cfg.sft.epochs, lr=cfg.sft.lr,
                    rows_per_step=cfg.sft.rows_per_step, pad_id=pad_id, device=device, seed=cfg.seed)
        engine.load_weights(((n, p.detach()) for n, p in model.named_parameters()), version=0)
        log.log({"iteration": -1, **stats})
        echo(f"sft: {int(stats['sft/rows'])} rows, loss {stats['sft/loss_first']:.3f} -> "
             f"{stats['sft/loss_last']:.3f}")

    backend = TorchBackend(model, cfg.train, cfg.loss, temperature=r.temperature, device=device,
                           seed=cfg.seed)
    eval_before = await evaluate("eval-before")
    if eval_before:
        log.log({"iteration": 0, **eval_before})
        echo(f"eval before: success {eval_before['eval/success']:.3f}")

    history = []
    for iteration in range(cfg.train.iterations):
        started = time.perf_counter()
        tasks = suite.tasks(cfg.env.train_split, r.tasks_per_iteration,
                            cfg.seed * 100_003 + iteration)
        trajs = await orchestrator.rollout(tasks, group_size=r.group_size, tag=f"it{iteration}")
        rollout_s = time.perf_counter() - started

        tick = time.perf_counter()
        usable = [t for t in trajs if t.turns and t.status != "failed"]
        # Off-policy guard: refuse samples from a policy older than max_staleness versions.
        usable, stale = split_stale(usable, current_version=engine.version,
                                    max_staleness=r.max_staleness)
        per_turn = credit.compute(cfg.credit.estimator, usable, cfg.credit.options)
        batch = build_batch(usable, pad_id=pad_id)
        credit.assign_advantages(batch, per_turn)
        credit_s = time.perf_counter() - tick

        tick = time.perf_counter()
        if cfg.train.old_logprobs == "recompute":
            batch.old_logprobs = backend.forward_logprobs(batch)
        train_metrics = backend.update(batch)
        update_s = time.perf_counter() - tick

        tick = time.perf_counter()
        engine.load_weights(backend.state_dict_for_engine(), version=iteration + 1)
        sync_s = time.perf_counter() - tick

        generated = sum(t.num_response_tokens() for t in trajs)
        metrics = {
            "iteration": iteration + 1,
            "policy_version": engine.version,
            "rollout/stale_dropped": float(len(stale)),
            **summarize(trajs),
            **{f"train/{k}": v for k, v in train_metrics.items()},
            "train/loss": train_metrics["pg_loss"],
            "train/kl": train_metrics["approx_kl"],
            "time/rollout": rollout_s, "time/credit": credit_s, "time/update": update_s,
            "time/sync": sync_s, "time/iteration": time.perf_counter() - started,
            "perf/gen_tokens_per_s": generated / max(rollout_s, 1e-9),
            "perf/train_tokens_per_s": train_metrics["trained_tokens"] / max(update_s, 1e-9),
            "perf/tokens_per_s": (generated + train_metrics["trained_tokens"])
            / max(time.perf_counter() - started, 1e-9),
        }
        if cfg.eval.every and (iteration + 1) % cfg.eval.every == 0:
            metrics.update(await evaluate(f"eval-{iteration + 1}"))
        log.log(metrics)
        log.save_trajectories(iteration + 1, usable, per_turn, formatter.decode,
                              cfg.log.save_trajectories)
        history.append(metrics)
        if not cfg.log.quiet:
            echo(f"iter {iteration + 1}/{cfg.train.iterations}  reward {metrics['rollout/reward']:.3f}"
                 f"  success {metrics['rollout/success']:.3f}  loss {metrics['train/loss']:.4f}"
                 f"  kl {metrics['train/kl']:.2e}  clipfrac {metrics['train/clipfrac']:.3f}"
                 f"  {metrics['time/iteration']:.1f}s")

    eval_after = await evaluate("eval-after")
    if eval_after:
        log.log({"iteration": cfg.train.iterations, **eval_after})
        echo(f"eval after: success {eval_after['eval/success']:.3f} "
             f"(before {eval_before.get('eval/success', float('nan')):.3f})")
    # The final policy, loadable with from_pretrained (turnwise eval RUN_DIR reads it).
    model.save_pretrained(log.dir / "policy")
    tokenizer.save_pretrained(log.dir / "policy")
    log.write_summary({"eval_before": eval_before, "eval_after": eval_after,
                       "iterations": cfg.train.iterations})
    await engine.close()
    return RunResult(str(log.dir), history, eval_before, eval_after)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
