"""Checkpoints: atomic folders, `resume=auto`, and a killed run that resumes exactly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from trainer_parity import make_batch
from turnwise.trainer.backends.torch_backend import TorchBackend
from turnwise.trainer.checkpoint import (
    earlier_run,
    find_resume,
    load_checkpoint,
    save_checkpoint,
    superseded_from,
    trim_metrics,
    valid_checkpoints,
)
from turnwise.trainer.config import Config, LossConfig, TrainConfig
from turnwise.trainer.dist import World


def test_save_load_restores_weights_optimizer_and_rngs(tiny_model, tiny_path, tmp_path):
    from transformers import AutoModelForCausalLM

    batch = make_batch([12, 9, 15, 7], response=4)
    backend = TorchBackend(tiny_model, TrainConfig(lr=1e-3, minibatches=2), LossConfig())
    backend.update(batch)
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    for iteration in (1, 2, 3):
        save_checkpoint(tmp_path, iteration, backend, World(), meta={"engine_version": iteration},
                        keep=2)
    assert [p.name for p in valid_checkpoints(tmp_path)] == ["iter_000002", "iter_000003"]
    expected_draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    after = backend.update(batch)  # the step the resumed run must repeat exactly

    fresh = TorchBackend(AutoModelForCausalLM.from_pretrained(tiny_path),
                         TrainConfig(lr=1e-3, minibatches=2), LossConfig())
    meta = load_checkpoint(tmp_path / "checkpoints" / "iter_000003", fresh, World())
    assert meta["iteration"] == 3 and meta["engine_version"] == 3 and meta["backend"] == "torch"
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected_draws
    again = fresh.update(batch)
    assert again["pg_loss"] == after["pg_loss"] and again["grad_norm"] == after["grad_norm"]
    for (name, a), (_, b) in zip(backend.state_dict_for_engine(), fresh.state_dict_for_engine()):
        assert torch.equal(a, b), name


def test_incomplete_checkpoints_are_ignored_and_auto_picks_the_newest(tmp_path):
    run = tmp_path / "runs" / "job-20260101-000000"
    for name, meta in [("iter_000001", {"iteration": 1}), ("iter_000004", {"iteration": 4}),
                       (".tmp-iter_000005", {"iteration": 5})]:
        (run / "checkpoints" / name).mkdir(parents=True)
        (run / "checkpoints" / name / "meta.json").write_text(json.dumps(meta))
    (run / "checkpoints" / "iter_000006").mkdir()  # killed before meta.json was written
    assert [p.name for p in valid_checkpoints(run)] == ["iter_000001", "iter_000004"]

    where = {"log_dir": str(tmp_path / "runs"), "name": "job"}
    assert find_resume("auto", run_name=None, **where) == (run, run / "checkpoints" / "iter_000004")
    # nothing to resume: a fresh run
    assert find_resume("auto", run_name="other", **where) == (None, None)
    explicit = str(run / "checkpoints" / "iter_000001")
    assert find_resume(explicit, run_name=None, **where) == (run, run / "checkpoints" / "iter_000001")
    with pytest.raises(ValueError, match="resume='/nowhere'"):
        Config.model_validate({"resume": "/nowhere"})


def test_trim_metrics_drops_records_after_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"iteration": i, "x": i}) + "\n" for i in (-1, 0, 1, 2, 3)))
    trim_metrics(path, 2)
    assert [json.loads(line)["iteration"] for line in path.read_text().splitlines()] == [-1, 0, 1, 2]


def test_a_fresh_run_does_not_write_into_an_earlier_runs_folder(tmp_path):
    """A run name whose folder holds metrics stops a fresh run (naming the key and the ways
    out); resume=auto, a new name, or a folder without metrics goes ahead."""
    folder = tmp_path / "r"
    assert earlier_run(str(tmp_path), "r", None) is None  # nothing there yet
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("")
    assert earlier_run(str(tmp_path), "r", None) is None  # killed before its first record
    (folder / "metrics.jsonl").write_text(json.dumps({"iteration": 0}) + "\n")
    problem = earlier_run(str(tmp_path), "r", None)
    assert problem.startswith("log.run_name='r': ") and "resume=auto" in problem
    assert earlier_run(str(tmp_path), "r", "auto") is None  # starts over there, or resumes
    assert earlier_run(str(tmp_path), "other", None) is None
    assert earlier_run(str(tmp_path), None, None) is None  # names are stamped with the time


def test_what_a_run_writes_again_starts_after_its_checkpoint_or_from_sft(tmp_path):
    checkpoint = tmp_path / "r" / "checkpoints" / "iter_000004"
    checkpoint.mkdir(parents=True)
    (checkpoint / "meta.json").write_text(json.dumps({"iteration": 4}))
    assert superseded_from(tmp_path / "r", checkpoint) == 5  # resumed: iterations 5 on again
    assert superseded_from(tmp_path / "r", None) is None  # no records there yet
    (tmp_path / "r" / "metrics.jsonl").write_text(json.dumps({"iteration": -1}) + "\n")
    assert superseded_from(tmp_path / "r", None) == -1  # starting over: every record again
    assert superseded_from(None, None) is None  # a new time-stamped folder


# An entropy bonus gives every step a gradient even when no episode succeeds, so weights, Adam
# moments, the cosine schedule and the mini-batch shuffling all have to survive the restart.
CLI = [sys.executable, "-m", "turnwise.trainer.cli", "train", "household_grpo",
       "train.iterations=3", "sft.episodes=4", "sft.epochs=1", "eval.tasks=0",
       "rollout.tasks_per_iteration=2", "rollout.group_size=2", "rollout.max_turns=3",
       "rollout.max_tokens_per_turn=12", "train.threads=1", "train.lr=1e-3",
       "train.lr_schedule=cosine", "train.warmup_steps=1", "train.minibatches=2",
       "loss.entropy_coef=0.01", "checkpoint.every=1", "deterministic=true", "sft.cache=false"]


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _comparable(record):
    """Everything but wall-clock measurements."""
    return {k: v for k, v in record.items() if not k.startswith(("time/", "perf/"))
            and not k.endswith("_seconds") and "latency" not in k}


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_metrics(tiny_path, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = subprocess.run(CLI + [f"log.dir={tmp_path}", "log.run_name=whole"],
                           capture_output=True, text=True, check=False, timeout=300, env=env)
    assert whole.returncode == 0, whole.stderr[-3000:]

    # Kill the second run with SIGKILL while it plays iteration 2 (checkpoint 1 is on disk).
    killed = subprocess.Popen(CLI + [f"log.dir={tmp_path}", "log.run_name=cut"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    marker = tmp_path / "cut" / "checkpoints" / "iter_000001" / "meta.json"
    deadline = time.time() + 300
    while not marker.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert marker.exists()
    # SFT and iteration 1 are logged; iteration 2 never finished.
    assert [r["iteration"] for r in _records(tmp_path / "cut" / "metrics.jsonl")] == [-1, 1]

    resumed = subprocess.run(CLI + [f"log.dir={tmp_path}", "log.run_name=cut", "resume=auto"],
                             capture_output=True, text=True, check=False, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and "at iteration 1" in resumed.stdout
    expected = [_comparable(r) for r in _records(tmp_path / "whole" / "metrics.jsonl")]
    got = [_comparable(r) for r in _records(tmp_path / "cut" / "metrics.jsonl")]
    assert [r["iteration"] for r in got] == [-1, 1, 2, 3]
    assert got == expected
    assert [r["train/optimizer_steps"] for r in expected[1:]] == [2, 2, 2]
    assert all(r["train/grad_norm"] > 0 for r in expected[1:])
    assert len({r["train/lr"] for r in expected[1:]}) == 3  # the schedule moved on each time
    assert expected[-1]["policy_version"] == 3


@pytest.mark.slow
def test_a_run_without_a_checkpoint_starts_over_in_its_folder(tmp_path):
    """resume=auto in a folder whose run left metrics but no checkpoint: the new run's records
    replace the old ones in metrics.jsonl and in TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from turnwise.trainer.loop import train
    from turnwise.trainer.recipe import load_recipe

    def attempt(lr):
        cfg = load_recipe("household_grpo", [
            "train.iterations=2", "sft.episodes=0", "eval.tasks=0", "resume=auto",
            "rollout.tasks_per_iteration=1", "rollout.group_size=2", "rollout.max_turns=2",
            "rollout.max_tokens_per_turn=8", "train.threads=1", "log.quiet=true",
            "log.plot_every=0", f"log.dir={tmp_path}", "log.run_name=r", f"train.lr={lr}"])
        said = []
        train(cfg, echo=said.append)
        return said

    attempt(1e-4)
    said = attempt(2e-4)
    assert any("starting over" in line for line in said)
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").open()]
    assert [(r["iteration"], r["train/lr"]) for r in records] == [(1, 2e-4), (2, 2e-4)]
    events = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    events.Reload()
    assert [(e.step, round(e.value, 8)) for e in events.Scalars("train/lr")] == [
        (1, 2e-4), (2, 2e-4)]
