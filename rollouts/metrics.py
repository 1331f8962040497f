"""Summaries of a set of trajectories: reward, success, lengths, statuses, per task type."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from .trajectory import Trajectory


def summarize(trajectories: Sequence[Trajectory], prefix: str = "rollout/", *,
              tools: bool = True) -> dict[str, float]:
    """Means over episodes; statuses as counts that add up to the number of episodes. Tool
    metrics are left out when the suite has no `tools` and no episode called one."""
    n = len(trajectories)
    if n == 0:
        return {f"{prefix}episodes": 0.0}
    turns = [len(t.turns) for t in trajectories]
    total_turns = max(sum(turns), 1)
    out = {
        f"{prefix}episodes": float(n),
        f"{prefix}reward": sum(t.outcome_reward for t in trajectories) / n,
        f"{prefix}success": sum(t.success for t in trajectories) / n,
        f"{prefix}turns": sum(turns) / n,
        f"{prefix}response_tokens": sum(t.num_response_tokens() for t in trajectories) / n,
        f"{prefix}turn_tokens": sum(t.num_response_tokens() for t in trajectories) / total_turns,
        f"{prefix}invalid_rate": sum(x.invalid for t in trajectories for x in t.turns) / total_turns,
        **(_tool_call_stats(trajectories, prefix) if tools or called_tools(trajectories) else {}),
        # Per-episode accounting: where an episode's wall time went, and the prefill it cost.
        f"{prefix}wall_seconds": sum(t.wall_seconds for t in trajectories) / n,
        f"{prefix}gen_seconds": sum(t.gen_seconds for t in trajectories) / n,
        f"{prefix}env_seconds": sum(t.env_seconds for t in trajectories) / n,
        f"{prefix}prompt_tokens": sum(t.prompt_tokens for t in trajectories) / n,
    }
    out.update(_evidence_stats(trajectories, prefix))
    out.update(_branch_stats(trajectories, prefix))
    for status in ("done", "truncated", "failed"):
        out[f"{prefix}status_{status}"] = float(sum(t.status == status for t in trajectories))
    by_kind: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_kind[t.task_kind].append(t)
    if len(by_kind) > 1:
        for kind, group in sorted(by_kind.items()):
            out[f"{prefix}success/{kind}"] = sum(t.success for t in group) / len(group)
    return out


def called_tools(trajectories: Sequence[Trajectory]) -> bool:
    """Whether any turn of `trajectories` called a tool."""
    return any(x.tool_calls for t in trajectories for x in t.turns)


def _tool_call_stats(trajectories: Sequence[Trajectory], prefix: str) -> dict[str, float]:
    """Tool calls per episode, and failed and timed-out ones, from each turn's `tool_calls`
    records (`tools.ToolResult.to_info()`: status ok | error | timeout | invalid, and an
    `error`)."""
    n = len(trajectories)
    calls = [c for t in trajectories for x in t.turns for c in x.tool_calls]
    failed = sum(c.get("status", "ok") != "ok" or bool(c.get("error")) for c in calls)
    timeouts = sum(c.get("status") == "timeout" for c in calls)
    return {f"{prefix}tool_calls": len(calls) / n,
            f"{prefix}tool_errors": sum(bool(x.error) for t in trajectories for x in t.turns) / n,
            f"{prefix}tool_error_rate": failed / max(len(calls), 1),
            f"{prefix}tool_timeouts": timeouts / n}


def rollout_time_split(trajectories: Sequence[Trajectory],
                       rollout_seconds: float) -> dict[str, float]:
    """time/generation and time/tools: `rollout_seconds` divided in proportion to the time
    episodes spent waiting for the engine versus in tools and the environment.

    Episodes overlap, so their summed seconds exceed the wall time; only their ratio is kept.
    """
    gen = sum(x.gen_seconds for t in trajectories for x in t.turns)
    env = sum(x.env_seconds for t in trajectories for x in t.turns)
    share = gen / (gen + env) if gen + env > 0 else 1.0
    return {"time/generation": rollout_seconds * share, "time/tools": rollout_seconds * (1 - share)}


def evidence_counts(trajectories: Sequence[Trajectory]) -> tuple[int, int, int] | None:
    """Over the episodes that report `info["evidence_found"]`: how many do, how many found it,
    and how many of those succeeded (searching vs reading, for a search agent); None if none."""
    checked = [t for t in trajectories if "evidence_found" in t.info]
    if not checked:
        return None
    found = [t for t in checked if t.info["evidence_found"]]
    return len(checked), len(found), sum(t.success for t in found)


def _evidence_stats(trajectories: Sequence[Trajectory], prefix: str) -> dict[str, float]:
    counts = evidence_counts(trajectories)
    if counts is None:
        return {}
    checked, found, solved = counts
    out = {f"{prefix}evidence_found": found / checked}
    if found:
        out[f"{prefix}success_given_evidence"] = solved / found
    return out


def _branch_stats(trajectories: Sequence[Trajectory], prefix: str) -> dict[str, float]:
    """ARPO's branching (rollouts.arpo): how many episodes are forks, where they forked, and
    the response entropy that drives it (each response once: a fork shares its parent's turns);
    nothing when no turn measured its entropy."""
    responses = {id(x): x for t in trajectories for x in t.turns}.values()
    entropies = [x.entropy for x in responses if x.entropy is not None]
    if not entropies:
        return {}
    forks = [t for t in trajectories if t.parent_id is not None]
    out = {f"{prefix}branched": len(forks) / len(trajectories),
           f"{prefix}response_entropy": sum(entropies) / len(entropies)}
    if forks:
        out[f"{prefix}branch_turn"] = sum(t.branch_turn or 0 for t in forks) / len(forks)
    return out
