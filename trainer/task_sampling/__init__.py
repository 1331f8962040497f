"""Which tasks to train on: the task-sampling stage in front of the rollout stage.

`uniform` (the default) draws as turnwise always has; `dump`, `difficulty_band` and `mopps`
choose from a pool of tasks split into parts (task kinds) and learn from what each step trained.
See docs/task_sampling.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...envs.base import EnvSuite
from ..config import TaskSamplingConfig
from ..dist import World
from ..rollout_stage import SuiteSource
from . import band, dump, mopps  # noqa: F401  (register the samplers)
from .outcomes import GroupOutcome, group_outcomes, step_metrics
from .pool import TaskPool
from .samplers import SAMPLERS
from .source import SampledSource, SuiteDraws

TaskSource = SuiteDraws | SampledSource


def build_task_source(settings: TaskSamplingConfig, suite: EnvSuite, split: str, world: World, *,
                      tasks_per_step: int, group_size: int, seed: int, seeded: bool,
                      state: dict[str, Any] | None = None,
                      done: Iterable[int] = ()) -> TaskSource:
    """This rank's task source; `state` is its checkpointed state, `done` the groups the
    checkpoint counts as trained."""
    seeds = SuiteSource(suite, split, tasks_per_step=tasks_per_step, world=world, seed=seed,
                        group_size=group_size, seeded=seeded)
    if settings.sampler == "uniform" and not settings.pool:
        if state is not None:
            raise ValueError(f"the checkpoint holds task sampling state of sampler "
                             f"{state.get('sampler')!r}, but this run draws uniformly without a "
                             f"pool; allowed: the checkpoint's task_sampling settings")
        return SuiteDraws(seeds)
    pool = TaskPool.draw(suite, split, settings.pool, seed=seed, world=world)
    if len(pool) < seeds.share:
        raise ValueError(f"task_sampling.pool={settings.pool}: rank {world.rank} holds "
                         f"{len(pool)} of its tasks but plays {seeds.share} groups per step; "
                         f"allowed: pool >= rollout.tasks_per_iteration")
    sampler = SAMPLERS[settings.sampler](pool, settings)
    return SampledSource(pool, sampler, seeds, seed=seed, rank=world.rank, state=state,
                         done=done)


__all__ = [
    "SAMPLERS",
    "GroupOutcome",
    "SampledSource",
    "SuiteDraws",
    "TaskPool",
    "TaskSource",
    "build_task_source",
    "group_outcomes",
    "step_metrics",
]
