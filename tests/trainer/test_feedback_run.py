"""A whole run of a feedback recipe: the wrapped suite in the real loop, critique_grpo as the
estimator, and the per-attempt metrics in metrics.jsonl under documented names."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_a_critique_recipe_trains_and_logs_its_attempt_metrics(tmp_path):
    from turnwise.trainer.loop import train
    from turnwise.trainer.recipe import load_recipe
    from turnwise.trainer.report.metric_names import undocumented

    cfg = load_recipe("code_critique", [
        "preset=cpu-tiny", "train.iterations=2", "sft.episodes=0", "eval.tasks=2",
        "rollout.tasks_per_iteration=2", "rollout.group_size=2", "rollout.max_tokens_per_turn=8",
        "train.threads=1", "log.quiet=true", "log.tensorboard=false", f"log.dir={tmp_path}",
        "log.run_name=run"])
    assert cfg.env.name == "feedback" and cfg.credit.estimator == "critique_grpo"
    result = train(cfg, echo=lambda *a: None)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "rollout/episodes" in r]
    assert len(steps) == 2 and len(result.history) == 2
    for record in steps:
        # Every episode of the step ended and was counted (4 per step).
        assert record["feedback/episodes"] == record["rollout/episodes"] == 4.0
        assert {"feedback/success@1", "feedback/success@2", "feedback/attempts"} <= set(record)
        assert undocumented(record) == [], "add these to trainer/report/metric_names.py"
