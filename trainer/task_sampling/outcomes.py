"""What a sampler learns from one step: each examined group's outcome, and the step's metrics.

The credit stage gives one advantage per turn of every trained episode; an episode's |advantage|
is the mean of |A_t| over its turns (outcome estimators give every turn the same value, so it is
|A| itself). Groups the rollout stage dropped because all their episodes scored alike (dynamic
sampling) teach nothing and count with |advantage| 0, which is what GRPO gives them; groups
dropped for their age with differing scores, and groups whose episodes all failed, carry no
advantage of the current policy and are not learnt from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..rollout_stage import Taken, trainable
from .pool import part_name


@dataclass(frozen=True)
class GroupOutcome:
    """One group's record: which task, how many episodes, how many succeeded, whether all
    scored alike, and each episode's |advantage|."""

    index: int
    part: str
    task_id: str
    episodes: int
    successes: int
    flat: bool
    abs_advantages: tuple[float, ...]

    @property
    def pass_rate(self) -> float:
        return self.successes / self.episodes


def group_outcomes(taken: Taken, per_turn: Sequence[np.ndarray]) -> list[GroupOutcome]:
    """The outcomes of `taken`'s groups, in group-index order; `per_turn` is the credit stage's
    output for `taken.trajectories()`, in that order."""
    trained = taken.trajectories()
    if len(per_turn) != len(trained):
        raise ValueError(f"{len(per_turn)} per-turn advantage arrays for {len(trained)} trained "
                         f"episodes; the credit stage must return one per episode, in order")
    advantage = {id(t): float(np.mean(np.abs(a))) if len(a) else 0.0
                 for t, a in zip(trained, per_turn)}
    kept = {id(g) for g in taken.kept}
    out = []
    for group in sorted(taken.examined, key=lambda g: g.index):
        usable = [t for t in group.trajectories if trainable(t)]
        if not usable:
            continue
        flat = len({t.outcome_reward for t in usable}) == 1 and len(usable) > 1
        if id(group) in kept:
            values = tuple(advantage[id(t)] for t in usable)
        elif flat:
            values = (0.0,) * len(usable)
        else:
            continue
        out.append(GroupOutcome(group.index, part_name(usable[0].task_kind), usable[0].task_id,
                                len(usable), sum(bool(t.success) for t in usable), flat, values))
    return out


def step_metrics(outcomes: Sequence[GroupOutcome], probabilities: dict[str, float],
                 extra: Callable[[str], dict[str, float]] | None = None) -> dict[str, float]:
    """`task_sampling/...`: per part the probability of the next draw, its share of this step's
    groups, their pass rate and mean |advantage|; over all parts the share of flat groups."""
    out: dict[str, float] = {}
    if outcomes:
        out["task_sampling/flat_share"] = sum(o.flat for o in outcomes) / len(outcomes)
    for part in sorted(set(probabilities) | {o.part for o in outcomes}):
        mine = [o for o in outcomes if o.part == part]
        out[f"task_sampling/{part}/prob"] = float(probabilities.get(part, 0.0))
        if outcomes:
            out[f"task_sampling/{part}/share"] = len(mine) / len(outcomes)
        if mine:
            episodes = sum(o.episodes for o in mine)
            out[f"task_sampling/{part}/pass_rate"] = sum(o.successes for o in mine) / episodes
            values = [v for o in mine for v in o.abs_advantages]
            out[f"task_sampling/{part}/adv_abs"] = float(np.mean(values))
        if extra is not None:
            out.update(extra(part))
    return out
