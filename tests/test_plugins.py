"""A user's own suites, tools and estimators: modules a recipe or `--import` names, and installed
packages that declare entry points (found by name, no import needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml
from turnwise.trainer.recipe import RecipeError, load_recipe

ROOT = Path(__file__).resolve().parents[1]
TURNWISE = Path(sys.executable).parent / "turnwise"  # the console script, as a user runs it

# A suite, a tool factory and an estimator, none of them registered by the module itself: an
# entry point is all that names them.
PLUGIN = '''
from turnwise.envs import Observation, Step, Task
from turnwise.tools import tool


class GuessEnv:
    system_prompt = "Guess the number. Reply with <action>N</action>."

    async def reset(self, task):
        self.secret = task.data["secret"]
        return Observation(text="A number from 1 to 9.", anchor="start")

    async def step(self, action_text):
        won = action_text.strip() == f"<action>{self.secret}</action>"
        return Step(Observation("Correct." if won else "No."), reward=float(won), done=won)

    async def close(self):
        pass


class GuessSuite:
    name = "guess"

    def __init__(self, *, high: int = 9):
        self.high = high

    def make(self):
        return GuessEnv()

    def tasks(self, split, count, seed):
        return [Task(id=f"g/{seed}/{i}", data={"secret": (seed + i) % self.high + 1})
                for i in range(count)]

    def oracle(self, task):
        raise NotImplementedError

    def corpus(self):
        yield GuessEnv.system_prompt


def make_shout(*, times: int = 2):
    @tool
    def shout(text: str) -> str:
        """Repeat the text loudly.

        Args:
            text: what to repeat.
        """
        return " ".join([text.upper()] * times)

    return shout


def flat_credit(trajectories, *, value: float = 1.0):
    import numpy as np

    return [np.full(len(t.turns), value) for t in trajectories]
'''


def _entry_points(tag: str) -> str:
    return textwrap.dedent(f"""\
        [turnwise.suites]
        guess_{tag} = plugin_{tag}:GuessSuite

        [turnwise.tools]
        shout_{tag} = plugin_{tag}:make_shout

        [turnwise.estimators]
        flat_{tag} = plugin_{tag}:flat_credit
        """)


@pytest.fixture()
def installed_plugin(tmp_path, monkeypatch) -> str:
    """A distribution on sys.path as pip leaves one (module + dist-info with entry_points.txt);
    a fresh name per test, since registries are per process."""
    tag = uuid.uuid4().hex[:8]
    site = tmp_path / "site"
    site.mkdir()
    (site / f"plugin_{tag}.py").write_text(PLUGIN)
    info = site / f"turnwise_plugin_{tag}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: turnwise-plugin-{tag}\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(_entry_points(tag))
    monkeypatch.syspath_prepend(str(site))
    return tag


def test_entry_points_make_an_installed_packages_parts_known_by_name(installed_plugin):
    from turnwise.credit import registry
    from turnwise.envs.base import make_suite, suite_names
    from turnwise.tools.builtin import builtin_names, make_tool

    tag = installed_plugin
    assert f"guess_{tag}" in suite_names() and f"shout_{tag}" in builtin_names()
    assert f"flat_{tag}" in registry.names()
    suite = make_suite(f"guess_{tag}", high=3)
    assert [t.data["secret"] for t in suite.tasks("train", 4, 0)] == [1, 2, 3, 1]
    with pytest.raises(ValueError, match=r"unknown \['hihg'\]; did you mean 'high'"):
        make_suite(f"guess_{tag}", hihg=3)
    shout = make_tool(f"shout_{tag}", times=3)
    assert shout.name == "shout" and shout.fn(text="hi") == "HI HI HI"
    estimator = registry.get(f"flat_{tag}")
    assert estimator is registry.get(f"flat_{tag}")  # registered once, then found directly


def test_a_recipe_names_an_installed_suite_and_estimator(installed_plugin, tmp_path):
    tag = installed_plugin
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(f"extends: household_grpo\nenv: {{name: guess_{tag}, options: {{high: 4}}}}\n"
                      f"credit: {{estimator: flat_{tag}, options: {{value: 0.5}}}}\n")
    cfg = load_recipe(str(recipe))
    assert (cfg.env.name, cfg.env.options) == (f"guess_{tag}", {"high": 4})
    assert cfg.credit.options == {"value": 0.5}


def test_an_entry_point_that_fails_to_import_is_named(tmp_path, monkeypatch):
    tag = uuid.uuid4().hex[:8]
    info = tmp_path / f"broken_{tag}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: broken-{tag}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[turnwise.suites]\nbroken_{tag} = missing_{tag}:X\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from turnwise.envs.base import make_suite

    with pytest.raises(ValueError, match=f"'broken_{tag}' from the entry point group "
                                         f"'turnwise.suites' \\(missing_{tag}:X\\) failed to load"):
        make_suite(f"broken_{tag}")


def _user_module(folder: Path, tag: str) -> str:
    """A module that registers its suite itself when imported (docs/guides/environment.md's way)."""
    name = f"my_suites_{tag}"
    (folder / f"{name}.py").write_text(
        PLUGIN + f"\nfrom turnwise.envs import register_suite\n"
                 f"register_suite('mine_{tag}')(GuessSuite)\n")
    return name


def test_recipe_imports_register_the_users_suite_before_the_recipe_is_checked(tmp_path):
    tag = uuid.uuid4().hex[:8]
    module = _user_module(tmp_path, tag)  # next to the recipe: its folder is searched
    parent = tmp_path / "parent.yaml"
    parent.write_text(f"extends: household_grpo\nimports: [{module}]\n")
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: parent\nimports: json\nenv: {{name: mine_{tag}}}\n")
    cfg = load_recipe(str(child))
    assert cfg.env.name == f"mine_{tag}"
    assert cfg.imports == [module, "json"]  # the levels' imports add up, parent first
    # The resolved config reloads (a run folder's config.yaml re-imports what it records).
    saved = tmp_path / "run" / "config.yaml"
    saved.parent.mkdir()
    saved.write_text(yaml.safe_dump(cfg.model_dump()))
    assert load_recipe(str(saved)) == cfg


def test_a_missing_import_or_an_unimported_suite_stops_with_a_message(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("extends: household_grpo\nimports: [no_such_module_xyz]\n")
    with pytest.raises(RecipeError, match=r"r.yaml: imports: 'no_such_module_xyz' failed: "
                                          r"ModuleNotFoundError"):
        load_recipe(str(recipe))
    recipe.write_text("extends: household_grpo\nimports: {a: 1}\n")
    with pytest.raises(RecipeError, match="expected a list of module names"):
        load_recipe(str(recipe))
    with pytest.raises(RecipeError, match=r"env.name='housheld': did you mean 'household'"):
        load_recipe("household_grpo", ["env.name=housheld"])


def _cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(TURNWISE), *args], cwd=cwd, capture_output=True, text=True,
                          check=False, env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.slow
def test_cli_import_loads_a_module_from_the_current_folder(tmp_path):
    tag = uuid.uuid4().hex[:8]
    module = _user_module(tmp_path, tag)
    out = _cli("config", "household_grpo", f"env.name=mine_{tag}", "--import", module,
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert resolved["env"]["name"] == f"mine_{tag}" and resolved["imports"] == [module]
    without = _cli("config", "household_grpo", f"env.name=mine_{tag}", cwd=tmp_path)
    assert without.returncode == 2 and without.stderr.count("\n") == 1
    assert f"env.name='mine_{tag}'" in without.stderr and "Traceback" not in without.stderr


@pytest.mark.slow
def test_a_pip_installed_package_is_found_by_name(tmp_path):
    """Built and installed by pip as a user would; its suite, tool and estimator are then
    usable by name from the command line and from Python, with no import in the recipe."""
    tag = uuid.uuid4().hex[:8]
    source = tmp_path / "src"
    source.mkdir()
    (source / f"plugin_{tag}.py").write_text(PLUGIN)
    groups: dict[str, dict[str, str]] = {}  # pyproject tables from entry_points.txt above
    for block in _entry_points(tag).strip().split("\n\n"):
        header, line = block.splitlines()
        key, value = (part.strip() for part in line.split("="))
        groups[header.strip("[]")] = {key: value}
    (source / "pyproject.toml").write_text(
        "[build-system]\nrequires = [\"setuptools>=68\"]\n"
        "build-backend = \"setuptools.build_meta\"\n"
        f"[project]\nname = \"turnwise-plugin-{tag}\"\nversion = \"0.1\"\n"
        f"[tool.setuptools]\npy-modules = [\"plugin_{tag}\"]\n"
        + "".join(f"[project.entry-points.\"{group}\"]\n{k} = \"{v}\"\n"
                  for group, entries in groups.items() for k, v in entries.items()))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(source)],
                   check=True, capture_output=True, timeout=300)
    assert list(site.glob("turnwise_plugin_*.dist-info/entry_points.txt"))
    env = {"PYTHONPATH": str(site)}
    out = _cli("config", "household_grpo", f"env.name=guess_{tag}", "env.options={high: 5}",
               f"credit.estimator=flat_{tag}", "credit.options={}", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)
    assert resolved["env"] == {"name": f"guess_{tag}", "options": {"high": 5},
                               "train_split": "train"}
    assert resolved["credit"]["estimator"] == f"flat_{tag}" and resolved["imports"] == []
    code = (f"from turnwise.tools.builtin import make_tool; "
            f"print(make_tool('shout_{tag}', times=2).fn(text='ok'))")
    tool = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=False, env={**os.environ, **env}, timeout=300)
    assert tool.stdout.strip() == "OK OK", tool.stderr
