"""Suites whose episodes are agent programs: the user's own loop over an OpenAI client.

A program is `async def run(task, client) -> reward`: it talks to the policy through `client`
(an `openai.AsyncOpenAI` pointed at turnwise's gateway, its API key naming the episode), runs
its tools itself, and returns the episode's reward, or one reward per model call. turnwise
plays groups of it and trains on the token ids the gateway recorded (`rollouts.programs`).

    @register_suite("calculator_agent")
    def calculator_agent() -> ProgramSuite:
        return ProgramSuite("calculator_agent", run, tasks=make_tasks, corpus=texts)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from .base import Task

Program = Callable[[Task, Any], Awaitable["float | Sequence[float]"]]
# (task, the request's messages) -> the reply an expert writes, in the model's own format
# (hermes tool calls): demonstrations for the SFT cold start.
Expert = Callable[[Task, list[dict[str, Any]]], str]
TaskSource = Callable[[str, int, int], list[Task]]


class ProgramSuite:
    """An agent program, the tasks it plays, and text for a tiny tokenizer.

    Args:
        name: the suite's name (as registered).
        program: `async def run(task, client) -> float | list[float]`.
        tasks: (split, count, seed) -> tasks.
        corpus: text for a tiny model's tokenizer (`tiny:<name>`), or a function giving it.
        expert: (task, messages) -> reply text, for demonstrations (None: no SFT).
        success_threshold: an episode succeeds when its reward reaches this.
        timeout: seconds one program run may take before its episode fails.
    """

    def __init__(self, name: str, program: Program, *, tasks: TaskSource,
                 corpus: Iterable[str] | Callable[[], Iterable[str]] = (),
                 expert: Expert | None = None, success_threshold: float = 1.0,
                 timeout: float = 600.0) -> None:
        if not inspect.iscoroutinefunction(program):
            raise TypeError(f"suite {name!r}: the program must be an `async def run(task, "
                            f"client)`, got {program!r}")
        if not timeout > 0:
            raise ValueError(f"suite {name!r}: timeout={timeout!r} must be > 0 seconds")
        self.name = name
        self.program = program
        self._tasks = tasks
        self._corpus = corpus
        self.expert = expert
        self.success_threshold = success_threshold
        self.timeout = timeout

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        return self._tasks(split, count, seed)

    def corpus(self) -> Iterable[str]:
        return self._corpus() if callable(self._corpus) else self._corpus

    def make(self):
        raise TypeError(f"suite {self.name!r} is an agent program: it has no Env; its episodes "
                        "are played through the gateway (rollouts.programs.ProgramOrchestrator)")

    def oracle(self, task: Task):
        raise TypeError(f"suite {self.name!r} is an agent program: its demonstrations come from "
                        "its `expert`, played through the program")


def is_program_suite(suite: object) -> bool:
    """Whether `suite`'s episodes are agent programs (played through the gateway)."""
    return isinstance(suite, ProgramSuite)
