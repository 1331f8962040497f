"""Parts from installed packages, found by name through Python entry points; and the hint an
unknown name gets.

A package makes its environment suites, tools and credit estimators known to recipes by
declaring entry points in its metadata, e.g. in its pyproject.toml:

    [project.entry-points."turnwise.suites"]
    guess = "guess_env:GuessSuite"

The entry point's name is the name a recipe uses (`env.name: guess`); its value is the suite
factory, tool factory or estimator function, or a module that registers it when imported.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

SUITES, TOOLS, ESTIMATORS = "turnwise.suites", "turnwise.tools", "turnwise.estimators"


def plugin_names(group: str) -> list[str]:
    """Names declared under entry point `group` by the installed distributions."""
    return sorted({ep.name for ep in entry_points(group=group)})


def load_plugin(group: str, name: str) -> Any | None:
    """The object entry point `name` of `group` points at, imported; None when no installed
    distribution declares it, or when it names a module (importing it registered the part)."""
    found = list(entry_points(group=group, name=name))
    if not found:
        return None
    values = sorted({ep.value for ep in found})
    if len(values) > 1:
        raise ValueError(f"{name!r} is declared under the entry point group {group!r} by more "
                         f"than one installed package ({values}); uninstall all but one")
    try:
        loaded = found[0].load()
    except Exception as exc:  # any failure of a third-party import, named
        raise ValueError(f"{name!r} from the entry point group {group!r} ({values[0]}) failed "
                         f"to load: {type(exc).__name__}: {exc}") from exc
    return None if isinstance(loaded, ModuleType) else loaded


def check_options(what: str, fn: Callable[..., Any], options: dict[str, Any]) -> None:
    """Refuse `options` that are not keyword-only parameters of `fn`, naming the closest and
    the allowed (nothing is refused when `fn` takes **kwargs)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{what} {unknown} are unknown; {closest(unknown, allowed)}allowed are "
                         f"{sorted(allowed)}")


def closest(names: list[str], allowed: list[str]) -> str:
    """'did you mean ...? ' naming the allowed names closest to the unknown `names` ('' if
    none is close)."""
    close = [m for n in names for m in difflib.get_close_matches(n, allowed, n=2, cutoff=0.6)]
    return f"did you mean {' or '.join(repr(c) for c in dict.fromkeys(close))}? " if close else ""
