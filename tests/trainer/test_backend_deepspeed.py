"""Two processes of DeepSpeed (gloo, CPU) train like one torch process on the same data.

The workers (ds_worker.py) split a fixed batch unevenly between two ranks; the torch backend
trains on the whole batch here. Checked per ZeRO stage: metrics, weights, the engine's
generation from the synced weights, the exported policy, and an exact repeat after reloading a
checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from trainer_parity import ds_config, parity_batch, prompt_ids
from turnwise.trainer.backends.base import make_backend
from turnwise.trainer.dist import World
from turnwise.trainer.logprobs import token_logprobs

pytestmark = [
    pytest.mark.slow, pytest.mark.deepspeed,
    pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                       reason="deepspeed is not installed (the `deepspeed` extra)"),
]
WORKER = Path(__file__).with_name("ds_worker.py")


def torch_reference(model_path: str, stage: int):
    cfg = ds_config(model_path, stage, backend="torch")
    backend = make_backend(cfg, model_path, world=World(), device="cpu")
    batch = parity_batch()
    if cfg.kl.coef:
        backend.attach_reference(model_path)
        batch.ref_logprobs = backend.forward_logprobs(batch, reference=True)
    metrics = backend.update(batch)
    return metrics, {n: t.clone() for n, t in backend.state_dict_for_engine()}


@pytest.mark.parametrize("stage", [2, 3])
def test_two_ranks_match_the_torch_backend(tiny_path, tmp_path, stage):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(WORKER), "--model", tiny_path, "--stage", str(stage), "--out", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=900, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    result = json.loads((tmp_path / "result.json").read_text())
    saved = torch.load(tmp_path / "weights.pt")
    metrics, weights = torch_reference(tiny_path, stage)

    ds = result["metrics"]
    # ZeRO-3 runs padded with shared prefixes: each rank had a group within one micro-batch.
    assert (result["shared_passes"] > 0) == (stage == 3)
    assert ds["optimizer_steps"] == metrics["optimizer_steps"] == 2
    assert ds["trained_tokens"] == metrics["trained_tokens"] == 48
    for key in ("pg_loss", "grad_norm", "approx_kl", "clipfrac", "entropy", "rollout_logprob_diff"):
        assert ds[key] == pytest.approx(metrics[key], rel=1e-4, abs=1e-6), key
    assert metrics["grad_norm"] > 1.0  # so the global-norm clipping was exercised too
    if stage == 3:
        assert ds["ref_kl"] == pytest.approx(metrics["ref_kl"], rel=1e-4)
    assert weights.keys() == saved["weights"].keys()
    worst = max((weights[n] - saved["weights"][n]).abs().max().item() for n in weights)
    assert worst < 1e-4  # the two Adam steps themselves move weights by ~2e-3

    # The engine of each rank serves the new weights: version 1, and its logprobs are those of
    # the exported policy (from_pretrained), not of the initial model.
    from transformers import AutoModelForCausalLM

    assert result["version"] == 1
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "policy").eval()
    for name, tensor in exported.named_parameters():
        assert torch.allclose(tensor, saved["weights"][name]), name
    ids = torch.tensor([prompt_ids() + result["tokens"]])
    with torch.no_grad():
        new = token_logprobs(exported, ids, torch.ones_like(ids))[0][0, len(prompt_ids()):]
        old = token_logprobs(AutoModelForCausalLM.from_pretrained(tiny_path).eval(), ids,
                             torch.ones_like(ids))[0][0, len(prompt_ids()):]
    assert torch.allclose(new, torch.tensor(result["logprobs"]), atol=1e-4)
    assert (new - old).abs().max() > 1e-3

    # Checkpoint, step, reload, step again: the same weights to the bit.
    for name in weights:
        assert torch.equal(saved["after"][name], saved["repeated"][name]), name
