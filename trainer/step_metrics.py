"""The record one training step logs: what was played, credited and trained, and where the
step's wall time went (names: docs/metrics.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..rollouts.metrics import rollout_time_split, summarize
from ..rollouts.trajectory import Trajectory


@dataclass
class StepTimes:
    """Seconds of one step: waiting for groups (`rollout`), credit, update, sync, and the
    engine's idle seconds over the whole step."""

    rollout: float = 0.0
    credit: float = 0.0
    update: float = 0.0
    sync: float = 0.0
    iteration: float = 0.0
    engine_idle: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def step_metrics(iteration: int, *, version: int, played: list[Trajectory],
                 rollout_metrics: dict[str, float], credit_metrics: dict[str, float],
                 train_metrics: dict[str, float], tool_stats: dict[str, float],
                 times: StepTimes, tools: bool = True) -> dict[str, Any]:
    """One flat record; the credit stage's `train/...` numbers (recomputed logprob gap, reward
    KL) take precedence over the update's own; the update's statistics go under `train/`
    unless they name their own family (`offpolicy/...` when the loss corrects). Without `tools` (the suite has none) there are
    no tool metrics."""
    generated = sum(t.num_response_tokens() for t in played)
    trained = train_metrics.get("trained_tokens", 0.0)
    wall = max(times.iteration, 1e-9)
    busy = max(times.iteration - times.engine_idle, 1e-9)
    return {
        "iteration": iteration, "policy_version": version,
        **summarize(played, tools=tools), **rollout_time_split(played, times.rollout), **tool_stats,
        **rollout_metrics,
        **{k if "/" in k else f"train/{k}": v for k, v in train_metrics.items()},
        "train/loss": train_metrics.get("pg_loss", float("nan")),
        "train/kl": train_metrics.get("approx_kl", float("nan")),
        **credit_metrics,
        "time/rollout": times.rollout, "time/credit": times.credit, "time/update": times.update,
        "time/sync": times.sync, "time/iteration": times.iteration, **times.extra,
        "time/engine_idle_share": min(1.0, times.engine_idle / wall),
        "time/trainer_idle_share": min(1.0, times.rollout / wall),
        "perf/gen_tokens_per_s": generated / busy,
        "perf/train_tokens_per_s": trained / max(times.update, 1e-9),
        "perf/tokens_per_s": (generated + trained) / wall,
    }
