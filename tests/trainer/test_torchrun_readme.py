"""The scaling-out guide's two-CPU-process command (docs/guides/scaling-out.md) runs as written: two gloo ranks under torchrun, ZeRO-3,
the cpu-tiny preset with its SFT cache (rank 0 saves it, every rank loads it on the next run),
on a console without per-rank noise; a recipe that cannot run stops with one line."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow, pytest.mark.deepspeed,
    pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                       reason="deepspeed is not installed (the `deepspeed` extra)"),
]

ROOT = Path(__file__).resolve().parents[2]
# The smallest run that still plays demonstrations, trains SFT, caches it and trains RL.
SMALL = ["sft.episodes=16", "train.iterations=1", "eval.tasks=4", "eval.every=0",
         "rollout.tasks_per_iteration=2", "rollout.group_size=2"]
NOISE = ["Traceback", "FutureWarning", "Setting accelerator to CPU", "built successfully",
         "Loading weights", "Writing model shards"]


def readme_command() -> list[str]:
    """The guide's torchrun command for 2 CPU processes, as written there."""
    text = (ROOT / "docs" / "guides" / "scaling-out.md").read_text()
    match = re.search(r"^(torchrun --nproc_per_node 2 .*?)(?<!\\)$", text, re.MULTILINE | re.DOTALL)
    assert match, "docs/guides/scaling-out.md lost its two-CPU-process torchrun example"
    return shlex.split(match.group(1).replace("\\\n", " "))


def _run(args: list[str], tmp_path: Path, env: dict) -> subprocess.CompletedProcess:
    torchrun = str(Path(sys.executable).parent / "torchrun")
    return subprocess.run([torchrun, *args[1:]], cwd=tmp_path, env=env, capture_output=True,
                          text=True, check=False, timeout=900)


def test_two_deepspeed_ranks_run_the_readme_command_with_the_sft_cache(tmp_path, tiny_path):
    command = readme_command()
    assert command[:3] == ["torchrun", "--nproc_per_node", "2"]
    assert "train.backend=deepspeed" in command and "deepspeed.zero_stage=3" in command
    assert not any(a.startswith("preset=") for a in command)  # the default: cpu-tiny
    # A private cache (the SFT policy is written there), seeded with the shared tiny models so
    # they are not built again.
    cache = tmp_path / "cache"
    for built in Path(tiny_path).parent.glob("tiny-household*"):
        shutil.copytree(built, cache / "tiny" / built.name)
    env = {**os.environ, "TURNWISE_CACHE": str(cache), "WANDB_MODE": "disabled"}

    first = _run([*command, *SMALL, f"log.dir={tmp_path / 'runs'}"], tmp_path, env)
    assert first.returncode == 0, first.stderr[-3000:]
    [policy] = (cache / "sft").iterdir()
    assert (policy / "config.json").exists() and (policy / "turnwise_sft.json").exists()
    assert "sft: 84 rows" in first.stdout and first.stdout.count("eval after:") == 1
    for noise in NOISE:
        assert noise not in first.stdout + first.stderr, noise

    second = _run([*command, *SMALL, f"log.dir={tmp_path / 'runs'}"], tmp_path, env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count(f"sft: cached policy {policy}") == 1  # rank 0 speaks once
    assert "sft: step" not in second.stdout  # no SFT trained: both ranks loaded the cache
    # Both runs name the SFT policy they started from. (Their RL iterations are not compared:
    # episodes batched as they arrive are not bit-reproducible without deterministic=true.)
    for run in (tmp_path / "runs").iterdir():
        assert json.loads((run / "summary.json").read_text())["sft_policy"] == str(policy)


def test_a_recipe_that_cannot_run_stops_every_rank_with_one_line(tmp_path):
    command = readme_command()
    out = _run([*command, "lora.enabled=true", f"log.dir={tmp_path / 'runs'}"], tmp_path,
               {**os.environ, "WANDB_MODE": "disabled"})
    assert out.returncode != 0
    errors = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert errors == ["error: recipe " + str(ROOT / "recipes" / "household_grpo.yaml")
                      + ": sft.cache=true with lora.enabled=true; the cache holds whole models, "
                        "allowed: sft.cache=false with LoRA"]
    assert f'File "{ROOT / "trainer"}' not in out.stderr  # no traceback of ours, on any rank
    assert not (tmp_path / "runs").exists()
