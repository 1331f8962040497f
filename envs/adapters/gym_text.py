"""`gym_text`: any gym-style text environment (GEM's API) as a turnwise environment.

The API (GEM, Liu et al. 2025; Gymnasium's, with text in and out): `reset(seed) -> (observation,
info)`, `step(action) -> (observation, reward, terminated, truncated, info)`. The environment
comes from GEM's registry (`gem: game:GuessTheNumber-v0-easy`, needs `pip install gem-llm`, the
`envs` extra) or from any factory (`entry_point: my_package.envs:make_env`). The agent's whole
reply is the action; step rewards pass through as they are; an episode succeeds when it
terminates with a reward of at least `success_threshold` (or when `info["success"]` says so).
Each episode keeps its own copy of the global random state, which GEM seeds on reset.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Iterable
from typing import Any

from ..base import EnvUnavailable, Observation, Step, Task, register_suite
from .global_rng import EpisodeRandom

INSTALL = "pip install 'turnwise[envs]' (or gem-llm==0.1.0)"
SPLITS = {"train": 0, "valid": 1, "test": 2}  # seed ranges of a million each
SYSTEM_PROMPT = "Follow the environment's instructions; each reply is your next action."


def load_factory(gem: str | None, entry_point: str | None) -> Callable[..., Any]:
    """The callable that builds one environment: GEM's `make` for an id, or `module:attr`."""
    if (gem is None) == (entry_point is None):
        raise ValueError("env.options: give exactly one of gem (a GEM environment id) or "
                         "entry_point ('module:attr', a gym-style text environment factory)")
    if gem is not None:
        try:
            import gem as gem_package
            from gem.envs.registration import ENV_REGISTRY
        except ImportError as exc:
            raise EnvUnavailable(f"env.options.gem needs the gem-llm package ({exc}): {INSTALL}") from None
        if gem not in ENV_REGISTRY:
            raise ValueError(f"env.options.gem={gem!r}: not in GEM's registry; registered are "
                             f"{sorted(ENV_REGISTRY)}")
        return lambda **kwargs: gem_package.make(gem, **kwargs)
    module, _, attr = entry_point.partition(":")
    if not module or not attr:
        raise ValueError(f"env.options.entry_point={entry_point!r}: expected 'module:attr'")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"env.options.entry_point={entry_point!r}: {exc}") from None


class GymTextEnv:
    """One episode of a gym-style text environment; its replies are checked against the API."""

    system_prompt = SYSTEM_PROMPT

    def __init__(self, factory: Callable[..., Any], kwargs: dict[str, Any], *,
                 max_steps: int = 50, success_threshold: float = 1.0) -> None:
        self.factory, self.kwargs = factory, kwargs
        self.max_steps, self.success_threshold = max_steps, success_threshold
        self.env: Any = None
        self.rng: EpisodeRandom | None = None
        self.steps = 0

    async def reset(self, task: Task) -> Observation:
        self.rng, self.steps = EpisodeRandom(task.data["seed"]), 0
        # Calls into the environment run on the event loop's thread: no two swaps overlap.
        with self.rng.active():
            self.env = self.factory(**self.kwargs)
            out = self.env.reset(seed=task.data["seed"])
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], str)
                and isinstance(out[1], dict)):
            raise TypeError(f"gym_text: reset must return (observation: str, info: dict), got "
                            f"{_describe(out)}")
        return Observation(text=out[0], anchor=out[0], info=dict(out[1]))

    async def step(self, action_text: str) -> Step:
        if self.env is None:
            raise RuntimeError("GymTextEnv.step before reset")
        self.steps += 1
        with self.rng.active():
            out = self.env.step(action_text)
        if not (isinstance(out, tuple) and len(out) == 5 and isinstance(out[0], str)
                and isinstance(out[4], dict)):
            raise TypeError("gym_text: step must return (observation: str, reward, terminated, "
                            f"truncated, info: dict), got {_describe(out)}")
        text, reward, terminated, truncated, env_info = out
        done = bool(terminated or truncated) or self.steps >= self.max_steps
        success = env_info.get("success", bool(terminated) and float(reward) >= self.success_threshold)
        info = {"success": bool(success), "invalid": bool(env_info.get("invalid", False)),
                "action": action_text.strip(), "truncated": done and not terminated}
        return Step(Observation(text=text, anchor=text), float(reward), done, info)

    async def close(self) -> None:
        env, self.env = self.env, None
        if env is not None and callable(getattr(env, "close", None)):
            env.close()


@register_suite("gym_text")
class GymTextSuite:
    """A gym-style text environment's episodes as tasks, one per seed of the split's range."""

    name = "gym_text"

    def __init__(self, *, gem: str | None = None, entry_point: str | None = None,
                 kwargs: dict[str, Any] | None = None, max_steps: int = 50,
                 success_threshold: float = 1.0) -> None:
        self.factory = load_factory(gem, entry_point)
        self.label = gem or entry_point
        self.kwargs = dict(kwargs or {})
        self.env_options = dict(max_steps=max_steps, success_threshold=success_threshold)

    def make(self) -> GymTextEnv:
        return GymTextEnv(self.factory, self.kwargs, **self.env_options)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        """`count` episodes of `split`, each on an environment seed drawn with `seed`."""
        if split not in SPLITS:
            raise ValueError(f"gym_text split={split!r}: allowed are {list(SPLITS)}")
        rng, base = random.Random(seed), SPLITS[split] * 10**6
        seeds = [base + rng.randrange(10**6) for _ in range(count)]
        return [Task(id=f"gym_text/{split}/{s}", kind=str(self.label), data={"seed": s})
                for s in seeds]

    def oracle(self, task: Task) -> Any:
        raise ValueError(f"gym_text ({self.label}) has no expert to demonstrate with; train "
                         "without demonstrations (sft.episodes: 0)")

    def corpus(self) -> Iterable[str]:
        yield SYSTEM_PROMPT
        for task in self.tasks("train", 8, 0):
            env = self.factory(**self.kwargs)
            with EpisodeRandom(task.data["seed"]).active():
                yield env.reset(seed=task.data["seed"])[0]
                sample = getattr(env, "sample_random_action", None)
                if callable(sample):
                    action = sample()
                    yield action
                    yield env.step(action)[0]


def _describe(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} ({', '.join(type(v).__name__ for v in value)})"
    return type(value).__name__
