"""Policy versions on samples, and the trainer's refusal of samples that are too old."""

from __future__ import annotations

import pytest
from turnwise.rollouts.staleness import split_stale
from turnwise.rollouts.trajectory import Trajectory, Turn
from turnwise.trainer.config import Config, RolloutConfig


def trajectory(name: str, *versions: int) -> Trajectory:
    turns = [Turn(response_ids=[1], response_logprobs=[0.0], version=v) for v in versions]
    return Trajectory(uid="u", traj_id=name, mode="full_trajectory", prompt_ids=[0], turns=turns)


def test_a_trajectory_is_as_old_as_its_oldest_turn():
    trajs = [trajectory("now", 5, 5), trajectory("one", 4, 5), trajectory("two", 3),
             trajectory("mixed", 5, 3)]
    # At version 5 with max_staleness 1: ages 0, 1, 2, 2.
    fresh, stale = split_stale(trajs, current_version=5, max_staleness=1)
    assert [t.traj_id for t in fresh] == ["now", "one"]
    assert [t.traj_id for t in stale] == ["two", "mixed"]
    # On-policy (0): only samples of the current version.
    fresh, _ = split_stale(trajs, current_version=5, max_staleness=0)
    assert [t.traj_id for t in fresh] == ["now"]
    with pytest.raises(ValueError, match="max_staleness=-1"):
        split_stale(trajs, current_version=5, max_staleness=-1)


def test_the_recipe_default_is_on_policy():
    assert Config().rollout.max_staleness == 0
    with pytest.raises(ValueError):
        RolloutConfig(max_staleness=-1)
