"""Loading a recipe: YAML file or bundled name, a preset, then `key=value` overrides."""

from __future__ import annotations

import copy
import importlib.resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

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


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> Config:
    """The validated config of a recipe with its preset and `key=value` overrides applied."""
    path = recipe_path(name_or_path)
    raw = _read(path, seen=())
    parsed = [_parse_override(o) for o in overrides or []]
    preset = next((v for k, v in parsed if k == "preset"), raw.get("default_preset"))
    presets = raw.pop("presets", {}) or {}
    raw.pop("default_preset", None)
    data = copy.deepcopy(raw)
    if preset is not None:
        if preset not in presets:
            raise RecipeError(f"preset={preset!r}: recipe {path.name} has presets {sorted(presets)}")
        data = _merge(data, presets[preset])
    for key, value in parsed:
        if key != "preset":
            _set_dotted(data, key, value)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(format_validation_error(exc, source=str(path))) from None
    check_runnable(cfg, source=str(path))
    return cfg


def _read(path: Path, *, seen: tuple[Path, ...]) -> dict:
    """A recipe's mapping; `extends: other` starts from recipe `other` (its presets too)."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {path}: the top level must be a mapping, got {type(raw).__name__}")
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise RecipeError(f"recipe {path}: extends={base!r} must be a recipe name or path")
    base_path = recipe_path(base) if Path(base).is_absolute() else _sibling(path, base)
    if base_path.resolve() in seen:
        raise RecipeError(f"recipe {path}: extends={base!r} makes a cycle")
    parent = _read(base_path, seen=(*seen, path.resolve()))
    mine, theirs = raw.get("credit") or {}, parent.get("credit") or {}
    if mine.get("estimator", theirs.get("estimator")) != theirs.get("estimator"):
        # Options belong to an estimator: another estimator starts from its own defaults.
        parent = {**parent, "credit": {k: v for k, v in theirs.items() if k != "options"}}
    return _merge(parent, raw)


def _sibling(path: Path, name: str) -> Path:
    """`extends` names a file next to the recipe, else a bundled recipe."""
    candidate = path.parent / (name if name.endswith(".yaml") else f"{name}.yaml")
    return candidate if candidate.is_file() else recipe_path(name)


def check_runnable(cfg: Config, *, source: str) -> None:
    """Build the cheap parts a run needs (env suite, estimator options) so errors come now."""
    from ..envs.base import make_suite
    from .credit_steps import check_credit

    try:
        make_suite(cfg.env.name, **cfg.env.options)
        check_credit(cfg.credit)
    except ValueError as exc:
        raise RecipeError(f"recipe {source}: {exc}") from None


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise RecipeError(f"override {text!r}: expected key=value, e.g. train.iterations=5")
    key, value = text.split("=", 1)
    if not key:
        raise RecipeError(f"override {text!r}: the key is empty")
    return key.strip(), yaml.safe_load(value) if value else ""


def _set_dotted(data: dict, key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"override {key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


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
            lines.append(f"  {key}: unknown key (value {error['input']!r})")
        elif not error["loc"]:  # a check across sections: its message names the keys
            lines.append(f"  {error['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key}: {error['msg']} (got {error['input']!r})")
    return "\n".join(lines)
