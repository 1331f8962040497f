"""Training faults: NaN/inf losses and gradients skip the update (both backends) and are reported
as `skipped_steps`; damaged checkpoints are detected by their checksums and the previous one is
used. (A run killed with SIGKILL mid-iteration resuming with identical metrics is
tests/trainer/test_checkpoints.py::test_killed_run_resumes_with_the_same_metrics.)"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fault_ledger import record

sys.path.insert(0, str(Path(__file__).parent.parent / "trainer"))  # when run on its own
from trainer_parity import make_batch  # noqa: E402
from turnwise.trainer.backends.torch_backend import TorchBackend
from turnwise.trainer.checkpoint import (
    checkpoint_problem,
    find_resume,
    load_checkpoint,
    newest_intact,
    save_checkpoint,
)
from turnwise.trainer.config import LossConfig, TrainConfig
from turnwise.trainer.dist import World

WORKER = Path(__file__).with_name("nan_worker.py")
TRAINER_TESTS = Path(__file__).parent.parent / "trainer"


def poison(backend: TorchBackend, where: str, value: float):
    """A hook that makes the logits (loss) or one parameter's gradient NaN/inf."""
    if where == "loss":
        return backend.model.register_forward_hook(
            lambda module, args, out: out.__class__(**{**out, "logits": out.logits * value}))
    param = next(p for p in backend.model.parameters() if p.requires_grad)
    return param.register_hook(lambda g: torch.full_like(g, value))


@pytest.mark.parametrize("where", ["loss", "gradient"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_torch_backend_skips_non_finite_updates(tiny_model, where, value):
    batch = make_batch([12, 9, 15, 7], response=4)
    backend = TorchBackend(tiny_model, TrainConfig(lr=1e-3, minibatches=2), LossConfig())
    before = {n: t.clone() for n, t in backend.state_dict_for_engine()}
    hook = poison(backend, where, value)
    bad = backend.update(batch)
    hook.remove()
    assert (bad["optimizer_steps"], bad["skipped_steps"]) == (0, 2)
    assert math.isnan(bad["grad_norm"]) and backend.steps == 0
    for name, tensor in backend.state_dict_for_engine():
        assert torch.equal(tensor, before[name]), name  # not one weight moved
    good = backend.update(batch)
    assert (good["optimizer_steps"], good["skipped_steps"]) == (2, 0)
    assert math.isfinite(good["grad_norm"]) and good["grad_norm"] > 0
    assert all(torch.isfinite(t).all() for _, t in backend.state_dict_for_engine())
    record("training", f"torch: {value} in the {where}", 2, 2)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                    reason="deepspeed is not installed (the `deepspeed` extra)")
def test_deepspeed_backend_skips_non_finite_updates_at_every_zero_stage(tiny_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "1"}
    run = subprocess.run([sys.executable, str(WORKER), tiny_path, "0,1,2,3", str(TRAINER_TESTS)],
                         capture_output=True, text=True, timeout=300, env=env, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert [r["stage"] for r in results] == [0, 1, 2, 3]
    for r in results:
        poisoned, clean = r["poisoned"], r["clean"]
        # Stage 0 used to apply the NaN step (every weight NaN) and report it as skipped.
        assert (poisoned["optimizer_steps"], poisoned["skipped_steps"]) == (0, 1), r
        assert r["unchanged_after_nan"] and r["finite_after"] and r["moved_after_clean"], r
        assert (clean["optimizer_steps"], clean["skipped_steps"]) == (1, 0), r
        assert clean["grad_norm"] == pytest.approx(results[0]["clean"]["grad_norm"], rel=1e-4)
    record("training", "deepspeed ZeRO 0-3: NaN gradient", 4, 4)


def _three_checkpoints(tmp_path, model):
    backend = TorchBackend(model, TrainConfig(lr=1e-3), LossConfig())
    backend.update(make_batch([12, 9], response=4))
    for iteration in (1, 2, 3):
        save_checkpoint(tmp_path, iteration, backend, World(), meta={"engine_version": iteration},
                        keep=3)
    return backend, tmp_path / "checkpoints"


def test_damaged_checkpoints_are_detected_and_the_previous_one_is_used(tiny_model, tiny_path,
                                                                      tmp_path):
    from transformers import AutoModelForCausalLM

    _, folder = _three_checkpoints(tmp_path, tiny_model)
    meta = json.loads((folder / "iter_000003" / "meta.json").read_text())
    assert set(meta["files"]) == {"backend/backend.pt", "rng_rank0.pt"}
    assert all(checkpoint_problem(folder / f"iter_00000{i}") is None for i in (1, 2, 3))

    # Newest: one flipped byte (same size). Middle: cut short, as a full disk leaves it.
    newest = folder / "iter_000003" / "backend" / "backend.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    middle = folder / "iter_000002" / "rng_rank0.pt"
    middle.write_bytes(middle.read_bytes()[:100])
    assert checkpoint_problem(folder / "iter_000003") == (
        "backend/backend.pt does not match its SHA-256 checksum")
    assert checkpoint_problem(folder / "iter_000002").startswith("rng_rank0.pt has 100 bytes, ")

    warnings: list[str] = []
    assert newest_intact(tmp_path, warn=warnings.append) == folder / "iter_000001"
    assert [w.split(": ")[:2] for w in warnings] == [
        ["warning", f"skipping damaged checkpoint {folder / 'iter_000003'}"],
        ["warning", f"skipping damaged checkpoint {folder / 'iter_000002'}"]]
    assert find_resume("auto", log_dir=str(tmp_path.parent), run_name=tmp_path.name,
                       name="run") == (tmp_path, folder / "iter_000001")

    fresh = TorchBackend(AutoModelForCausalLM.from_pretrained(tiny_path), TrainConfig(),
                         LossConfig())
    with pytest.raises(ValueError, match="iter_000003 is damaged: backend/backend.pt does not "
                                         "match its SHA-256 checksum"):
        load_checkpoint(folder / "iter_000003", fresh, World())
    assert load_checkpoint(folder / "iter_000001", fresh, World())["iteration"] == 1

    (folder / "iter_000001" / "rng_rank0.pt").unlink()  # a file gone: nothing intact is left
    assert newest_intact(tmp_path, warn=warnings.append) is None
    assert warnings[-1].endswith("rng_rank0.pt is missing")
    record("training", "checkpoint: flipped byte / truncated / missing file", 3, 3)


def test_a_save_killed_midway_leaves_the_previous_checkpoint_whole(tiny_model, tmp_path):
    backend, folder = _three_checkpoints(tmp_path, tiny_model)

    class Dies(Exception):
        pass

    def crash(path):  # the process dies while the backend writes its state
        Path(path, "backend.pt").write_bytes(b"half a tensor")
        raise Dies

    backend.save = crash
    with pytest.raises(Dies):
        save_checkpoint(tmp_path, 4, backend, World(), meta={"engine_version": 4}, keep=3)
    assert (folder / ".tmp-iter_000004").exists() and not (folder / "iter_000004").exists()
    assert newest_intact(tmp_path) == folder / "iter_000003"
    record("training", "checkpoint write interrupted", 1, 1)
