"""Episode metrics the plots need beyond `rollouts.metrics.summarize`: per-turn length, tool error
rate, where the episodes' time went, and the rollout wall time split between engine and tools."""

from __future__ import annotations

from collections.abc import Sequence

from ...rollouts.trajectory import Trajectory


def episode_extras(trajectories: Sequence[Trajectory],
                   prefix: str = "rollout/") -> dict[str, float]:
    """Tokens per turn and the tool error rate (engine / tool seconds are in `summarize`)."""
    turns = [turn for t in trajectories for turn in t.turns]
    calls = [call for turn in turns for call in turn.tool_calls]
    failed = sum(1 for call in calls if _call_failed(call))
    return {
        f"{prefix}turn_tokens": sum(len(x.response_ids) for x in turns) / max(len(turns), 1),
        f"{prefix}tool_error_rate": failed / len(calls) if calls else 0.0,
    }


def rollout_time_split(trajectories: Sequence[Trajectory],
                       rollout_seconds: float) -> dict[str, float]:
    """time/generation and time/tools: the rollout's wall time divided in proportion to the time
    episodes spent waiting for the engine versus in tools and the environment.

    Episodes overlap, so their summed seconds exceed the wall time; only their ratio is kept.
    """
    gen = sum(x.gen_seconds for t in trajectories for x in t.turns)
    env = sum(x.env_seconds for t in trajectories for x in t.turns)
    share = gen / (gen + env) if gen + env > 0 else 1.0
    return {"time/generation": rollout_seconds * share, "time/tools": rollout_seconds * (1 - share)}


def _call_failed(call: dict) -> bool:
    # tools.ToolResult.to_info(): status is ok | error | timeout | invalid.
    return call.get("status", "ok") != "ok" or bool(call.get("error"))
