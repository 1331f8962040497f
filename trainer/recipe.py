"""Loading a recipe: YAML file or bundled name, its `extends:` chain, a preset, then `key=value`
overrides.

Precedence, lowest first: the parent recipe, the parent's preset, the child's own keys, the
child's preset, the command line. The preset is `preset=NAME` from the command line, else the
nearest `default_preset` up the chain; the resolved config records it in `preset`.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import importlib.resources
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .config import Config


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the key, the value and what is allowed."""


def bundled_recipes() -> list[str]:
    """Names of the recipes shipped with turnwise."""
    root = importlib.resources.files("turnwise.recipes")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def recipe_path(name_or_path: str) -> Path:
    """A recipe file: an existing path, or the name of a bundled recipe."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = importlib.resources.files("turnwise.recipes") / f"{path.stem}.yaml"
    if path.suffix in ("", ".yaml") and bundled.is_file():
        return Path(str(bundled))
    raise RecipeError(
        f"recipe {name_or_path!r}: no such file and no bundled recipe of that name; "
        f"bundled recipes are {bundled_recipes()}"
    )


def load_recipe(name_or_path: str, overrides: list[str] | None = None, *,
                imports: Sequence[str] = ()) -> Config:
    """The validated config of a recipe with its preset and `key=value` overrides applied.

    The modules of every level's `imports:` and of `imports` (`--import` on the command line)
    are imported first, from the current folder or the recipes' folders too, so the suites,
    tools and estimators they register are known when the config is checked.
    """
    path = recipe_path(name_or_path)
    chain = _chain(path, seen=())
    parsed = [_parse_override(o) for o in overrides or []]
    preset = next((v for k, v in parsed if k == "preset"),
                  next((lvl.default_preset for lvl in reversed(chain) if lvl.default_preset), None))
    offered = sorted({name for lvl in chain for name in lvl.presets})
    if preset is not None and preset not in offered:
        raise RecipeError(f"preset={preset!r}: recipe {path.name} has presets {offered}")
    data: dict = {}
    for level in chain:
        data = _layer(data, level.body)
        data = _layer(data, level.presets.get(preset) or {})
    for key, value in parsed:
        if key != "preset":
            data = _layer(data, _dotted(key, value))
    # Imports add up over the levels instead of the child's list replacing the parent's.
    layers = [layer for lvl in chain for layer in (lvl.body, lvl.presets.get(preset) or {})]
    modules = [m for layer in [*layers, *(_dotted(k, v) for k, v in parsed)]
               for m in _imports_of(layer, source=str(path))]
    folders = [Path.cwd(), *(lvl.path.parent for lvl in chain)]
    import_modules(modules, folders=folders, source=f"recipe {path}: imports:")
    import_modules(imports, folders=folders, source="--import")
    data["imports"] = list(dict.fromkeys([*modules, *imports]))
    written = next((lvl for lvl in chain if "preset" in lvl.body), None)
    if written is not None and offered:
        raise RecipeError(f"recipe {path}: a top-level `preset: {written.body['preset']}` is only "
                          f"recorded in resolved configs; choose a preset with `default_preset:` "
                          f"or preset=NAME on the command line (presets: {offered})")
    if preset is not None:  # a resolved config (a run's config.yaml) keeps the one it records
        data["preset"] = preset
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(exc, source=str(path))) from None
    check_runnable(cfg, source=str(path))
    return cfg


@dataclass
class _Level:
    """One recipe file of an `extends:` chain: its own keys and its presets."""

    path: Path
    body: dict
    presets: dict
    default_preset: str | None


def _chain(path: Path, *, seen: tuple[Path, ...]) -> list[_Level]:
    """The recipes `path` extends, root first, then `path` itself."""
    raw = _read_yaml(path)
    base = raw.pop("extends", None)
    presets = raw.pop("presets", None) or {}
    if not isinstance(presets, dict) or not all(isinstance(v, dict) for v in presets.values()):
        raise RecipeError(f"recipe {path}: presets must map each preset name to config sections")
    level = _Level(path, raw, presets, raw.pop("default_preset", None))
    if base is None:
        return [level]
    if not isinstance(base, str):
        raise RecipeError(f"recipe {path}: extends={base!r} must be a recipe name or path")
    try:
        base_path = recipe_path(base) if Path(base).is_absolute() else _sibling(path, base)
    except RecipeError as exc:
        raise RecipeError(f"recipe {path}, line {_line_of(path, 'extends:')}: extends: {base!r} "
                          f"is no file next to it either; {exc}") from None
    if base_path.resolve() in (*seen, path.resolve()):
        raise RecipeError(f"recipe {path}: extends={base!r} makes a cycle")
    return [*_chain(base_path, seen=(*seen, path.resolve())), level]


def _read_yaml(path: Path) -> dict:
    try:
        with path.open() as stream:  # YAML's error marks then name the file
            raw = yaml.safe_load(stream) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {path}: the top level must be a mapping, got {type(raw).__name__}")
    return raw


def _line_of(path: Path, prefix: str) -> int:
    lines = path.read_text().splitlines()
    return next((i + 1 for i, line in enumerate(lines) if line.startswith(prefix)), 1)


def _sibling(path: Path, name: str) -> Path:
    """`extends` names a file next to the recipe, else a bundled recipe."""
    candidate = path.parent / (name if name.endswith(".yaml") else f"{name}.yaml")
    return candidate if candidate.is_file() else recipe_path(name)


# Options belong to what they configure: a layer that names another environment or estimator
# starts that section's options afresh instead of inheriting the previous one's.
_OWNED_OPTIONS = (("env", "name", "options"), ("credit", "estimator", "options"))


def _layer(base: dict, update: dict) -> dict:
    """`update` merged over `base`, options of a replaced env or estimator dropped."""
    base = dict(base)
    for section, owner, options in _OWNED_OPTIONS:
        mine, theirs = update.get(section), base.get(section)
        if isinstance(mine, dict) and isinstance(theirs, dict) and owner in mine \
                and owner in theirs and mine[owner] != theirs[owner]:
            base[section] = {k: v for k, v in theirs.items() if k != options}
    return _merge(base, update)


def _imports_of(layer: dict, *, source: str) -> list[str]:
    """The module names a layer's `imports:` lists (one name or a list of names)."""
    modules = layer.get("imports") or []
    modules = [modules] if isinstance(modules, str) else modules
    if not isinstance(modules, list) or not all(isinstance(m, str) and m for m in modules):
        raise RecipeError(f"recipe {source}: imports={layer['imports']!r}: expected a list of "
                          f"module names, e.g. [my_suites, mypackage.tools]")
    return modules


def import_modules(modules: Sequence[str], *, folders: Sequence[Path], source: str) -> None:
    """Import the user's `modules` (their suites, tools and estimators register as they load);
    modules are looked for on sys.path, then in `folders`."""
    for folder in dict.fromkeys(str(f.resolve()) for f in folders):
        if folder not in sys.path:
            sys.path.append(folder)
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - whatever the user's module raises, named
            raise RecipeError(f"{source} {module!r} failed: "
                              f"{type(exc).__name__}: {exc} (modules are found on sys.path, in "
                              f"the current folder and in the recipe's folder)") from None


def check_runnable(cfg: Config, *, source: str) -> None:
    """Build the cheap parts a run needs (env suite, estimator options) so errors come now."""
    from ..envs.base import make_suite
    from .credit_stage import check_credit
    from .sft_cache import check_cacheable

    try:
        make_suite(cfg.env.name, **cfg.env.options)
        check_credit(cfg.credit)
        check_cacheable(cfg)
    except ValueError as exc:
        raise RecipeError(f"recipe {source}: {exc}") from None


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise RecipeError(f"override {text!r}: expected key=value, e.g. train.iterations=5")
    key, value = text.split("=", 1)
    if not key:
        raise RecipeError(f"override {text!r}: the key is empty")
    return key.strip(), yaml.safe_load(value) if value else ""


def _dotted(key: str, value: Any) -> dict:
    """`a.b.c=v` as the mapping {a: {b: {c: v}}}."""
    for part in reversed(key.split(".")):
        if not part:
            raise RecipeError(f"override {key}: a part of the dotted key is empty")
        value = {part: value}
    return value


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def format_validation_error(exc: ValidationError, *, source: str) -> str:
    """One line per problem: the dotted key, the value given, and what is allowed."""
    lines = [f"recipe {source}: {exc.error_count()} problem(s)"]
    for error in exc.errors():
        key = ".".join(str(p) for p in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (value {error['input']!r}); "
                         f"{unknown_key_hint(error['loc'])}")
        elif error["type"] == "value_error":  # our own checks: their messages name the keys
            lines.append(f"  {error['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key}: {error['msg']} (got {error['input']!r})")
    return "\n".join(lines)


def unknown_key_hint(loc: tuple) -> str:
    """'did you mean ...? allowed are ...' for the unknown key at `loc` of a Config."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        inner = _model_of(field.annotation) if field is not None else None
        if inner is None:
            return ""
        model = inner
    return did_you_mean(str(loc[-1]), list(model.model_fields))


def did_you_mean(name: str, allowed: list[str]) -> str:
    """The closest allowed names to `name`, and every allowed one."""
    close = difflib.get_close_matches(name, allowed, n=3, cutoff=0.6)
    guess = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return f"{guess}allowed are {sorted(allowed)}"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The config section class of a field annotation (`Section`, or `Section | None`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
