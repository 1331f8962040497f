"""What a new user sees from `turnwise train`: SFT's progress, a console free of library noise,
the run folder and the commands to use next at the end; and a hub model that cannot be reached
stops at once with one line and no run folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

TURNWISE = Path(sys.executable).parent / "turnwise"
NOISE = ["Traceback", "Setting accelerator to CPU", "Loading weights", "Writing model shards",
         "FutureWarning"]


def _turnwise(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TURNWISE), *args], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=600,
                          env={**os.environ, "WANDB_MODE": "disabled", **env})


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.slow
def test_a_short_run_shows_sft_progress_and_says_what_to_do_next(tmp_path):
    runs = tmp_path / "runs"
    out = _turnwise("train", "household_grpo", "sft.episodes=16", "sft.cache=false",
                    "train.iterations=1", "eval.tasks=4", "eval.every=0",
                    "rollout.tasks_per_iteration=2", "rollout.group_size=2",
                    f"log.dir={runs}", "log.run_name=first", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    # No terminal here: SFT prints a line at each tenth of its steps, then its summary.
    steps = [x for x in lines if x.startswith("sft: step ")]
    total = int(steps[-1].split()[2].split("/")[1])  # 2 epochs of the demonstrations' rows
    assert 5 <= len(steps) <= 10 and steps[-1].startswith(f"sft: step {total}/{total}  loss ")
    assert all("tok/s" in x and "left" in x for x in steps)
    assert any(x.startswith("sft: ") and " rows, loss " in x and " in " in x for x in lines)
    # Household has no tools: its bars count environment steps, and say so.
    assert "env steps" in out.stdout and " tools " not in out.stdout
    run = runs / "first"
    view = "trajectories token by token: writes viewer.html"
    evaluate = "evaluate the final policy (--tasks N, --policy DIR)"
    assert lines[-3:] == [f"run folder: {run}", f"  turnwise view {run}   # {view}",
                          f"  turnwise eval {run}   # {evaluate}"]
    for noise in NOISE:
        assert noise not in out.stdout + out.stderr, noise
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    [sft] = [r for r in records if r["iteration"] == -1]
    assert sft["sft/steps"] == total and sft["time/sft"] > 0
    assert sft["time/sft_demonstrations"] > 0
    assert sft["perf/sft_tokens_per_s"] == pytest.approx(sft["sft/tokens"] * 2 / sft["time/sft"])
    assert not any(k.startswith(("rollout/tool", "eval/tool")) for r in records for k in r)
    assert not (run / "plots" / "tools.png").exists() and (run / "plots" / "turns.png").exists()


@pytest.mark.slow
def test_a_hub_model_that_cannot_be_reached_stops_at_once_with_one_line(tmp_path):
    model = "acme/no-such-model"
    args = ("train", "household_grpo", f"model.name={model}", "model.tiny=null",
            f"log.dir={tmp_path / 'runs'}")
    common = {"HF_HOME": str(tmp_path / "hf")}  # an empty hub cache
    offline = _turnwise(*args, cwd=tmp_path, HF_HUB_OFFLINE="1", **common)
    unreachable = _turnwise(*args, cwd=tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}",
                            **common)
    for out, why in ((offline, "with HF_HUB_OFFLINE set"), (unreachable, "cannot be reached")):
        assert out.returncode == 2
        [line] = out.stderr.splitlines()
        assert line.startswith(f"error: model.name={model!r}: no such local folder") and why in line
        assert f"hf download {model} --local-dir DIR" in line and "model.name=DIR" in line
        assert "run folder" not in out.stdout
    assert not (tmp_path / "runs").exists()  # nothing left behind


def test_a_local_model_folder_needs_no_hub(tiny_path, monkeypatch):
    from turnwise.trainer.models import check_reachable

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    check_reachable(tiny_path)  # returns without asking anyone
