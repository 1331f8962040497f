"""DAPO dynamic sampling: drop groups whose episodes all scored the same (no GRPO signal).

The trainer re-rolls fresh tasks until enough groups are kept or a limit is reached
(`trainer.loop`); this module only decides which groups carry signal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..rollouts.trajectory import Trajectory
from .stats import as_float_array, factorize


def varied_groups(rewards, groups) -> np.ndarray:
    """Keep-mask per row: True where the row's group has differing rewards or only one row
    (as in verl's DAPO recipe, which keeps groups with std > 0 or a single member)."""
    rewards = as_float_array(rewards, "rewards")
    ids, count = factorize(groups, "groups")
    if rewards.shape != ids.shape:
        raise ValueError(f"rewards {rewards.shape} and groups {ids.shape} must be equal 1-D shapes")
    low = np.full(count, np.inf)
    high = np.full(count, -np.inf)
    np.minimum.at(low, ids, rewards)
    np.maximum.at(high, ids, rewards)
    size = np.bincount(ids, minlength=count)
    keep = (high > low) | (size == 1)
    return keep[ids]


def keep_varied_groups(trajectories: Sequence[Trajectory]) -> tuple[list[Trajectory], int]:
    """The trajectories of groups whose outcome rewards differ, and how many groups were dropped."""
    if not trajectories:
        return [], 0
    uids = [t.uid for t in trajectories]
    keep = varied_groups([t.outcome_reward for t in trajectories], uids)
    dropped = len({u for u, k in zip(uids, keep) if not k})
    return [t for t, k in zip(trajectories, keep) if k], dropped


def flat_group_fraction(trajectories: Sequence[Trajectory]) -> float:
    """The share of groups of two or more whose outcome rewards are all equal, out of all groups
    (0.0 when there are none); the groups dynamic sampling would drop."""
    groups = len({t.uid for t in trajectories})
    return keep_varied_groups(trajectories)[1] / groups if groups else 0.0
