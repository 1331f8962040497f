"""The documentation site builds with `mkdocs build --strict` (a broken link, anchor or API
reference fails it), with nothing fetched; its recipe schema page holds every key of
trainer/config.py with its default."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from turnwise.trainer.config import Config

ROOT = Path(__file__).resolve().parents[1]


def _schema_module():
    spec = importlib.util.spec_from_file_location("recipe_schema",
                                                  ROOT / "docs" / "hooks" / "recipe_schema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keys(model: type[BaseModel], path: str = "") -> list[tuple[str, str, object]]:
    """(section path, key, field) of every key, nested sections included."""
    out = []
    for name, field in model.model_fields.items():
        out.append((path, name, field))
        for arg in [field.annotation, *getattr(field.annotation, "__args__", ())]:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out += _keys(arg, f"{path}.{name}" if path else name)
    return out


def test_the_schema_page_has_every_key_with_its_type_and_default():
    schema = _schema_module()
    page = schema.render()
    sections = re.split(r"^## ", page, flags=re.MULTILINE)
    by_title = {s.splitlines()[0].split(" {")[0].strip("`"): s for s in sections[1:]}
    keys = _keys(Config)
    assert len(keys) > 150
    for path, name, field in keys:
        section = by_title["Top level" if not path else path]
        [row] = [r for r in section.splitlines() if r.startswith(f"| `{name}` |")]
        assert schema.default_text(field) in row, (path, name, row)
    # A comment beside a key in the source is its meaning; a literal's values are listed.
    [row] = [r for r in by_title["rollout"].splitlines() if r.startswith("| `max_staleness` |")]
    assert "the producer plays up to max_staleness steps' groups ahead" in row
    assert "int (>= 0)" in row and "| `0` |" in row
    [row] = [r for r in by_title["engine"].splitlines() if r.startswith("| `kind` |")]
    assert 'one of `"hf"`, `"vllm"`, `"server"`, `"openai"`' in row


@pytest.mark.slow
def test_the_site_builds_strictly_with_the_api_and_schema_pages(tmp_path):
    site = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                         cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stderr[-4000:]
    api = {page: (site / "reference" / "api" / page / "index.html").read_text()
           for page in ("tools", "envs", "credit", "engines", "backends")}
    for page, names in {"tools": ["ToolRegistry", "Executor", "register_builtin"],
                        "envs": ["EnvSuite", "register_suite", "ToolEnvFactory"],
                        "credit": ["register", "gigpo_advantages", "check_options"],
                        "engines": ["InferenceEngine", "make_engine", "Completion"],
                        "backends": ["Backend", "register_policy_loss"]}.items():
        for name in names:
            assert f'id="turnwise.' in api[page] and name in api[page], (page, name)
    schema = (site / "reference" / "recipe" / "index.html").read_text()
    assert "max_staleness" in schema and "task_sampling.mopps" in schema
    # Files beside docs/ that pages link to are part of the site.
    assert (site / "repo" / "benchmarks" / "RESULTS" / "index.html").is_file()
    # No page asks a font service or a CDN for anything.
    for html in site.rglob("*.html"):
        assert "fonts.googleapis.com" not in html.read_text(), html
