"""A real (tiny) training run leaves a complete run folder that the viewer opens cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from turnwise.trainer.loop import train
from turnwise.trainer.recipe import load_recipe
from turnwise.trainer.report.metric_names import undocumented
from turnwise.trainer.report.plots import PLOTS
from turnwise.trainer.report.view import build_viewer
from viewer_browser import Page, chromium, skip_reason


@pytest.fixture(scope="module")
def run(tiny_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    cfg = load_recipe("household_grpo", [
        "train.iterations=2", "sft.episodes=0", "eval.tasks=1", "rollout.tasks_per_iteration=2",
        "rollout.group_size=2", "rollout.max_turns=2", "rollout.max_tokens_per_turn=8",
        f"log.dir={root}", "log.run_name=r", "log.save_trajectories=2", "log.wandb.mode=offline"])
    lines: list[str] = []
    result = train(cfg, echo=lines.append)
    return result, lines


@pytest.mark.slow
def test_run_folder_contents(run):
    result, lines = run
    folder = Path(result.run_dir)
    records = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    keys = {k for r in records for k in r}
    assert undocumented(keys) == [], "add these to trainer/report/metric_names.py"
    assert {"time/generation", "time/tools", "time/sample", "eval/turn_tokens"} <= keys
    # Household has no tools: no tool metrics, so no tools plot.
    assert not any(k.startswith(("rollout/tool", "eval/tool", "tools/")) for k in keys)
    assert sum(line.startswith("iter ") for line in lines) == 2  # one summary line per iteration
    assert sorted(p.stem for p in (folder / "plots").glob("*.png")) == sorted(set(PLOTS) - {"tools"})
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert list((folder / "wandb").glob("offline-run-*/*.wandb"))
    samples = [json.loads(x) for x in
               (folder / "trajectories" / "iter_00001.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and samples[0]["uid"] == samples[1]["uid"]  # one whole group
    # Before the update the trainer holds the rollout's weights: same log-probs, token by token.
    for rec in samples:
        for row in rec["rows"]:
            assert len(row["trainer_logprobs"]) == len(row["rollout_logprobs"]) > 0
            diff = max(abs(a - b) for a, b in zip(row["trainer_logprobs"], row["rollout_logprobs"]))
            assert diff < 1e-3, diff
        assert all(rec["token_text"][str(i)] is not None for row in rec["rows"] for i in row["ids"])


@pytest.mark.slow
@pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")
def test_viewer_of_a_real_run_loads_cleanly(run, tmp_path):
    result, _ = run
    html = build_viewer(result.run_dir, tmp_path / "viewer.html")
    with chromium() as browser:
        page = Page(browser, html)
        assert len(page.list_ids()) == 2
        assert len([t for t in page.tokens() if t["kind"] == "response"]) > 0
        page.page.click("#compare")
        assert page.page.locator(".group .col-head").count() == 2
        assert page.errors == []
