"""MoPPS (Qu et al. 2025, "Can Prompt Difficulty be Online Predicted for Accelerating RL
Finetuning of Reasoning Models?"): predict each prompt's success rate instead of measuring it.

Each prompt's success rate has a Beta(alpha, beta) posterior, starting at the prior
(alpha_0, beta_0) = (1, 1). A group of n episodes with s successes updates it, with a temporal
discount lambda that forgets old evidence as the policy moves:

    alpha <- lambda * alpha + (1 - lambda) * alpha_0 + s
    beta  <- lambda * beta  + (1 - lambda) * beta_0  + (n - s)

A step of B groups draws `candidates` x B prompts uniformly (without repetition), samples
theta_i ~ Beta(alpha_i, beta_i) for each (Thompson sampling) and keeps the B whose theta_i is
closest to the target success rate gamma* (0.5). No rollouts are spent on the prediction.
Defaults: prior (1, 1), target 0.5 and top-B selection as in the authors' code
(thu-rllab/MoPPS); lambda = 1 (no forgetting) and 4 candidates per group are this module's
choices, set them as the paper's experiment requires.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .pool import TaskPool
from .samplers import Observed, register


@register("mopps")
class Mopps:
    """Beta posterior per prompt, Thompson-sampled towards a target success rate."""

    def __init__(self, pool: TaskPool, settings) -> None:
        cfg = settings.mopps
        self.pool, self.prior = pool, (cfg.prior_alpha, cfg.prior_beta)
        self.decay, self.target, self.candidates = cfg.decay, cfg.target, cfg.candidates
        self.posterior: dict[int, tuple[float, float]] = {}  # position -> (alpha, beta)
        self.chosen: list[int] = []  # the last step's selection (for its part shares)

    def beta(self, position: int) -> tuple[float, float]:
        return self.posterior.get(position, self.prior)

    def select(self, count: int, rng: np.random.Generator) -> list[int]:
        size = min(len(self.pool), self.candidates * count)
        candidates = rng.choice(len(self.pool), size=size, replace=False)
        a, b = np.array([self.beta(int(p)) for p in candidates]).T
        theta = rng.beta(a, b)
        order = np.argsort(np.abs(theta - self.target), kind="stable")
        self.chosen = [int(candidates[i]) for i in order[:count]]
        return list(self.chosen)

    def update(self, observed: Observed) -> None:
        (a0, b0), lam = self.prior, self.decay
        for position, outcome in observed:
            a, b = self.beta(position)
            s, n = outcome.successes, outcome.episodes
            self.posterior[position] = (lam * a + (1 - lam) * a0 + s,
                                        lam * b + (1 - lam) * b0 + (n - s))

    def probabilities(self) -> dict[str, float]:
        """Each part's share of the last step's selection (Thompson draws have no closed form)."""
        chosen = self.chosen
        return {part: (sum(1 for p in chosen if self.pool.part_of(p) == part) / len(chosen)
                       if chosen else len(ps) / len(self.pool))
                for part, ps in self.pool.parts.items()}

    def part_metrics(self, part: str) -> dict[str, float]:
        means = [a / (a + b) for a, b in (self.beta(p) for p in self.pool.parts[part])]
        return {f"task_sampling/{part}/predicted_pass_rate": float(np.mean(means))}

    def state(self) -> dict[str, Any]:
        return {"posterior": [[p, a, b] for p, (a, b) in sorted(self.posterior.items())],
                "chosen": list(self.chosen)}

    def load(self, state: dict[str, Any]) -> None:
        self.posterior = {int(p): (float(a), float(b)) for p, a, b in state["posterior"]}
        self.chosen = [int(p) for p in state["chosen"]]
