"""README.md's examples run as written: every Python block in a fresh interpreter, every YAML
config fragment as a recipe, the command that loads a user's suite; and `make test` says why
tests were skipped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from turnwise.trainer.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PYTHON = re.findall(r"^```python\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
YAML = [re.sub(r"^  ", "", block, flags=re.MULTILINE)
        for block in re.findall(r"^ *```yaml\n(.*?)^ *```", README, re.MULTILINE | re.DOTALL)]
# The corpus the ToolEnvFactory example indexes, with the fields the README documents.
WIKI = ('{"id": "fr", "title": "France", "text": "Paris is the capital of France."}\n'
        '{"id": "de", "title": "Germany", "text": "Berlin is the capital of Germany."}\n')

# What each known example must do beyond running: (a line of its code, code run after it,
# text its output must hold).
CHECKS = {
    "class GuessSuite:": (
        ("from turnwise.envs import make_suite\n"
         "assert [t.data['secret'] for t in make_suite('guess').tasks('train', 3, 0)] == [1, 2, 3]"),
        ""),
    "async def weather(": ("", "ok 18 degrees C in Oslo"),
    "factory = ToolEnvFactory(": ("", "<information>Doc 1 (Title: France) Paris is the capital"),
    '@register("last_turn_grpo")': (
        ("from turnwise.credit import registry\n"
         "assert registry.get('last_turn_grpo') is last_turn_grpo"), ""),
}


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=300)


def test_the_readme_has_the_examples_this_file_checks():
    assert len(PYTHON) >= len(CHECKS) and len(YAML) >= 3
    for marker in CHECKS:
        assert sum(marker in block for block in PYTHON) == 1, marker


@pytest.mark.slow
@pytest.mark.parametrize("block", PYTHON, ids=[b.splitlines()[0][:40] for b in PYTHON])
def test_python_example_runs_as_written(block, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "wiki.jsonl").write_text(WIKI)
    after, expected = next((check for marker, check in CHECKS.items() if marker in block),
                           ("", ""))
    out = _python(block + "\n" + after, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert expected in out.stdout
    if "factory = ToolEnvFactory(" in block:  # the episode ends answered, rewarded, evidenced
        assert out.stdout.splitlines()[-1] == "1.0 True True"


@pytest.mark.parametrize("fragment", YAML, ids=[f"yaml{i}" for i in range(len(YAML))])
def test_yaml_fragment_is_a_valid_recipe_layer(fragment, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("extends: household_grpo\n" + fragment)
    cfg = load_recipe(str(recipe))
    written = yaml.safe_load(fragment)
    assert cfg.env.name == written["env"]["name"]
    assert cfg.env.options.items() >= written["env"]["options"].items()


@pytest.mark.slow
def test_the_readme_command_loads_the_users_suite(tmp_path):
    [guess] = [block for block in PYTHON if "class GuessSuite:" in block]
    (tmp_path / "guess_env.py").write_text(guess)
    match = re.search(r"`(turnwise train\s+household_grpo env\.name=guess --import guess_env)`",
                      README)
    assert match, "README.md lost the command that loads guess_env"
    args = match.group(1).split()
    args[1] = "config"  # resolve the recipe the same way, without training
    out = subprocess.run([str(Path(sys.executable).parent / args[0]), *args[1:]], cwd=tmp_path,
                         capture_output=True, text=True, check=False, timeout=300,
                         env={**os.environ, "WANDB_MODE": "disabled"})
    assert out.returncode == 0, out.stderr
    assert "name: guess\n" in out.stdout and "- guess_env\n" in out.stdout


def test_make_test_says_why_tests_were_skipped():
    calls = [line for line in (ROOT / "Makefile").read_text().splitlines()
             if "-m pytest" in line]
    assert len(calls) == 2 and all(" -rs " in line for line in calls)
