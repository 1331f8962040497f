"""Task sources for the rollout stage: which task group g plays, and what the sampler learns
from the groups a step trained.

Groups are numbered as in `SuiteSource`: slot g // B, position g % B (B: this rank's groups
per step), and a group's sampling seed is `SuiteSource`'s. `uniform` without a pool *is*
`SuiteSource` (same tasks, same seeds); the other samplers choose a whole slot from the pool the
first time one of its groups starts, with a generator seeded by (run seed, rank, slot), and
keep each started group's task until that group is fed back, so a resumed run replays a started
group with the very task it had.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ...envs.base import Task
from ..rollout_stage import SuiteSource, Taken
from .outcomes import group_outcomes, step_metrics
from .pool import TaskPool, part_name
from .samplers import Sampler


class SuiteDraws:
    """`uniform` without a pool: `SuiteSource`'s tasks and seeds, untouched; feedback only
    measures (the probability of a part is its share of the tasks handed out since the last
    step: the suite's fixed mix)."""

    def __init__(self, source: SuiteSource) -> None:
        self.source, self.share = source, source.share
        self.handed: Counter[str] = Counter()

    def task(self, index: int) -> Task:
        task = self.source.task(index)
        self.handed[part_name(task.kind)] += 1
        return task

    def seed(self, index: int) -> int | None:
        return self.source.seed(index)

    def feedback(self, taken: Taken, per_turn: Sequence[np.ndarray]) -> dict[str, float]:
        """This step's `task_sampling/...` metrics."""
        total = sum(self.handed.values())
        probabilities = {p: n / total for p, n in self.handed.items()}
        self.handed.clear()
        return step_metrics(group_outcomes(taken, per_turn), probabilities)

    def state(self) -> dict[str, Any] | None:
        """Nothing to keep: the draws are functions of the group index."""
        return None


class SampledSource:
    """A pool and a sampler that chooses from it, slot by slot (see the module docstring)."""

    def __init__(self, pool: TaskPool, sampler: Sampler, seeds: SuiteSource, *, seed: int,
                 rank: int, state: dict[str, Any] | None = None, done: Iterable[int] = ()) -> None:
        self.pool, self.sampler, self.seeds = pool, sampler, seeds
        self.share, self.entropy = seeds.share, [seed % 2**63, rank]
        self.assigned: dict[int, int] = {}  # group index -> pool position, until fed back
        if state is not None:
            self._load(state, set(done))

    def task(self, index: int) -> Task:
        if index not in self.assigned:
            slot = index // self.share
            rng = np.random.default_rng(self.entropy + [slot])
            for k, position in enumerate(self.sampler.select(self.share, rng)):
                self.assigned.setdefault(slot * self.share + k, position)
        return self.pool.tasks[self.assigned[index]]

    def seed(self, index: int) -> int | None:
        return self.seeds.seed(index)

    def feedback(self, taken: Taken, per_turn: Sequence[np.ndarray]) -> dict[str, float]:
        """Teach the sampler this step's groups (any order, any age); their metrics."""
        outcomes = group_outcomes(taken, per_turn)
        observed = []
        for outcome in outcomes:
            position = self.assigned.get(outcome.index)
            if position is None or self.pool.tasks[position].id != outcome.task_id:
                raise RuntimeError(f"group {outcome.index} played task {outcome.task_id!r}, "
                                   f"which this source did not hand out for it")
            observed.append((position, outcome))
        self.sampler.update(observed)
        for group in taken.examined:
            self.assigned.pop(group.index, None)
        return step_metrics(outcomes, self.sampler.probabilities(), self.sampler.part_metrics)

    def state(self) -> dict[str, Any]:
        """The sampler's state and the tasks of groups handed out but not fed back yet."""
        return {"sampler": self.sampler.name, "pool": len(self.pool),
                "first_task": self.pool.tasks[0].id,
                "assigned": [[i, p] for i, p in sorted(self.assigned.items())],
                "state": self.sampler.state()}

    def _load(self, state: dict[str, Any], done: set[int]) -> None:
        mine = (self.sampler.name, len(self.pool), self.pool.tasks[0].id)
        saved = (state["sampler"], state["pool"], state["first_task"])
        if saved != mine:
            raise ValueError(f"the checkpoint's task sampling state is for sampler "
                             f"{saved[0]!r} over a pool of {saved[1]} tasks starting with "
                             f"{saved[2]!r}; this run has {mine}; allowed: the same "
                             f"task_sampling.sampler, task_sampling.pool, seed and env")
        self.sampler.load(state["state"])
        # Groups the checkpoint counts as trained are never played again.
        self.assigned = {int(i): int(p) for i, p in state["assigned"] if int(i) not in done}
