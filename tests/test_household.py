"""The household world: its oracle solves every task, and it answers as ALFWorld does."""

from __future__ import annotations

import asyncio

import pytest

from turnwise.envs import make_suite
from turnwise.envs.household import TASK_TYPES


async def _play(suite, task):
    env, oracle = suite.make(), suite.oracle(task)
    obs = await env.reset(task)
    while True:
        step = await env.step(oracle.act(obs))
        obs = step.observation
        if step.done:
            return step


@pytest.mark.parametrize("split", ["train", "valid_seen", "valid_unseen"])
def test_oracle_solves_every_task(split):
    suite = make_suite("household")
    tasks = suite.tasks(split, 240, seed=3)
    assert {t.kind for t in tasks} == set(TASK_TYPES)
    for task in tasks:
        step = asyncio.run(_play(suite, task))
        assert step.info["success"] and step.reward == 10.0, task


def test_invalid_actions_and_format_errors():
    suite = make_suite("household")
    task = suite.tasks("train", 1, seed=0)[0]
    env = suite.make()
    obs = asyncio.run(env.reset(task))
    assert obs.text.startswith("You are in the middle of a room.")
    assert "Your task is to: " in obs.text and obs.admissible_actions
    step = asyncio.run(env.step("<action>fly to the moon</action>"))
    assert step.observation.text == "Nothing happens." and not step.info["invalid"]
    assert step.info["noop"]
    step = asyncio.run(env.step("go to desk 1"))  # no action tags: a format error
    assert step.observation.text == "Nothing happens." and step.info["invalid"]


def test_tasks_are_deterministic_and_splits_disjoint():
    suite = make_suite("household")
    a = suite.tasks("train", 50, seed=1)
    b = suite.tasks("train", 50, seed=1)
    assert [t.data for t in a] == [t.data for t in b]
    unseen = suite.tasks("valid_unseen", 100, seed=1)
    seen_layouts = {(t.data["room"], t.data["layout"]) for t in suite.tasks("train", 300, seed=2)}
    assert not seen_layouts & {(t.data["room"], t.data["layout"]) for t in unseen}


def test_groups_start_from_the_same_state():
    suite = make_suite("household")
    task = suite.tasks("train", 1, seed=5)[0]
    first = [asyncio.run(suite.make().reset(task)) for _ in range(3)]
    assert len({o.text for o in first}) == 1 and len({o.anchor for o in first}) == 1


def test_small_rooms_cap_receptacles_and_distractors_and_stay_solvable():
    suite = make_suite("household", max_receptacles=5, distractors=[1, 2])
    tasks = suite.tasks("train", 60, seed=4)
    for task in tasks:
        obs = asyncio.run(suite.make().reset(task))
        listed = obs.text.split("you see ")[1].split(".")[0].split(", ")
        assert len(listed) <= 5, obs.text
        step = asyncio.run(_play(suite, task))
        assert step.info["success"], task
    full = make_suite("household").tasks("train", 60, seed=4)
    assert all(t.data["max_receptacles"] is None for t in full)
    with pytest.raises(ValueError, match="max_receptacles=2"):
        make_suite("household", max_receptacles=2)
    with pytest.raises(ValueError, match=r"distractors=\[3, 1\]"):
        make_suite("household", distractors=[3, 1])
