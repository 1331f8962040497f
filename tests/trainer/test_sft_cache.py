"""sft.cache: the second run loads the first run's SFT'd policy and trains exactly as it did."""

from __future__ import annotations

import json

import pytest
from turnwise.rollouts.trajectory import Trajectory, Turn
from turnwise.trainer.loop import train
from turnwise.trainer.recipe import RecipeError, load_recipe
from turnwise.trainer.sft_cache import demonstrations_digest, sft_cache_path

ARGS = ["train.iterations=1", "sft.episodes=4", "sft.epochs=1", "sft.cache=true", "eval.tasks=2",
        "rollout.tasks_per_iteration=2", "rollout.group_size=2", "rollout.max_turns=3",
        "env.options.max_steps=3", "log.quiet=true"]


def _run(tmp_path, name, *extra):
    cfg = load_recipe("household_grpo", [*ARGS, f"log.dir={tmp_path}", f"log.run_name={name}",
                                         *extra])
    lines = []
    train(cfg, echo=lines.append)
    rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    return cfg, lines, rows


@pytest.mark.slow
def test_second_run_reuses_the_cached_sft_policy(tmp_path, monkeypatch):
    # A private SFT cache; the tiny base model stays in the shared one (no rebuild).
    monkeypatch.setattr("turnwise.trainer.sft_cache.cache_root", lambda: tmp_path / "c" / "tiny")
    cfg, first_lines, first = _run(tmp_path, "a")
    from turnwise.trainer.models import resolve_model

    [cached] = (tmp_path / "c" / "sft").iterdir()
    assert (cached / "config.json").exists() and (cached / "turnwise_sft.json").exists()
    _, second_lines, second = _run(tmp_path, "b")
    assert f"sft: cached policy {cached}" in second_lines
    # It did not train: its SFT record holds only the time spent playing the demonstrations.
    [record] = [r for r in second if r["iteration"] == -1]
    assert set(record) == {"iteration", "time/sft_demonstrations"}
    assert record["time/sft_demonstrations"] > 0
    for name in ("a", "b"):  # both runs name the SFT model they started from
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["sft_policy"] == str(cached)
    # Same start, same seeds: the evaluation before RL and the RL iteration match exactly.
    pick = lambda rows, it: {k: v for r in rows if r["iteration"] == it for k, v in r.items()
                             if not k.startswith("time/") and "seconds" not in k}
    assert pick(first, 0) == pick(second, 0) and pick(first, 0)
    assert pick(first, 1)["rollout/reward"] == pick(second, 1)["rollout/reward"]
    assert pick(first, 1)["train/loss"] == pytest.approx(pick(second, 1)["train/loss"], abs=1e-6)
    # Another SFT seed is another cold start (even with the same demonstrations).
    key = lambda *extra: sft_cache_path(load_recipe("household_grpo", [*ARGS, *extra]),
                                        resolve_model(cfg.model), [])
    assert key("sft.seed=7") != key("sft.seed=8")
    # Another thread count computes other numbers (another SFT model); the RL lr shapes none.
    assert key("train.threads=1") != key("train.threads=2")
    assert key("train.lr=1e-5") == key("train.lr=1e-4")


def test_changed_demonstrations_are_another_cache_key():
    # An oracle or prompt change shows in the tokens, so no version bump is needed to avoid a
    # stale policy; the same tokens give the same key.
    def demo(response: list[int], obs: list[int]) -> Trajectory:
        return Trajectory(uid="u", traj_id="t", mode="full_trajectory", prompt_ids=[1, 2],
                          turns=[Turn(response_ids=response, response_logprobs=[0.0] * len(response),
                                      observation_ids=obs)])
    base = demonstrations_digest([demo([5, 6], [7]), demo([8], [])])
    assert demonstrations_digest([demo([5, 6], [7]), demo([8], [])]) == base
    assert demonstrations_digest([demo([5, 9], [7]), demo([8], [])]) != base  # another action
    assert demonstrations_digest([demo([5, 6], []), demo([7, 8], [])]) != base  # moved boundary
    assert demonstrations_digest([demo([8], []), demo([5, 6], [7])]) != base  # another order
    cfg = load_recipe("household_grpo", ARGS)
    from turnwise.trainer.models import resolve_model

    path = resolve_model(cfg.model)
    assert sft_cache_path(cfg, path, [demo([5, 6], [7])]) != sft_cache_path(cfg, path, [demo([5], [7])])


def test_sft_cache_refuses_lora_when_the_recipe_is_resolved():
    with pytest.raises(RecipeError, match="sft.cache=true with lora.enabled=true"):
        load_recipe("household_grpo", [*ARGS, "lora.enabled=true"])
    assert load_recipe("household_grpo", [*ARGS, "lora.enabled=true", "sft.cache=false"])
