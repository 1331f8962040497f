"""Estimators by name. An estimator maps trajectories to one advantage per turn of each.

    @register("my_estimator")
    def my_estimator(trajectories, *, gamma=1.0) -> list[np.ndarray]: ...

Its keyword arguments are the recipe's `credit.options`; unknown options are rejected.
`needs` names inputs the trainer must fill in first (`"answer_logprobs"`: IGPO's scoring pass).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Estimator = Callable[..., list[np.ndarray]]
_ESTIMATORS: dict[str, Estimator] = {}
_NEEDS: dict[str, tuple[str, ...]] = {}
INPUTS = ("answer_logprobs",)  # what an estimator may ask the trainer to compute


def register(name: str, *, needs: tuple[str, ...] = ()) -> Callable[[Estimator], Estimator]:
    """Decorator: make `fn` the estimator called `name`; `needs` lists inputs from `INPUTS`."""
    unknown = sorted(set(needs) - set(INPUTS))
    if unknown:
        raise ValueError(f"credit estimator {name!r}: needs {unknown} unknown; allowed are {list(INPUTS)}")

    def decorate(fn: Estimator) -> Estimator:
        if name in _ESTIMATORS:
            raise ValueError(f"credit estimator {name!r} is registered twice")
        _ESTIMATORS[name] = fn
        _NEEDS[name] = tuple(needs)
        return fn

    return decorate


def get(name: str) -> Estimator:
    """The estimator registered as `name`, or declared by an installed package."""
    from ..tools.plugins import ESTIMATORS, closest, load_plugin

    if name not in _ESTIMATORS:  # an installed package's estimator, declared as an entry point
        plugin = load_plugin(ESTIMATORS, name)
        if plugin is not None and name not in _ESTIMATORS:
            register(name)(plugin)
    if name not in _ESTIMATORS:
        raise ValueError(f"credit.estimator={name!r}: {closest([name], names())}allowed are "
                         f"{names()}")
    return _ESTIMATORS[name]


def names() -> list[str]:
    """Estimator names a recipe may use: registered, and installed packages'."""
    from ..tools.plugins import ESTIMATORS, plugin_names

    return sorted(set(_ESTIMATORS) | set(plugin_names(ESTIMATORS)))


def needs(name: str) -> tuple[str, ...]:
    """Inputs estimator `name` needs computed before it runs (see `INPUTS`)."""
    get(name)
    return _NEEDS[name]


def check_options(name: str, options: dict[str, Any]) -> None:
    """Fail at start if `options` are not keyword arguments of estimator `name`."""
    allowed = [p.name for p in inspect.signature(get(name)).parameters.values()
               if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        close = [m for key in unknown for m in difflib.get_close_matches(key, allowed, n=1)]
        guess = f"; did you mean {close}?" if close else ""
        raise ValueError(
            f"credit.options {unknown} are not options of estimator {name!r}{guess} allowed are "
            f"{allowed}")


def compute(name: str, trajectories: Sequence, options: dict[str, Any]) -> list[np.ndarray]:
    """Run estimator `name`; check that it returned one value per turn of each trajectory."""
    check_options(name, options)
    result = get(name)(list(trajectories), **options)
    if len(result) != len(trajectories):
        raise RuntimeError(f"estimator {name!r} returned {len(result)} arrays for "
                           f"{len(trajectories)} trajectories")
    for traj, values in zip(trajectories, result):
        if len(values) != len(traj.turns):
            raise RuntimeError(f"estimator {name!r} gave {len(values)} values for trajectory "
                               f"{traj.traj_id} with {len(traj.turns)} turns")
    return [np.asarray(v, dtype=np.float64) for v in result]
