"""The async learning report on hand-written run folders: paired seeds only, training seconds
summed up to each evaluation, evaluations' own time left out."""

from __future__ import annotations

import json

from benchmarks.learning import async_report


def _run(runs, name, steps, *, done=True):
    """A run folder: eval at iteration 0 and 2, `steps` seconds per training step."""
    folder = runs / name
    folder.mkdir(parents=True)
    records = [{"iteration": -1, "time/sft": 99.0}, {"iteration": 0, "eval/success": 0.25}]
    for i in (1, 2):
        records.append({"iteration": i, "time/iteration": steps, "async/staleness_mean": 1.0})
    records[-1]["eval/success"] = 0.5
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if done:
        (folder / "done.json").write_text("{}")


def test_report_pairs_seeds_and_sums_training_seconds(tmp_path, monkeypatch):
    runs, out = tmp_path / "runs", tmp_path / "out"
    _run(runs, "fast-s0", 3.0)
    _run(runs, "slow-s0", 6.0)
    _run(runs, "fast-s1", 100.0)  # its twin never finished: left out of both means
    _run(runs, "slow-s1", 100.0, done=False)
    monkeypatch.setattr("sys.argv", ["async_report", "--runs", str(runs), "--method", "fast",
                                     "--baseline", "slow", "--out", str(out)])
    async_report.main()
    report = json.loads((out / "async.json").read_text())
    assert report["fast"]["seeds"] == report["slow"]["seeds"] == [0]
    assert [p["seconds"] for p in report["fast"]["points"]] == [0.0, 6.0]
    assert [p["success"] for p in report["slow"]["points"]] == [0.25, 0.5]
    assert "Training time, baseline / method: 2.00x" in (out / "async.md").read_text()
