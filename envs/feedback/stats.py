"""Per-attempt counters of the episodes a feedback suite played (`feedback/...` metrics)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class FeedbackStats:
    """Episodes since the last reset: how many attempts each took, at which it was solved, how
    many of its answers repeated an earlier one, and why each feedback was given."""

    max_attempts: int
    attempts: list[int] = field(default_factory=list)
    solved_at: list[int | None] = field(default_factory=list)
    repeats: int = 0
    reasons: Counter = field(default_factory=Counter)

    def add(self, *, attempts: int, solved_at: int | None, repeats: int,
            reasons: list[str]) -> None:
        """Record one finished episode."""
        self.attempts.append(attempts)
        self.solved_at.append(solved_at)
        self.repeats += repeats
        self.reasons.update(reasons)

    def summary(self, *, reset: bool = False) -> dict[str, float]:
        """`feedback/...` metrics ({} before any episode); see trainer/report/metric_names.py."""
        n = len(self.attempts)
        if n == 0:
            return {}
        solved = [a for a in self.solved_at if a is not None]
        retries = sum(max(a - 1, 0) for a in self.attempts)
        feedback_turns = sum(self.reasons.values())
        out = {"feedback/episodes": float(n),
               "feedback/attempts": sum(self.attempts) / n,
               "feedback/attempts_per_solve": sum(solved) / len(solved) if solved else math.nan,
               "feedback/repeat_rate": self.repeats / retries if retries else math.nan}
        for k in range(1, self.max_attempts + 1):
            out[f"feedback/success@{k}"] = sum(a <= k for a in solved) / n
        for reason, count in sorted(self.reasons.items()):
            out[f"feedback/reason/{reason}"] = count / feedback_turns
        if reset:
            self.attempts, self.solved_at, self.repeats = [], [], 0
            self.reasons = Counter()
        return out
