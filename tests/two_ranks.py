"""`turnwise train` on two gloo ranks under torchrun, one thread each (the DeepSpeed tests)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest


def train_on_two_ranks(args: list[str]) -> subprocess.CompletedProcess:
    """Run `turnwise train ARGS` on two CPU processes; skip where DeepSpeed is not installed,
    fail with both processes' output when the run fails."""
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed is not installed (the `deepspeed` extra)")
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "turnwise.trainer.cli", "train", *args],
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return run
