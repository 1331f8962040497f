"""The finite set of training tasks an adaptive sampler chooses from, split into parts.

A part is one distribution of the mixture: the tasks of one kind (`Task.kind`: math_code's
problem kinds, search_qa's hop counts, household's task types, a dataset row's type). The pool
is drawn once from the suite with the run's seed, as the slot before the first step (slot -1 of
`SuiteSource`'s numbering, so it never repeats a step's draw), and sharded over ranks like every
step's tasks: each rank chooses among its own share.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...envs.base import EnvSuite, Task
from ..dist import World


@dataclass(frozen=True)
class TaskPool:
    """Tasks by position, and the positions of each part (parts in order of first appearance)."""

    tasks: list[Task]
    parts: dict[str, list[int]]

    @classmethod
    def draw(cls, suite: EnvSuite, split: str, size: int, *, seed: int, world: World) -> TaskPool:
        """`size` tasks of `split` drawn with `seed`; this rank's share of them."""
        return cls.of(world.shard(suite.tasks(split, size, seed * 100_003 - 1)))

    @classmethod
    def of(cls, tasks: list[Task]) -> TaskPool:
        parts: dict[str, list[int]] = {}
        for position, task in enumerate(tasks):
            parts.setdefault(part_name(task.kind), []).append(position)
        return cls(list(tasks), parts)

    def part_of(self, position: int) -> str:
        return part_name(self.tasks[position].kind)

    def __len__(self) -> int:
        return len(self.tasks)


def part_name(kind: str) -> str:
    """A task kind as a metric segment (no '/': it separates metric names' levels)."""
    return (kind or "default").replace("/", "_")
