"""The environment contract and the registry of bundled environment suites."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class Task:
    """One problem to solve. `answer` is the gold answer where one exists (IGPO scores it)."""

    id: str
    kind: str = "default"  # task type, for per-type breakdowns in evaluation
    answer: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Observation:
    """What the agent sees. `anchor` keys the environment state for GiGPO's step groups."""

    text: str
    anchor: Hashable | None = None
    admissible_actions: list[str] | None = None
    role: str = "user"  # the chat role this observation is appended with: "user" or "tool"
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    """The result of one action. `info` may carry `success`, `invalid`, `action`, `tool_calls`,
    `error`, and on the last step `score` (the task's own score when it differs from the reward)."""

    observation: Observation
    reward: float = 0.0
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Env(Protocol):
    """One episode's world. `system_prompt` tells the agent the action format."""

    system_prompt: str

    async def reset(self, task: Task) -> Observation: ...

    async def step(self, action_text: str) -> Step: ...

    async def close(self) -> None: ...


@runtime_checkable
class Oracle(Protocol):
    """An expert that solves its task; it answers with the full response text a model should emit."""

    def act(self, observation: Observation) -> str: ...


class EnvSuite(Protocol):
    """A family of tasks plus the environment that runs them."""

    name: str

    def make(self) -> Env:
        """A fresh environment instance (one per episode)."""
        ...

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        """`count` tasks of `split` (train / valid_seen / valid_unseen / test), determined by `seed`."""
        ...

    def oracle(self, task: Task) -> Oracle:
        """An expert for `task`, used for SFT demonstrations and to prove tasks solvable."""
        ...

    def corpus(self) -> Iterable[str]:
        """Representative text (observations, actions, prompts) to train a tiny tokenizer on."""
        ...

    # Optional, for suites whose agents call tools (see `suite_tool_schemas`/`suite_tool_metrics`):
    #   tool_schemas() -> list[dict] | None: OpenAI schemas for the chat template's `tools`.
    #   tool_metrics(reset=False) -> dict[str, float]: per-tool counters, `tools/<name>/...`.


class EnvUnavailable(ValueError):
    """An environment whose package or data is not installed; the message says how to get it."""


_SUITES: dict[str, Callable[..., EnvSuite]] = {}
# Suites whose modules pull in the tool layer (httpx, bm25s, the sandbox) or another project's
# package (the adapters: they fail at construction when it is absent) load on first use.
_LAZY_SUITES = {"search_qa": "search_qa.suite", "math_code": "math_code.suite",
                "feedback": "feedback.suite",
                "textworld_express": "adapters.textworld_express",
                "textarena": "adapters.textarena", "gym_text": "adapters.gym_text",
                "skyrl_gym": "adapters.skyrl_gym", "openenv": "adapters.openenv"}


def register_suite(name: str) -> Callable[[Callable[..., EnvSuite]], Callable[..., EnvSuite]]:
    """Class or factory decorator: `@register_suite("household")` makes `make_suite` know it."""

    def decorate(factory: Callable[..., EnvSuite]) -> Callable[..., EnvSuite]:
        if name in _SUITES:
            raise ValueError(f"environment suite {name!r} is registered twice")
        _SUITES[name] = factory
        return factory

    return decorate


def make_suite(name: str, **options: Any) -> EnvSuite:
    """The registered suite `name`, built with `options` (a recipe's `env.options`)."""
    from ..tools.plugins import SUITES, closest, load_plugin

    _load_builtins()
    if name in _LAZY_SUITES and name not in _SUITES:
        importlib.import_module(f"{__package__}.{_LAZY_SUITES[name]}")
    if name not in _SUITES:  # an installed package's suite, declared as an entry point
        plugin = load_plugin(SUITES, name)
        if plugin is not None and name not in _SUITES:
            register_suite(name)(plugin)
    if name not in _SUITES:
        raise ValueError(f"env.name={name!r}: {closest([name], suite_names())}allowed are "
                         f"{suite_names()}")
    factory = _SUITES[name]
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise ValueError(f"env.options for {name!r}: unknown {unknown}; "
                             f"{closest(unknown, list(params))}allowed are {sorted(params)}")
    try:
        return factory(**options)
    except TypeError as exc:
        raise ValueError(f"env.options for {name!r}: {exc}") from exc


def suite_names() -> list[str]:
    """Every suite name a recipe may use: bundled, registered, and installed packages'."""
    from ..tools.plugins import SUITES, plugin_names

    _load_builtins()
    return sorted(set(_SUITES) | set(_LAZY_SUITES) | set(plugin_names(SUITES)))


def suite_has_tools(suite: EnvSuite) -> bool:
    """Whether `suite`'s agents call tools (it reports tool counters or schemas); without
    tools an environment step is no tool call, and tool metrics would be all zeros."""
    return hasattr(suite, "tool_metrics") or hasattr(suite, "tool_schemas")


def suite_tool_schemas(suite: EnvSuite) -> list[dict[str, Any]] | None:
    """The tool schemas `suite` wants in the chat template's `tools` argument, if any."""
    get = getattr(suite, "tool_schemas", None)
    return get() if get is not None else None


def suite_tool_metrics(suite: EnvSuite, *, reset: bool = False) -> dict[str, float]:
    """`suite`'s per-tool counters since the last reset (`tools/<name>/...`); {} without tools."""
    get = getattr(suite, "tool_metrics", None)
    return get(reset=reset) if get is not None else {}


def _load_builtins() -> None:
    # Importing the bundled suites registers them; done lazily so `envs.base` stays light.
    from . import household, shop  # noqa: F401
    from .adapters import alfworld, webshop  # noqa: F401  (fail at construction when absent)
