"""The `textarena` suite against the real textarena package: single-player games offline."""

from __future__ import annotations

import asyncio
import random
import sys

import pytest
from turnwise.envs import make_suite
from turnwise.envs.base import EnvUnavailable


async def _play(suite, task, moves=None):
    """Steps of one episode: the expert's moves, or `moves` in turn (then until done or out)."""
    env = suite.make()
    observation = await env.reset(task)
    expert = suite.oracle(task) if moves is None else None
    steps = [observation]
    for i in range(200):
        move = expert.act(observation) if expert else moves[i % len(moves)]
        step = await env.step(move)
        steps.append(step)
        observation = step.observation
        if step.done:
            break
    await env.close()
    return steps


def test_missing_package_and_games_that_cannot_run_say_why(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown TextArena game 'Chess-v9'; registered are \["):
        make_suite("textarena", games=["Chess-v9"])
    with pytest.raises(ValueError, match=r"'ConnectFour-v0' is not a single-player game"):
        make_suite("textarena", games=["ConnectFour-v0"])
    nltk = pytest.importorskip("nltk")
    try:
        nltk.data.find("corpora/words")
    except LookupError:  # as on a fresh machine: the word list is a separate download
        with pytest.raises(EnvUnavailable, match=r"'Wordle-v0' cannot start here.*nltk.downloader words"):
            make_suite("textarena", games=["Wordle-v0"])
    monkeypatch.setitem(sys.modules, "textarena", None)
    with pytest.raises(EnvUnavailable, match=r"textarena==0.7.4"):
        make_suite("textarena")


def test_experts_win_and_the_reward_comes_only_at_the_end():
    suite = make_suite("textarena")
    tasks = suite.tasks("valid", 8, seed=0)
    assert [t.kind for t in tasks[:2]] == ["GuessTheNumber-v0", "TowerOfHanoi-v0"]
    assert all(1_000_000 <= t.data["seed"] < 2_000_000 for t in tasks)
    assert [t.id for t in suite.tasks("valid", 8, seed=0)] == [t.id for t in tasks]

    async def play_all():
        return await asyncio.gather(*(_play(suite, t) for t in tasks))

    for task, (first, *steps) in zip(tasks, asyncio.run(play_all())):
        assert "[" in first.text and steps[-1].done, task.id  # the rules show the syntax
        assert [s.reward for s in steps[:-1]] == [0.0] * (len(steps) - 1)
        assert steps[-1].reward == 1.0 and steps[-1].info["success"], task.id
        assert not any(s.info["invalid"] for s in steps)
        if task.kind == "TowerOfHanoi-v0":
            assert len(steps) == 7  # 2^3 - 1 moves
            assert "Congratulations! You solved the Tower of Hanoi puzzle." in steps[-1].observation.text


def test_invalid_moves_are_invalid_turns_and_the_second_ends_the_game():
    suite = make_suite("textarena", games=["GuessTheNumber-v0"])
    first, once, twice = asyncio.run(_play(suite, suite.tasks("train", 1, seed=4)[0],
                                           moves=["five", "six"]))
    assert once.info["invalid"] and not once.done and once.reward == 0.0
    assert once.observation.text.startswith("You attempted an invalid move.")
    assert once.observation.anchor == first.anchor  # the game state did not change
    assert twice.done and twice.info["invalid"] and not twice.info["success"]
    assert twice.reward == 0.0 and "Invalid Move" in twice.info["reason"]
    with pytest.raises(ValueError, match=r"no expert for 'Minesweeper-v0'.*sft.episodes: 0"):
        make_suite("textarena", games=["Minesweeper-v0"]).oracle(
            make_suite("textarena", games=["Minesweeper-v0"]).tasks("train", 1, 0)[0])


def test_each_episode_keeps_its_own_random_state():
    """2048 draws its new tiles from the global `random`: episodes played side by side must
    play as they do alone, and the caller's own random state must not move."""
    suite = make_suite("textarena", games=["2048-v0-ultra-easy"])
    task, other = suite.tasks("train", 2, seed=0)
    moves = ["[up]", "[left]", "[down]", "[right]"]
    alone = asyncio.run(_play(suite, task, moves))

    async def side_by_side():
        return await asyncio.gather(_play(suite, task, moves), _play(suite, other, moves),
                                    _play(suite, task, moves))

    random.seed(11)
    expected = random.random()
    random.seed(11)
    together = asyncio.run(side_by_side())
    assert random.random() == expected
    texts = [[s.text if hasattr(s, "text") else s.observation.text for s in run] for run in together]
    alone_texts = [alone[0].text] + [s.observation.text for s in alone[1:]]
    assert texts[0] == alone_texts and texts[2] == alone_texts and len(alone_texts) > 5
    assert texts[1] != alone_texts
