"""metrics.jsonl, tensorboard and wandb receive the same names; wandb never blocks a run."""

from __future__ import annotations

import json
import math

import pytest
from turnwise.trainer.config import Config, LogConfig, WandbConfig
from turnwise.trainer.report.sinks import JsonlSink, TensorboardSink
from turnwise.trainer.report.wandb_sink import resolve_mode

RECORDS = [{"iteration": 1, "rollout/reward": 0.5, "train/kl": float("nan"), "note": "x"},
           {"iteration": 2, "rollout/reward": 1.5, "train/kl": 0.01}]


def test_jsonl_writes_null_for_non_finite(tmp_path):
    sink = JsonlSink(tmp_path / "m.jsonl")
    for r in RECORDS:
        sink.log(r)
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert lines[0] == {"iteration": 1, "rollout/reward": 0.5, "train/kl": None, "note": "x"}
    assert lines[1]["train/kl"] == 0.01


def test_tensorboard_scalars_under_the_metric_names(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sink = TensorboardSink(tmp_path / "tb")
    for r in RECORDS:
        sink.log(r)
    sink.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["rollout/reward", "train/kl"]
    reward = [(e.step, e.value) for e in events.Scalars("rollout/reward")]
    assert reward == [(1, 0.5), (2, 1.5)]
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("train/kl")] == [(2, 0.01)]


def test_a_resumed_or_restarted_run_hides_the_steps_it_writes_again(tmp_path):
    """An attempt killed after logging iteration 3 (its checkpoint: 2) is resumed and logs 3
    and 4 again; TensorBoard shows each step once, with the new value. A restart hides all."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def attempt(records, purge_from):
        sink = TensorboardSink(tmp_path / "tb", purge_from=purge_from)
        for iteration, value in records:
            sink.log({"iteration": iteration, "rollout/reward": value})
        sink.close()

    def shown():
        events = EventAccumulator(str(tmp_path / "tb"))
        events.Reload()
        return [(e.step, e.value) for e in events.Scalars("rollout/reward")]

    attempt([(-1, 0.0), (1, 1.0), (2, 2.0), (3, 3.0)], None)
    attempt([(3, 30.0), (4, 40.0)], 3)
    assert shown() == [(-1, 0.0), (1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
    attempt([(-1, 5.0), (1, 6.0)], -1)  # started over
    assert shown() == [(-1, 5.0), (1, 6.0)]


def test_wandb_mode_recipe_then_environment_then_offline():
    assert resolve_mode(WandbConfig(), {}) == "offline"
    assert resolve_mode(WandbConfig(), {"WANDB_MODE": "online"}) == "online"
    assert resolve_mode(WandbConfig(), {"WANDB_MODE": "dryrun"}) == "offline"
    assert resolve_mode(WandbConfig(mode="disabled"), {"WANDB_MODE": "online"}) == "disabled"
    with pytest.raises(ValueError, match="WANDB_MODE='sometimes'"):
        resolve_mode(WandbConfig(), {"WANDB_MODE": "sometimes"})


@pytest.fixture()
def no_wandb_login(tmp_path, monkeypatch):
    """No API key anywhere wandb looks (environment, ~/.netrc, settings files)."""
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / ".config" / "wandb"))
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))


def test_online_without_login_falls_back_to_offline_and_keeps_logging(tmp_path, no_wandb_login):
    import time

    from turnwise.trainer.runlog import RunLog

    warnings = []
    cfg = Config(log=LogConfig(dir=str(tmp_path), run_name="w", tensorboard=False,
                               wandb=WandbConfig(mode="online", init_timeout=10)))
    started = time.perf_counter()
    log = RunLog(cfg.log, name=cfg.name, resolved=cfg.model_dump(), warn=warnings.append)
    wandb_sink = log.sinks[-1]
    assert wandb_sink.mode == "offline"
    assert any("online start failed" in w for w in warnings), warnings
    for r in RECORDS:
        log.log(r)
    log.close()
    assert time.perf_counter() - started < 60
    runs = list((tmp_path / "w" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb")), "no offline run file"
    lines = (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["rollout/reward"] for x in lines] == [0.5, 1.5]
    assert math.isnan(RECORDS[0]["train/kl"])  # the caller's record is left as it was
