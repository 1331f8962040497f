"""Online difficulty filtering (Bae et al. 2025, "Online Difficulty Filtering for Reasoning
Oriented Reinforcement Learning"): train on prompts the policy solves sometimes, not always or
never; balanced filtering keeps pass rates in [0.25, 0.75].

The paper measures each prompt by playing it and drops the groups outside the band, spending
rollouts on the filter. Here the sampler predicts instead, as MoPPS does: a prompt is drawn
while its last measured pass rate (its most recent group, any policy version) lies in
[low, high], or while it has never been played; a step is filled from those uniformly without
repetition. When they run short, the prompts whose last pass rate is closest to the band fill
the step (ties at random), so the prompts just outside are measured again. To also drop a step's
own flat groups, combine with `credit.dynamic_sampling`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .pool import TaskPool
from .samplers import Observed, register


@register("difficulty_band")
class DifficultyBand:
    """Prompts whose last pass rate lies in [low, high] (see the module)."""

    def __init__(self, pool: TaskPool, settings) -> None:
        self.pool, self.low, self.high = pool, settings.band.low, settings.band.high
        self.last: dict[int, float] = {}  # position -> pass rate of its most recent group

    def distance(self, position: int) -> float:
        """How far the prompt's last pass rate lies outside the band (0 inside or unmeasured)."""
        rate = self.last.get(position)
        if rate is None:
            return 0.0
        return max(self.low - rate, rate - self.high, 0.0)

    def eligible(self) -> list[int]:
        return [p for p in range(len(self.pool)) if self.distance(p) == 0.0]

    def select(self, count: int, rng: np.random.Generator) -> list[int]:
        eligible = self.eligible()
        if len(eligible) >= count:
            return [eligible[i] for i in rng.choice(len(eligible), size=count, replace=False)]
        others = [p for p in rng.permutation(len(self.pool)).tolist() if self.distance(p) > 0]
        others.sort(key=self.distance)  # stable: the permutation breaks ties
        return eligible + others[:count - len(eligible)]

    def update(self, observed: Observed) -> None:
        for position, outcome in observed:
            self.last[position] = outcome.pass_rate

    def probabilities(self) -> dict[str, float]:
        """Each part's share of the eligible prompts (a step draws among them uniformly)."""
        eligible = self.eligible() or list(range(len(self.pool)))
        return {part: sum(1 for p in eligible if self.pool.part_of(p) == part) / len(eligible)
                for part in self.pool.parts}

    def part_metrics(self, part: str) -> dict[str, float]:
        mine = self.pool.parts[part]
        return {f"task_sampling/{part}/eligible": sum(self.distance(p) == 0.0 for p in mine)
                / len(mine)}

    def state(self) -> dict[str, Any]:
        return {"last": [[p, r] for p, r in sorted(self.last.items())]}

    def load(self, state: dict[str, Any]) -> None:
        self.last = {int(p): float(r) for p, r in state["last"]}
