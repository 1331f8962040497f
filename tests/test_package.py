"""The distribution installs as `turnwise.*` from any directory, editable and as a wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["agent", "tools", "envs", "rollouts", "credit", "trainer"]


@pytest.mark.slow
def test_imports_from_another_directory(tmp_path):
    code = "import turnwise.credit, turnwise.trainer.loop, turnwise.envs; print(turnwise.credit.names())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "grpo" in out.stdout


@pytest.mark.slow
def test_wheel_holds_every_package_and_the_recipes(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("turnwise-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for package in PACKAGES:
        for init in (ROOT / package).rglob("__init__.py"):
            assert f"turnwise/{init.relative_to(ROOT)}" in names, init
    assert "turnwise/recipes/household_grpo.yaml" in names
    # Installed on its own (dependencies come from this environment), it imports by name.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    code = ("import turnwise.credit, turnwise.trainer.recipe as r; "
            "print(turnwise.credit.__file__); print(r.bundled_recipes())")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert str(target) in out.stdout and "household_grpo" in out.stdout
