"""The RL loop runs the credit steps: DAPO re-rolls, shaping and IGPO's scoring pass."""

from __future__ import annotations

import json

import pytest
from fakes import register_answer_suite
from turnwise.trainer.config import Config
from turnwise.trainer.loop import train

register_answer_suite()  # household with gold answers and rewards that differ within a group

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
