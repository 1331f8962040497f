"""Every code block of README.md and docs/ runs as written, or says why it cannot.

A block's kind is its fence's language; an HTML comment on the line before the fence may direct
it (the comment does not show on the rendered page):

    <!-- not-run: REASON -->           not run (a GPU, several machines, a server, hours): the
                                       reason is required
    <!-- tested-by: tests/PATH.py -->  run by that test, which reads the block from this page
    <!-- file: PATH -->                a file the page's other blocks use, written before they run
    <!-- run -->                       bash / console: run the commands
    <!-- config-check -->              bash: resolve each `turnwise train|eval|serve|config`
                                       command with `turnwise config` (its recipe, overrides and
                                       imports; nothing trains)
    <!-- recipe: BASE -->              yaml: a layer over the bundled recipe BASE

and `<!-- files-from: PAGE -->` anywhere in a page gives its blocks the file blocks of PAGE
(a path under docs/) too.

Without a directive: `python` runs in a fresh interpreter in the page's folder, and a line
`print(...)  # TEXT` must print TEXT (`...` in it stands for anything); `yaml` is a layer over
household_grpo; `json` and `toml` must parse; `text` is an illustration (output, a diagram), not
code. A fence without a language, or any other language without a directive, fails the test.
In a `console` block, `$ command` lines run and the lines after one must appear in its output.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from turnwise.trainer.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md")
                                     if "hooks" not in p.parts)]
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```",
                   re.MULTILINE | re.DOTALL)
DIRECTIVE = re.compile(r"<!--\s*(?P<key>[\w-]+)\s*(?::\s*(?P<value>.*?))?\s*-->\s*$")
KEYS = {"not-run", "tested-by", "file", "run", "config-check", "recipe"}
BIN = Path(sys.executable).parent


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: str
    key: str | None
    value: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, dedented, with the directive before each."""
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        start = text.count("\n", 0, match.start())
        before = [line for line in text.splitlines()[:start] if line.strip()]
        directive = DIRECTIVE.search(before[-1]) if before else None
        indent = len(match.group("indent"))
        body = "".join(line[indent:] if line[:indent].isspace() else line
                       for line in match.group("body").splitlines(keepends=True))
        found.append(Block(page, start + 1, match.group("lang"), body,
                           directive.group("key") if directive else None,
                           (directive.group("value") or "") if directive else ""))
    return found


BLOCKS = [block for page in PAGES for block in blocks_of(page)]


def _of(kind) -> list[Block]:
    return [b for b in BLOCKS if kind(b)]


def _params(blocks: list[Block]):
    return pytest.mark.parametrize("block", blocks, ids=[b.id for b in blocks])


def test_every_block_runs_or_says_why_not():
    problems = []
    for b in BLOCKS:
        if b.key is not None and b.key not in KEYS:
            problems.append(f"{b.id}: unknown directive {b.key!r}; allowed are {sorted(KEYS)}")
        elif b.key in ("not-run", "tested-by", "file", "recipe") and not b.value.strip():
            problems.append(f"{b.id}: <!-- {b.key}: ... --> needs a value")
        elif not b.lang:
            problems.append(f"{b.id}: a fence without a language (text for output or diagrams)")
        elif b.key is None and b.lang not in ("python", "yaml", "json", "toml", "text"):
            problems.append(f"{b.id}: a {b.lang} block needs <!-- run -->, <!-- config-check --> "
                            f"or <!-- not-run: why -->")
    assert not problems, "\n".join(problems)


def test_no_indented_code_blocks():
    """A code block indented by four spaces has no language or directive: fence it instead."""
    problems = []
    for page in PAGES:
        text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), page.read_text())
        lines = text.splitlines()
        for i, line in enumerate(lines[1:], start=1):
            before = lines[i - 1]
            if line.startswith("    ") and line.strip() and not before.strip() and i >= 2 \
                    and not re.match(r"^(\s+|- |\d+\. |\|)", lines[i - 2]) and lines[i - 2].strip():
                problems.append(f"{page.relative_to(ROOT)}:{i + 1}: {line.strip()[:60]}")
    assert not problems, "indented code blocks:\n" + "\n".join(problems)


@_params(_of(lambda b: b.key == "tested-by"))
def test_the_named_test_reads_the_block_from_its_page(block):
    test = ROOT / block.value.strip()
    assert test.is_file(), f"{block.id}: {block.value} does not exist"
    assert block.page.relative_to(ROOT).as_posix() in test.read_text(), \
        f"{block.id}: {block.value} does not read {block.page.relative_to(ROOT)}"


@_params(_of(lambda b: b.lang == "yaml" and b.key in (None, "recipe")))
def test_yaml_block_is_a_recipe_layer(block, tmp_path):
    base = block.value.strip() or "household_grpo"
    layer = yaml.safe_load(block.body)
    _write_files(block.page, tmp_path)
    recipe = tmp_path / "layer.yaml"
    recipe.write_text(block.body if "extends" in layer else f"extends: {base}\n" + block.body)
    resolved = load_recipe(str(recipe)).model_dump()
    _assert_subset(layer, resolved, block.id)


def _assert_subset(written, resolved, where: str, path: str = "") -> None:
    """Every key the layer sets holds the value it set in the resolved config."""
    if isinstance(written, dict):
        for key, value in written.items():
            if key in ("extends", "presets", "imports") and not path:
                continue
            assert key in resolved, f"{where}: {path}{key} is not in the resolved config"
            _assert_subset(value, resolved[key], where, f"{path}{key}.")
    else:
        assert written == resolved, f"{where}: {path[:-1]} is {resolved!r}, the page says {written!r}"


@_params(_of(lambda b: b.lang in ("json", "toml") and b.key in (None, "file")))
def test_data_block_parses(block):
    if block.lang == "toml":
        tomllib.loads(block.body)
    else:
        for line in block.body.splitlines() if "\n{" in block.body else [block.body]:
            json.loads(line)


def test_readme_links_point_at_files():
    readme = (ROOT / "README.md").read_text()
    for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme):
        if not re.match(r"^[a-z]+:", link):
            assert (ROOT / link).exists(), f"README.md links to {link}, which does not exist"


def test_make_test_says_why_tests_were_skipped():
    calls = [line for line in (ROOT / "Makefile").read_text().splitlines()
             if "-m pytest" in line]
    assert len(calls) == 2 and all(" -rs " in line for line in calls)


# -- the runs: each starts Python or the CLI, so they take seconds ------------------------------


def _write_files(page: Path, folder: Path) -> None:
    """The page's file blocks, and those of the pages it names in <!-- files-from: PAGE -->."""
    for other in re.findall(r"<!--\s*files-from:\s*(\S+)", page.read_text()):
        _write_files(ROOT / "docs" / other, folder)
    for b in blocks_of(page):
        if b.key == "file":
            target = folder / b.value.strip()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(b.body)


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def _expected_prints(code: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^\s*print\(.*\)\s+#\s*(.+)$", code,
                                                    re.MULTILINE)]


def _appears(expected: str, lines: list[str], start: int) -> int:
    """The index of the first line from `start` that holds `expected` ('...' is anything)."""
    pattern = ".*".join(re.escape(part.strip()) for part in expected.split("..."))
    for i in range(start, len(lines)):
        if re.search(pattern, lines[i]):
            return i
    raise AssertionError(f"no line holds {expected!r}; output:\n" + "\n".join(lines[start:]))


@pytest.mark.slow
@_params(_of(lambda b: b.lang == "python" and b.key in (None, "run")))
def test_python_block_runs(block, tmp_path):
    _write_files(block.page, tmp_path)
    out = subprocess.run([sys.executable, "-c", block.body], cwd=tmp_path, capture_output=True,
                         text=True, check=False, timeout=600, env=_env())
    assert out.returncode == 0, out.stderr[-3000:]
    lines, at = out.stdout.splitlines(), 0
    for expected in _expected_prints(block.body):
        at = _appears(expected, lines, at) + 1


@pytest.mark.slow
@_params(_of(lambda b: b.lang == "python" and b.key == "file"))
def test_python_file_block_imports(block, tmp_path):
    _write_files(block.page, tmp_path)
    module = Path(block.value.strip()).with_suffix("").as_posix().replace("/", ".")
    out = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=tmp_path,
                         capture_output=True, text=True, check=False, timeout=300, env=_env())
    assert out.returncode == 0, out.stderr[-3000:]


def _commands(body: str) -> list[list[str]]:
    """Each command of a shell block as arguments: continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [args for line in joined.splitlines() if (args := shlex.split(line, comments=True))]


def _turnwise(args: list[str]) -> list[str]:
    return [str(BIN / "turnwise"), *args[1:]] if args[0].endswith("turnwise") else args


@pytest.mark.slow
@_params(_of(lambda b: b.key == "run" and b.lang == "bash"))
def test_shell_block_runs(block, tmp_path):
    _write_files(block.page, tmp_path)
    for args in _commands(block.body):
        out = subprocess.run(_turnwise(args), cwd=tmp_path, capture_output=True, text=True,
                             check=False, timeout=900, env=_env())
        assert out.returncode == 0, f"{' '.join(args)}:\n{out.stderr[-3000:]}"


@pytest.mark.slow
@_params(_of(lambda b: b.key == "run" and b.lang == "console"))
def test_console_block_prints_what_it_shows(block, tmp_path):
    _write_files(block.page, tmp_path)
    sessions = re.split(r"^\$ ", block.body, flags=re.MULTILINE)[1:]
    assert sessions, f"{block.id}: a console block without `$ command` lines"
    for session in sessions:
        command, *shown = session.splitlines()
        out = subprocess.run(_turnwise(shlex.split(command)), cwd=tmp_path, capture_output=True,
                             text=True, check=False, timeout=300, env=_env())
        lines, at = (out.stdout + out.stderr).splitlines(), 0
        for expected in filter(str.strip, shown):
            at = _appears(expected, lines, at) + 1


# Options of eval and serve that `turnwise config` does not take: those with a value.
_VALUED = {"--split", "--tasks", "--samples", "--task-seed", "--policy", "--out", "--servers",
           "--port", "--host", "--model", "--python", "--kv-cache-gib", "--gpus",
           "--gpu-memory-utilization"}


def config_command(args: list[str]) -> list[str]:
    """`turnwise config` with the recipe, overrides and imports of a train/eval/serve command."""
    while args and re.fullmatch(r"[A-Z_]+=.*", args[0]):  # VAR=value before the command
        args = args[1:]
    for i, arg in enumerate(args):
        if arg.endswith("turnwise") or arg == "turnwise.trainer.cli":
            rest = args[i + 1:]
            break
    else:
        raise AssertionError(f"not a turnwise command: {' '.join(args)}")
    command, recipe, *options = rest
    assert command in ("train", "eval", "serve", "config"), f"turnwise {command}: not checkable"
    assert not recipe.isupper(), f"{recipe} is a placeholder: mark the block not-run"
    kept, skip = [], False
    for option in options:
        if skip:
            skip = False
        elif option in _VALUED:
            skip = True
        elif option == "--import" or "=" in option or kept and kept[-1] == "--import":
            kept.append(option)
        elif option != "--sampled":
            raise AssertionError(f"unknown option {option!r} in turnwise {command}")
    return [str(BIN / "turnwise"), "config", recipe, *kept]


@pytest.mark.slow
@_params(_of(lambda b: b.key == "config-check"))
def test_turnwise_commands_resolve(block, tmp_path):
    _write_files(block.page, tmp_path)
    commands = _commands(block.body)
    assert commands, f"{block.id}: no command to check"
    for args in commands:
        out = subprocess.run(config_command(args), cwd=tmp_path, capture_output=True, text=True,
                             check=False, timeout=300, env=_env())
        assert out.returncode == 0, f"{' '.join(args)}:\n{out.stderr[-3000:]}"
