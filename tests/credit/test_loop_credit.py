"""The RL loop runs the credit steps: DAPO re-rolls, shaping and IGPO's scoring pass."""

from __future__ import annotations

import json

import pytest
from turnwise.envs.base import make_suite, register_suite, suite_names
from turnwise.trainer.config import Config
from turnwise.trainer.loop import train


class _ParityEnv:
    """Household, plus 1 for every reply of odd length: groups get differing rewards."""

    def __init__(self, env):
        self.env = env
        self.system_prompt = env.system_prompt

    async def reset(self, task):
        return await self.env.reset(task)

    async def step(self, action_text):
        step = await self.env.step(action_text)
        step.reward += float(len(action_text) % 2)
        return step

    async def close(self):
        await self.env.close()


class _AnswerSuite:
    """Household tasks that carry a gold answer, so IGPO can score it."""

    name = "household_answers"

    def __init__(self, **options):
        self.inner = make_suite("household", **options)

    def make(self):
        return _ParityEnv(self.inner.make())

    def tasks(self, split, count, seed):
        tasks = self.inner.tasks(split, count, seed)
        for task in tasks:
            task.answer = "countertop 1"
        return tasks

    def oracle(self, task):
        return self.inner.oracle(task)

    def corpus(self):
        return self.inner.corpus()


if "household_answers" not in suite_names():
    register_suite("household_answers")(_AnswerSuite)


@pytest.mark.slow
def test_igpo_with_dynamic_sampling_and_overlong_shaping_trains(tiny_path, tmp_path):
    cfg = Config.model_validate({
        "seed": 3,
        "model": {"name": "tiny:household"},
        "env": {"name": "household_answers",
                "options": {"max_steps": 3, "task_types": ["pick_and_place_simple"]}},
        "rollout": {"mode": "full_trajectory", "group_size": 2, "tasks_per_iteration": 2,
                    "max_turns": 3, "max_tokens_per_turn": 8},
        "credit": {"estimator": "igpo", "dynamic_sampling": {"max_rolls": 4},
                   "overlong": {"max_tokens": 24, "buffer": 8}},
        "train": {"iterations": 1, "threads": 2},
        "sft": {"episodes": 0}, "eval": {"tasks": 0},
        "log": {"dir": str(tmp_path), "run_name": "r", "quiet": True, "save_trajectories": 2},
    })
    result = train(cfg, echo=lambda *_: None)
    record = result.history[0]
    assert record["igpo/probes"] >= 2 and record["igpo/score_seconds"] > 0
    assert 1 <= record["dynamic_sampling/rolls"] <= 4
    assert 1 <= record["dynamic_sampling/kept_groups"] <= 2
    assert record["train/optimizer_steps"] == 1
    saved = [json.loads(line) for line in
             (tmp_path / "r" / "trajectories" / "iter_00001.jsonl").read_text().splitlines()]
    assert saved, "the trained trajectories are saved"
    for record in saved:
        turns = record["turns"]
        # IGPO's scoring pass filled the log-prob after every turn but the answer turn
        assert all(t["answer_logprob"] is not None for t in turns[:-1])
        assert all(t["advantage"] is not None for t in turns)
        # overlong shaping (free up to 16 tokens, then -1/8 per token) is on the trained copies
        tokens = sum(end - start for row in record["rows"] for start, end, _turn in row["spans"])
        penalty = record["info"].get("shaping", {}).get("overlong", 0.0)
        assert penalty == (-(tokens - 16) / 8 if tokens > 16 else 0.0)
