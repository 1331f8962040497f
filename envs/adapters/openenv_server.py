"""A turnwise suite served as an OpenEnv environment (openenv 0.10.0, the `envs` extra).

    python -m turnwise.envs.adapters.openenv_server household --port 8000 \
        --options '{"max_steps": 10}'

Each WebSocket session is one episode: `reset(seed, split)` plays the suite's task drawn with
that seed from that split; the action is `{"text": <the agent's reply>}`; the observation
carries the text, the admissible actions, the anchor and the system prompt, with the step's
`info` as metadata. Any OpenEnv client can play it, and turnwise's `openenv` suite plays it back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from openenv.core.env_server.http_server import create_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field

from ..base import EnvSuite, make_suite


class TextAction(Action):
    """The agent's reply, as it wrote it."""

    text: str = Field(..., description="The agent's reply")


class TextObservation(Observation):
    """What the agent sees, with what a turnwise episode needs besides the text."""

    text: str = Field(default="", description="The observation text")
    admissible_actions: list[str] | None = Field(default=None)
    anchor: str | None = Field(default=None, description="Key of the environment state")
    system_prompt: str = Field(default="", description="How the agent should answer")


class SuiteEnvironment(Environment[TextAction, TextObservation, State]):
    """One session: one episode of a turnwise suite at a time."""

    SUPPORTS_CONCURRENT_SESSIONS = True  # each session makes its own env

    def __init__(self, suite: EnvSuite) -> None:
        super().__init__()
        self.suite, self.env = suite, suite.make()
        self._state = State(step_count=0)

    async def reset_async(self, seed: int | None = None, episode_id: str | None = None,
                          split: str = "train", **kwargs: Any) -> TextObservation:
        task = self.suite.tasks(split, 1, seed or 0)[0]
        self._state = State(episode_id=episode_id or task.id, step_count=0)
        observation = await self.env.reset(task)
        return _observation(self.env, observation, done=False, reward=None,
                            metadata={"task_id": task.id, "kind": task.kind})

    async def step_async(self, action: TextAction, timeout_s: float | None = None,
                         **kwargs: Any) -> TextObservation:
        self._state.step_count += 1
        step = await self.env.step(action.text)
        return _observation(self.env, step.observation, done=step.done, reward=step.reward,
                            metadata=json.loads(json.dumps(step.info, default=str)))

    def reset(self, seed: int | None = None, episode_id: str | None = None,
              **kwargs: Any) -> TextObservation:
        return asyncio.run(self.reset_async(seed, episode_id, **kwargs))

    def step(self, action: TextAction, timeout_s: float | None = None,
             **kwargs: Any) -> TextObservation:
        return asyncio.run(self.step_async(action))

    @property
    def state(self) -> State:
        return self._state

    def close(self) -> None:
        try:
            asyncio.get_running_loop().create_task(self.env.close())
        except RuntimeError:  # no loop running: close here
            asyncio.run(self.env.close())


def _observation(env: Any, observation: Any, **fields: Any) -> TextObservation:
    anchor = observation.anchor
    return TextObservation(text=observation.text, admissible_actions=observation.admissible_actions,
                           anchor=None if anchor is None else str(anchor),
                           system_prompt=getattr(env, "system_prompt", ""), **fields)


def suite_app(name: str, options: dict[str, Any] | None = None, *,
              max_concurrent_envs: int = 256) -> Any:
    """A FastAPI app serving suite `name` (built with `options`) as an OpenEnv environment."""
    suite = make_suite(name, **(options or {}))
    return create_app(lambda: SuiteEnvironment(suite), TextAction, TextObservation,
                      env_name=f"turnwise-{name}", max_concurrent_envs=max_concurrent_envs)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("--options", default="{}", help="the suite's options, as JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-sessions", type=int, default=256)
    args = parser.parse_args(argv)
    app = suite_app(args.suite, json.loads(args.options), max_concurrent_envs=args.max_sessions)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
