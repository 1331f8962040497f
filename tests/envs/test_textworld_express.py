"""The `textworld_express` suite against the real textworld-express package and its JVM."""

from __future__ import annotations

import asyncio
import shutil
import sys

import pytest
from turnwise.envs import make_suite
from turnwise.envs.adapters.textworld_express import GAMES
from turnwise.envs.base import EnvUnavailable


@pytest.fixture(scope="module")
def suite():
    suite = make_suite("textworld_express", max_steps=80)
    yield suite
    suite.close()


async def _expert(suite, task):
    env, oracle = suite.make(), suite.oracle(task)
    observation = await env.reset(task)
    steps = []
    try:
        while not steps or not steps[-1].done:
            steps.append(await env.step(oracle.act(observation)))
            observation = steps[-1].observation
    finally:
        await env.close()
    return steps


def test_missing_package_or_java_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "textworld_express", None)
    with pytest.raises(EnvUnavailable, match=r"textworld-express==1.1.0.*default-jre-headless"):
        make_suite("textworld_express")
    monkeypatch.delitem(sys.modules, "textworld_express")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EnvUnavailable, match=r"Java runtime \(no `java` on PATH\)"):
        make_suite("textworld_express")
    with pytest.raises(ValueError, match=r"games: unknown \['zork'\]; allowed are \['cookingworld'"):
        make_suite("textworld_express", games=["coin", "zork"])


@pytest.mark.slow
def test_splits_are_seeded_folds(suite):
    train = suite.tasks("train", 16, seed=3)
    assert [t.id for t in train] == [t.id for t in suite.tasks("train", 16, seed=3)]
    assert [t.kind for t in train[:8]] == list(GAMES)  # the games are taken in turn
    valid = suite.tasks("valid", 16, seed=3)
    assert all(t.data["seed"] < 10000 for t in train) and all(t.data["seed"] >= 10000 for t in valid)
    assert {t.data["fold"] for t in valid} == {"dev"}
    with pytest.raises(ValueError, match=r"split='valid_seen': allowed are \['train', 'valid', 'test'\]"):
        suite.tasks("valid_seen", 1, 0)


@pytest.mark.slow
def test_gold_paths_solve_every_game(suite):
    tasks = suite.tasks("valid", 2 * len(GAMES), seed=0)

    async def play_all():
        return await asyncio.gather(*(_expert(suite, t) for t in tasks))

    for task, steps in zip(tasks, asyncio.run(play_all())):
        last = steps[-1]
        assert last.info["success"] and last.reward == 10.0 and last.info["score"] == 1.0, task.id
        assert sum(s.reward for s in steps) == 10.0
        assert not any(s.info["invalid"] for s in steps), task.id  # gold moves are admissible


def test_admissible_actions_anchors_and_invalid_moves(suite):
    task = next(t for t in suite.tasks("train", 8, seed=1) if t.kind == "coin")
    env, twin = suite.make(), suite.make()

    async def play():
        first = await env.reset(task)
        again = await twin.reset(task)
        assert first.anchor == again.anchor and first.text == again.text  # same seed, same game
        assert first.text.startswith("Your task is to search the environment and find the coin.")
        assert first.admissible_actions == sorted(first.admissible_actions)
        assert "look around" in first.admissible_actions
        untagged = await env.step("look around")  # no tags: never reaches the game
        assert untagged.info["invalid"] and untagged.observation.text.startswith("Unknown action")
        assert untagged.observation.anchor == first.anchor
        unknown = await env.step("<action>fly to the moon</action>")
        assert unknown.info["invalid"] and unknown.info["action"] == "fly to the moon"
        assert unknown.observation.anchor == first.anchor  # the game state did not change
        assert "not sure what you mean" in unknown.observation.text
        move = next(a for a in first.admissible_actions if a.startswith("open door"))
        opened = await env.step(f"<action>{move}</action>")
        assert not opened.info["invalid"] and opened.observation.anchor != first.anchor
        assert not opened.done and opened.reward == 0.0
        await env.close()
        await twin.close()

    asyncio.run(play())


def test_score_rewards_add_up_to_the_final_score():
    suite = make_suite("textworld_express", games=["sorting"], reward="score")
    try:
        steps = asyncio.run(_expert(suite, suite.tasks("test", 1, seed=0)[0]))
    finally:
        suite.close()
    assert steps[-1].info["success"]
    assert sum(s.reward for s in steps) == pytest.approx(1.0)
    assert sum(s.reward > 0 for s in steps) >= 2  # partial credit along the way


def test_a_dead_jvm_fails_its_episodes_and_the_next_start_afresh():
    suite = make_suite("textworld_express", games=["simonsays"])
    task = suite.tasks("train", 1, seed=0)[0]
    env = suite.make()

    async def play():
        observation = await env.reset(task)
        suite.server.env._gateway.java_process.kill()
        suite.server.env._gateway.java_process.wait()
        with pytest.raises(ConnectionError, match="JVM stopped mid-episode"):  # that episode fails
            await env.step(f"<action>{observation.admissible_actions[0]}</action>")
        await env.close()
        steps = await _expert(suite, task)  # a new JVM for the next episode
        assert steps[-1].info["success"]

    try:
        asyncio.run(play())
    finally:
        suite.close()
