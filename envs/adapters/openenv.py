"""`openenv`: any OpenEnv environment server (local or remote) as a turnwise environment.

Needs `pip install openenv==0.10.0` (the `envs` extra) and a running server (`env.options.url`).
Each episode opens its own WebSocket session (OpenEnv's `GenericEnvClient`): `reset(seed=...,
split=..., **reset_options)`, then one `step` per reply with the reply in the action's text
field (`action_field`; found from the server's `/schema` when the action has one required
string field). The observation's text is `observation_field` (found the same way, or every
other field as `key: value` lines); `admissible_actions`, `anchor` and
`system_prompt` are used when the server sends them (turnwise's own server does). Success is
`metadata.success` when the server reports it, else a final reward of at least
`success_threshold`. A server that drops the connection fails that episode only.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from ..base import EnvUnavailable, Observation, Step, Task, register_suite

INSTALL = "pip install 'turnwise[envs]' (or openenv==0.10.0)"
SPLITS = ("train", "valid", "test")
SYSTEM_PROMPT = "Follow the environment's instructions; each reply is your next action."
# Observation fields read on their own, never part of the text.
_STANDARD = {"done", "reward", "metadata", "system_prompt", "admissible_actions", "anchor"}


def fetch_schema(url: str, timeout: float) -> dict[str, Any]:
    """The server's `/schema` (action and observation JSON schemas)."""
    try:
        import openenv.core  # noqa: F401
    except ImportError as exc:
        raise EnvUnavailable(f"env.name='openenv' needs the openenv package ({exc}): {INSTALL}") from None
    import httpx

    try:
        response = httpx.get(f"{url.rstrip('/')}/schema", timeout=timeout)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise EnvUnavailable(f"env.options.url={url!r}: no OpenEnv server answers there "
                             f"({type(exc).__name__}: {exc}); start one (e.g. python -m "
                             "turnwise.envs.adapters.openenv_server household --port 8000)") from None


def text_field(schema: dict[str, Any], given: str | None, what: str, required_only: bool) -> str | None:
    """The field of `schema` that holds text: `given` (checked), else the only string field."""
    properties = schema.get("properties", {})
    if given is not None:
        if given not in properties:
            raise ValueError(f"env.options.{what}_field={given!r}: the server's {what} has "
                             f"fields {sorted(properties)}")
        return given
    names = schema.get("required", []) if required_only else [p for p in properties if p not in _STANDARD]
    strings = [n for n in names if properties.get(n, {}).get("type") == "string"]
    if len(strings) == 1:
        return strings[0]
    if required_only:
        raise ValueError(f"env.options.action_field: the server's action has fields "
                         f"{sorted(properties)}; name the one the agent's reply goes in")
    return None


class OpenEnvEnv:
    """One episode on its own WebSocket session with the server."""

    def __init__(self, url: str, *, action_field: str, observation_field: str | None,
                 reset_options: dict[str, Any], max_steps: int, success_threshold: float,
                 timeout: float) -> None:
        self.url, self.action_field, self.observation_field = url, action_field, observation_field
        self.reset_options, self.max_steps = reset_options, max_steps
        self.success_threshold, self.timeout = success_threshold, timeout
        self.client: Any = None
        self.system_prompt, self.steps = SYSTEM_PROMPT, 0

    async def reset(self, task: Task) -> Observation:
        from openenv.core import GenericEnvClient

        await self.close()
        self.client = GenericEnvClient(base_url=self.url, message_timeout_s=self.timeout,
                                       connect_timeout_s=self.timeout)
        await self.client.connect()
        result = await self.client.reset(seed=task.data["seed"], split=task.data["split"],
                                         **self.reset_options)
        self.steps = 0
        self.system_prompt = result.observation.get("system_prompt") or SYSTEM_PROMPT
        return self._observe(result.observation)

    async def step(self, action_text: str) -> Step:
        if self.client is None:
            raise RuntimeError("OpenEnvEnv.step before reset")
        self.steps += 1
        result = await self.client.step({self.action_field: action_text})
        metadata = dict(result.observation.get("metadata") or {})
        reward = float(result.reward or 0.0)
        done = bool(result.done) or self.steps >= self.max_steps
        success = metadata.get("success", bool(result.done) and reward >= self.success_threshold)
        info = {**metadata, "success": bool(success), "invalid": bool(metadata.get("invalid")),
                "action": str(metadata.get("action", action_text.strip())),
                "truncated": done and not result.done or bool(metadata.get("truncated"))}
        return Step(self._observe(result.observation), reward, done, info)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.close()

    def _observe(self, fields: dict[str, Any]) -> Observation:
        if self.observation_field is not None:
            text = str(fields.get(self.observation_field, ""))
        else:
            text = "\n".join(f"{k}: {v}" for k, v in fields.items() if k not in _STANDARD)
        return Observation(text=text, anchor=fields.get("anchor") or text,
                           admissible_actions=fields.get("admissible_actions"))


@register_suite("openenv")
class OpenEnvSuite:
    """Episodes of the OpenEnv server at `url`; a task is a (split, seed) passed to reset."""

    name = "openenv"

    def __init__(self, *, url: str, action_field: str | None = None,
                 observation_field: str | None = None, reset_options: dict[str, Any] | None = None,
                 max_steps: int = 50, success_threshold: float = 1.0, timeout: float = 60.0) -> None:
        schema = fetch_schema(url, timeout)
        self.url = url
        action = text_field(schema.get("action", {}), action_field, "action", required_only=True)
        observed = text_field(schema.get("observation", {}), observation_field, "observation",
                              required_only=False)
        self.env_options = dict(action_field=action, observation_field=observed,
                                reset_options=dict(reset_options or {}), max_steps=max_steps,
                                success_threshold=success_threshold, timeout=timeout)

    def make(self) -> OpenEnvEnv:
        return OpenEnvEnv(self.url, **self.env_options)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        """`count` episodes of `split`, each reset with a seed drawn with `seed`."""
        if split not in SPLITS:
            raise ValueError(f"openenv split={split!r}: allowed are {list(SPLITS)}")
        rng = random.Random(seed)
        seeds = [rng.randrange(2**31) for _ in range(count)]
        return [Task(id=f"openenv/{split}/{s}", kind="openenv", data={"split": split, "seed": s})
                for s in seeds]

    def oracle(self, task: Task) -> Any:
        raise ValueError(f"openenv ({self.url}) has no expert to demonstrate with; train without "
                         "demonstrations (sft.episodes: 0)")

    def corpus(self) -> Iterable[str]:
        yield SYSTEM_PROMPT
