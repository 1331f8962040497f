"""The `gym_text` suite: GEM's real games through its registry, and a factory of our own."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest
from turnwise.envs import make_suite
from turnwise.envs.base import EnvUnavailable


def _bisect(observation: str, state: dict) -> str:
    """GEM's GuessTheNumber, played by bisection, in its `\\boxed{}` syntax."""
    if "low" not in state:
        low, high = re.search(r"between (\d+) and (\d+)", observation).groups()
        state.update(low=int(low), high=int(high))
    elif "is lower" in observation:
        state["high"] = state["guess"] - 1
    elif "is higher" in observation:
        state["low"] = state["guess"] + 1
    state["guess"] = (state["low"] + state["high"]) // 2
    return f"I guess \\boxed{{{state['guess']}}}"


async def _play(suite, task, policy):
    env, state = suite.make(), {}
    observation = await env.reset(task)
    steps = [observation]
    while not (len(steps) > 1 and steps[-1].done):
        steps.append(await env.step(policy(observation.text, state)))
        observation = steps[-1].observation
    await env.close()
    return steps


def test_gem_guess_the_number_is_won_by_bisection():
    suite = make_suite("gym_text", gem="game:GuessTheNumber-v0-hard")  # 1..50 in 7 turns
    tasks = suite.tasks("valid", 6, seed=0)
    assert [t.id for t in tasks] == [t.id for t in suite.tasks("valid", 6, seed=0)]

    async def play_all():
        return await asyncio.gather(*(_play(suite, t, _bisect) for t in tasks))

    runs = asyncio.run(play_all())
    for task, (first, *steps) in zip(tasks, runs):
        assert "between 1 and 50" in first.text and first.info == {"suffix": "Enter your next guess."}
        assert steps[-1].info["success"] and steps[-1].reward == 1.0, task.id
        assert steps[-1].observation.text.startswith("Congratulations!")
        assert all(s.reward == 0.0 and not s.done for s in steps[:-1])
    # the same seed hides the same number, whatever ran in between
    again = asyncio.run(_play(suite, tasks[0], _bisect))
    assert [s.observation.text for s in again[1:]] == [s.observation.text for s in runs[0][1:]]


def test_gem_out_of_turns_ends_without_success():
    suite = make_suite("gym_text", gem="game:GuessTheNumber-v0-easy")  # 1..10 in 4 turns
    _, *steps = asyncio.run(_play(suite, suite.tasks("train", 1, seed=2)[0],
                                  lambda obs, state: "\\boxed{99}"))
    assert len(steps) == 4 and steps[-1].done and not steps[-1].info["success"]
    assert "outside the range" in steps[0].observation.text
    assert steps[-1].observation.text == "You have reached the maximum number of turns."


class Corridor:
    """A gym-style text env written to the API: walk right `length` times."""

    def __init__(self, length: int = 3) -> None:
        self.length = length

    def reset(self, seed=None):
        self.position = 0
        return f"You are at 0 of {self.length}. Say right or left.", {"seed": seed}

    def step(self, action):
        self.position += 1 if action.strip() == "right" else -1
        won = self.position >= self.length
        return f"You are at {self.position}.", float(won), won, False, {"invalid": action.strip() not in ("right", "left")}


class OldGym(Corridor):
    def step(self, action):  # the old four-value gym API
        return "x", 0.0, False, {}


def test_any_factory_and_a_broken_api_is_named():
    suite = make_suite("gym_text", entry_point=f"{__name__}:Corridor", kwargs={"length": 2},
                       max_steps=5)
    steps = asyncio.run(_play(suite, suite.tasks("test", 1, 0)[0], lambda obs, state: "right"))
    assert [s.reward for s in steps[1:]] == [0.0, 1.0] and steps[-1].info["success"]
    stuck = asyncio.run(_play(suite, suite.tasks("test", 1, 0)[0], lambda obs, state: "jump"))
    assert len(stuck) == 6 and stuck[-1].info["truncated"] and stuck[1].info["invalid"]
    old = make_suite("gym_text", entry_point=f"{__name__}:OldGym")
    env = old.make()
    asyncio.run(env.reset(old.tasks("train", 1, 0)[0]))
    with pytest.raises(TypeError, match=r"step must return \(observation: str, reward, terminated, "
                                        r"truncated, info: dict\), got a tuple of 4"):
        asyncio.run(env.step("right"))
    with pytest.raises(ValueError, match="exactly one of gem"):
        make_suite("gym_text")
    with pytest.raises(ValueError, match=r"gem='game:Nope': not in GEM's registry"):
        make_suite("gym_text", gem="game:Nope")
    with pytest.raises(ValueError, match=r"no expert.*sft.episodes: 0"):
        suite.oracle(suite.tasks("train", 1, 0)[0])


def test_missing_gem_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gem", None)
    with pytest.raises(EnvUnavailable, match=r"gem-llm==0.1.0"):
        make_suite("gym_text", gem="game:GuessTheNumber-v0-easy")
