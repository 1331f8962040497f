"""The policy RL starts from: the recipe's model, or the model after SFT on the environment
oracle's demonstrations, or the cached result of that very SFT.

The demonstrations are played before any weights are loaded (the oracle needs none); they key
the SFT cache, so a changed oracle or prompt format never loads a stale policy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..rollouts.trajectory import Trajectory
from .backends.base import rl_schedule
from .build import Basics, Run, orchestrator
from .checkpoint import SFT_ITERATION
from .config import Config
from .dist import World
from .report.progress import SFTBar
from .sft import sft
from .sft_cache import check_cacheable, save_sft, sft_cache_path, sft_seed


@dataclass
class ColdStart:
    """Where RL's weights come from, and the SFT still to run (no demonstrations: none)."""

    model_path: str
    demos: list[Trajectory] = field(default_factory=list)
    cache: Path | None = None  # the SFT cache folder this run reads or writes
    demo_seconds: float = 0.0  # spent playing the demonstrations


async def plan_cold_start(cfg: Config, base: Basics, model_path: str, *, world: World,
                          resuming: bool, echo) -> ColdStart:
    """Play the demonstrations SFT needs; a cached policy of the same SFT replaces them."""
    if not cfg.sft.episodes or resuming:  # a resumed run has done it already
        return ColdStart(model_path)
    tasks = base.suite.tasks(cfg.env.train_split, cfg.sft.episodes, sft_seed(cfg) + 2)
    started = time.perf_counter()
    demos = await orchestrator(cfg, base, None, main=world.is_main).demonstrations(
        world.shard(tasks), tag="sft")
    seconds = time.perf_counter() - started
    if not cfg.sft.cache:
        return ColdStart(model_path, demos, demo_seconds=seconds)
    check_cacheable(cfg)
    cache = sft_cache_path(cfg, model_path, demos, world)
    # Every rank loads the cached policy or none does (ranks on machines that do not share the
    # cache folder train SFT again).
    if world.sum([float((cache / "config.json").exists())]) == [world.size]:
        echo(f"sft: cached policy {cache}")
        return ColdStart(str(cache), [], cache, seconds)
    return ColdStart(model_path, demos, cache, seconds)


def run_sft(cfg: Config, run: Run, start: ColdStart, *, log: Any, echo) -> None:
    """Imitate the demonstrations, then hand the weights to the engine as version 0."""
    if not start.demos:
        if start.demo_seconds:  # played only to find the cached policy
            log.log({"iteration": SFT_ITERATION, "time/sft_demonstrations": start.demo_seconds})
        return
    s = cfg.sft
    backend = run.backend
    quiet = cfg.log.quiet or not backend.world.is_main
    stats = sft(backend, start.demos, epochs=s.epochs, lr=s.lr, rows_per_step=s.rows_per_step,
                pad_id=run.basics.pad_id, seed=sft_seed(cfg), lr_schedule=s.lr_schedule,
                progress=None if quiet else SFTBar(echo=echo))
    backend.begin_phase(rl_schedule(cfg))  # RL starts with fresh optimizer moments
    run.engine.load_weights(backend.state_dict_for_engine(), version=0)
    if start.cache is not None:
        save_sft(backend, run.basics.tokenizer, start.cache, cfg)
    log.log({"iteration": SFT_ITERATION, **stats, "time/sft_demonstrations": start.demo_seconds})
    echo(f"sft: {int(stats['sft/rows'])} rows, loss {stats['sft/loss_first']:.3f} -> "
         f"{stats['sft/loss_last']:.3f} in {stats['time/sft']:.0f}s "
         f"({stats['perf/sft_tokens_per_s']:.0f} tok/s)")
