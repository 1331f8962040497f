"""The samplers' contract, their registry, and `uniform` over a pool (with mixture weights).

A sampler chooses pool positions for one step's groups at a time (`select`, with a generator
seeded by the step's slot, so a choice depends on the slot and the sampler's state only), learns
from groups' outcomes (`update`; outcomes may belong to groups chosen several steps ago, in any
order) and reports the probability that its next draw comes from each part. Its whole state is
plain JSON (`state` / `load`), checkpointed per rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from .outcomes import GroupOutcome
from .pool import TaskPool

Observed = Sequence[tuple[int, GroupOutcome]]  # (pool position, outcome of the group there)


class Sampler(Protocol):
    name: str

    def select(self, count: int, rng: np.random.Generator) -> list[int]:
        """Pool positions for `count` groups."""
        ...

    def update(self, observed: Observed) -> None:
        """Learn from groups played at those positions."""
        ...

    def probabilities(self) -> dict[str, float]:
        """Per part, the probability that the next draw comes from it."""
        ...

    def part_metrics(self, part: str) -> dict[str, float]:
        """Sampler-specific `task_sampling/<part>/...` figures."""
        ...

    def state(self) -> dict[str, Any]: ...

    def load(self, state: dict[str, Any]) -> None: ...


SAMPLERS: dict[str, type] = {}


def register(name: str):
    """Class decorator: the sampler `task_sampling.sampler: name` builds."""

    def decorate(cls: type) -> type:
        if name in SAMPLERS:
            raise ValueError(f"task sampler {name!r} is registered twice")
        cls.name = name
        SAMPLERS[name] = cls
        return cls

    return decorate


def draw_by_part(pool: TaskPool, probabilities: dict[str, float], count: int,
                 rng: np.random.Generator) -> list[int]:
    """`count` positions: a part by `probabilities`, then one of its tasks uniformly."""
    parts = list(pool.parts)
    p = np.array([probabilities[part] for part in parts], dtype=np.float64)
    chosen = rng.choice(len(parts), size=count, p=p / p.sum())
    return [pool.parts[parts[j]][int(rng.integers(len(pool.parts[parts[j]])))] for j in chosen]


@register("uniform")
class UniformPool:
    """Each part with its mixture weight (default: its share of the pool, so every task is
    equally likely), then a task of that part uniformly."""

    def __init__(self, pool: TaskPool, settings) -> None:
        weights = settings.weights or {p: len(ps) for p, ps in pool.parts.items()}
        if set(weights) != set(pool.parts):
            raise ValueError(f"task_sampling.weights names {sorted(weights)}; the pool's parts "
                             f"(task kinds) are {sorted(pool.parts)}: give each of them a weight "
                             f"(0 leaves a part out)")
        total = sum(weights.values())
        if total <= 0:
            raise ValueError(f"task_sampling.weights={weights}: the weights of the pool's parts "
                             f"sum to {total}; allowed: a positive sum")
        self.pool = pool
        self.weights = {p: weights[p] / total for p in pool.parts}

    def select(self, count: int, rng: np.random.Generator) -> list[int]:
        return draw_by_part(self.pool, self.weights, count, rng)

    def update(self, observed: Observed) -> None:
        """Fixed weights: nothing to learn."""

    def probabilities(self) -> dict[str, float]:
        return dict(self.weights)

    def part_metrics(self, part: str) -> dict[str, float]:
        return {}

    def state(self) -> dict[str, Any]:
        return {}

    def load(self, state: dict[str, Any]) -> None:
        """Stateless."""
