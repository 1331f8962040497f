"""Deterministic stand-ins for an engine and an environment, for rollout tests.

`ScriptedEngine` answers from a script (text per call, chosen by a function of the prompt and
call count) and records every prompt it saw; `CountingEnv` ends after a fixed number of steps,
optionally sleeping, and echoes what it was told.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from turnwise.agent.engines.base import Completion, SamplingParams
from turnwise.envs.base import Observation, Step, Task


class ScriptedEngine:
    """Returns `reply(prompt_ids, call_index)` tokenised, closed with eos, logprob -0.5 each."""

    def __init__(self, tokenizer, reply: Callable[[list[int], int], str],
                 top: Callable[[int], list[dict[int, float]]] | None = None) -> None:
        self.tokenizer, self.reply, self.top = tokenizer, reply, top
        self.calls: list[tuple[list[int], SamplingParams, Completion]] = []
        self.version = 0

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *,
                       session: str | None = None) -> Completion:
        await asyncio.sleep(0)
        index = len(self.calls)
        text = self.reply(list(prompt_ids), index)
        ids = self.tokenizer.encode(text, add_special_tokens=False)[:params.max_tokens - 1]
        ids = ids + [self.tokenizer.eos_token_id]
        top = self.top(index) if self.top and params.top_logprobs else None
        completion = Completion(token_ids=ids, logprobs=[-0.5] * len(ids), finish_reason="stop",
                                version=self.version, top_logprobs=top,
                                prompt_tokens=len(prompt_ids))
        self.calls.append((list(prompt_ids), params, completion))
        return completion


class CountingEnv:
    """Done after `task.data['steps']` steps; each observation says which step it is."""

    system_prompt = "Count with me."

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.steps = 0
        self.limit = 0

    async def reset(self, task: Task) -> Observation:
        self.limit, self.steps = task.data["steps"], 0
        return Observation(text=f"start {task.id}", anchor=("start", task.id))

    async def step(self, action_text: str) -> Step:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.steps += 1
        done = self.steps >= self.limit
        text = f"after {self.steps}: {action_text}"
        return Step(Observation(text=text, anchor=("step", self.steps), role="tool"),
                    reward=1.0 if done else 0.0, done=done, info={"success": done})

    async def close(self) -> None:
        pass


class CountingSuite:
    name = "counting"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def make(self) -> CountingEnv:
        return CountingEnv(self.delay)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        return [Task(id=f"c{i}", data={"steps": 1 + (seed + i) % 3}) for i in range(count)]

    def oracle(self, task):
        raise NotImplementedError

    def corpus(self):
        yield self.make().system_prompt


class ParityEnv:
    """Household, plus 1 for every reply of odd length: groups get differing rewards."""

    def __init__(self, env):
        self.env = env
        self.system_prompt = env.system_prompt

    async def reset(self, task):
        return await self.env.reset(task)

    async def step(self, action_text):
        step = await self.env.step(action_text)
        step.reward += float(len(action_text) % 2)
        return step

    async def close(self):
        await self.env.close()


class AnswerSuite:
    """Household tasks that carry a gold answer, so IGPO can score it."""

    name = "household_answers"

    def __init__(self, **options):
        from turnwise.envs.base import make_suite

        self.inner = make_suite("household", **options)

    def make(self):
        return ParityEnv(self.inner.make())

    def tasks(self, split, count, seed):
        tasks = self.inner.tasks(split, count, seed)
        for task in tasks:
            task.answer = "countertop 1"
        return tasks

    def oracle(self, task):
        return self.inner.oracle(task)

    def corpus(self):
        return self.inner.corpus()


def register_answer_suite() -> None:
    """Register `household_answers` (once per process)."""
    from turnwise.envs.base import register_suite, suite_names

    if "household_answers" not in suite_names():
        register_suite("household_answers")(AnswerSuite)
