"""docs/gateway.md's examples run as written: the agent program and its recipe train with
`turnwise train`, and the stand-alone gateway example prints a recorded turn."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = (Path(__file__).resolve().parents[2] / "docs" / "gateway.md").read_text()
PYTHON = re.findall(r"^```python\n(.*?)^```", DOC, re.MULTILINE | re.DOTALL)
YAML = re.findall(r"^```yaml\n(.*?)^```", DOC, re.MULTILINE | re.DOTALL)


def _block(marker: str) -> str:
    (found,) = [b for b in PYTHON if marker in b]
    return found


@pytest.mark.slow
def test_the_agent_program_example_trains(tmp_path):
    (tmp_path / "my_agent.py").write_text(_block("# my_agent.py"))
    (tmp_path / "my_recipe.yaml").write_text(YAML[0])
    out = subprocess.run(
        [sys.executable, "-m", "turnwise.trainer.cli", "train", "my_recipe.yaml",
         f"log.dir={tmp_path / 'runs'}", "log.quiet=true"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=900,
        env={**os.environ, "WANDB_MODE": "disabled"})
    assert out.returncode == 0, out.stderr[-3000:]
    (metrics,) = (tmp_path / "runs").glob("*/metrics.jsonl")
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    sft = next(r for r in records if r["iteration"] == -1)
    trained = [r for r in records if "rollout/episodes" in r]
    assert sft["sft/rows"] > 0
    assert [r["iteration"] for r in trained] == [1, 2]
    assert all(r["rollout/episodes"] == 16 and r["rollout/status_failed"] == 0 for r in trained)


@pytest.mark.slow
def test_the_standalone_gateway_example_records_a_turn(tmp_path):
    out = subprocess.run([sys.executable, "-c", _block("gateway = Gateway(tokenizer)")],
                         cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"^\d+ prompt ids, \d+ response ids, logprob of the first -\d",
                     out.stdout, re.MULTILINE), out.stdout
