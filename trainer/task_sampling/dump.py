"""DUMP (Wang et al. 2025, "Automated Distribution-Level Curriculum Learning for RL-based LLM
Post-training"): how much a distribution still has to teach is its expected |advantage|.

Per part j: the mean |advantage| of its last `window` episodes (L_j, 0 before any) and n_j, the
episodes it has had in all (N = sum n_j). Its UCB score is

    s_j = L_j + c * sqrt(2 ln(N + 1) / (n_j + 1))

and the sampling probabilities are softmax(s / temperature). Defaults as in the reference
implementation (ZhentingWang/DUMP): window 300, c = 1, temperature 0.1. Episodes, not groups,
are the samples (the reference counts responses).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from .pool import TaskPool
from .samplers import Observed, draw_by_part, register


@register("dump")
class Dump:
    """Distribution-level UCB over mean |advantage| in a sliding window (see the module)."""

    def __init__(self, pool: TaskPool, settings) -> None:
        cfg = settings.dump
        self.pool, self.c, self.temperature = pool, cfg.exploration, cfg.temperature
        self.windows = {p: deque(maxlen=cfg.window) for p in pool.parts}
        self.counts = {p: 0 for p in pool.parts}

    def scores(self) -> dict[str, float]:
        """Each part's UCB score s_j."""
        total = sum(self.counts.values())
        return {p: (float(np.mean(w)) if w else 0.0)
                + self.c * math.sqrt(2.0 * math.log(total + 1) / (self.counts[p] + 1))
                for p, w in self.windows.items()}

    def probabilities(self) -> dict[str, float]:
        scores = self.scores()
        top = max(scores.values())
        weights = {p: math.exp((s - top) / self.temperature) for p, s in scores.items()}
        total = sum(weights.values())
        return {p: w / total for p, w in weights.items()}

    def select(self, count: int, rng: np.random.Generator) -> list[int]:
        return draw_by_part(self.pool, self.probabilities(), count, rng)

    def update(self, observed: Observed) -> None:
        for _, outcome in observed:
            self.windows[outcome.part].extend(outcome.abs_advantages)
            self.counts[outcome.part] += len(outcome.abs_advantages)

    def part_metrics(self, part: str) -> dict[str, float]:
        window = self.windows[part]
        return {f"task_sampling/{part}/ucb": self.scores()[part],
                f"task_sampling/{part}/window_adv_abs": float(np.mean(window)) if window else 0.0}

    def state(self) -> dict[str, Any]:
        return {"windows": {p: list(w) for p, w in self.windows.items()},
                "counts": dict(self.counts)}

    def load(self, state: dict[str, Any]) -> None:
        for part, values in state["windows"].items():
            self.windows[part].extend(values)
        self.counts.update(state["counts"])
