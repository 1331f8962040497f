"""Task sampling in whole runs: a resumed run draws the tasks an uninterrupted one draws, and
every step logs the sampler's documented metrics."""

from __future__ import annotations

import json

import pytest
from two_ranks import train_on_two_ranks


def _cfg(tmp_path, name, *overrides):
    from turnwise.trainer.recipe import load_recipe

    return load_recipe("household_grpo", [
        "train.iterations=4", "sft.episodes=0", "eval.tasks=0", "rollout.tasks_per_iteration=2",
        "rollout.group_size=2", "rollout.max_turns=3", "rollout.max_tokens_per_turn=8",
        "train.threads=1", "log.quiet=true", "log.tensorboard=false", f"log.dir={tmp_path}",
        f"log.run_name={name}", "log.save_trajectories=100", "deterministic=true",
        "checkpoint.every=2", "task_sampling.sampler=dump", "task_sampling.pool=12",
        "task_sampling.dump.temperature=0.5",
        "env.options.task_types=[pick_and_place_simple, look_at_obj_in_light, "
        "pick_two_obj_and_place]", *overrides])


def _tasks(run_dir, iteration):
    path = run_dir / "trajectories" / f"iter_{iteration:05d}.jsonl"
    return sorted((json.loads(line)["uid"], json.loads(line)["task_id"]) for line in path.open())


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_resumed_run_draws_the_tasks_an_uninterrupted_run_draws(tmp_path):
    from turnwise.trainer.loop import train
    from turnwise.trainer.report.metric_names import undocumented

    quiet = {"echo": lambda *a: None}
    train(_cfg(tmp_path, "whole"), **quiet)
    train(_cfg(tmp_path, "cut", "train.iterations=2"), **quiet)
    state = json.loads((tmp_path / "cut" / "checkpoints" / "iter_000002" / "state_rank0.json")
                       .read_text())
    assert state["task_sampling"]["sampler"] == "dump"
    assert sum(state["task_sampling"]["state"]["counts"].values()) == 8  # 4 groups x 2
    train(_cfg(tmp_path, "cut", "resume=auto"), **quiet)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    for iteration in (1, 2, 3, 4):
        assert _tasks(cut, iteration) == _tasks(whole, iteration)
    records, resumed = _records(whole), _records(cut)
    assert [r["iteration"] for r in resumed] == [1, 2, 3, 4]
    sampling = {k for r in records for k in r if k.startswith("task_sampling/")}
    assert "task_sampling/flat_share" in sampling and undocumented(sampling) == []
    for mine, theirs in zip(resumed, records):
        assert {k: mine[k] for k in sampling if k in mine} == \
            {k: theirs[k] for k in sampling if k in theirs}
    # Three task types, so three parts, with probabilities that sum to 1.
    probs = [v for k, v in records[-1].items() if k.endswith("/prob")]
    assert len(probs) == 3 and sum(probs) == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.deepspeed
def test_two_ranks_sample_their_own_shards_and_keep_their_own_state(tmp_path):
    train_on_two_ranks(["household_grpo", "train.backend=deepspeed",
                        "deepspeed.zero_stage=2", "train.iterations=2", "sft.episodes=0", "eval.tasks=0",
                        "rollout.tasks_per_iteration=4", "rollout.group_size=2", "rollout.max_turns=2",
                        "rollout.max_tokens_per_turn=8", "checkpoint.every=2", "train.threads=1",
                        "task_sampling.sampler=mopps", "task_sampling.pool=8", "log.quiet=true",
                        f"log.dir={tmp_path}", "log.run_name=r"])
    folder = tmp_path / "r" / "checkpoints" / "iter_000002"
    states = [json.loads((folder / f"state_rank{r}.json").read_text())["task_sampling"]
              for r in (0, 1)]
    # Each rank holds every other task of the pool (4 of 8) and learnt from its own groups only:
    # 2 steps x 2 groups x 2 episodes of evidence each, on its own prompts.
    assert [s["pool"] for s in states] == [4, 4]
    assert states[0]["first_task"] != states[1]["first_task"]
    for state in states:
        evidence = sum(a + b - 2.0 for _, a, b in state["state"]["posterior"])
        assert evidence == 8.0
    records = _records(tmp_path / "r")
    assert all(0.0 <= r["task_sampling/flat_share"] <= 1.0 for r in records)
