"""What the gateway tests share: an adding task, its tool, an expert, a scripted policy, and
a gateway with one session opened on it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from turnwise.agent.engines.base import ChatPrompt, Completion, SamplingParams
from turnwise.envs.base import Task
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.gateway import Gateway
from turnwise.rollouts.trajectory import Trajectory

from tests.fakes import ScriptedEngine

SYSTEM = "You add numbers. Call the add tool, then give the sum."
ADD = {"type": "function", "function": {
    "name": "add", "description": "Add two integers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
                                                    "b": {"type": "integer"}},
                   "required": ["a", "b"]}}}


def adding_tasks(split: str, count: int, seed: int) -> list[Task]:
    """'What is a + b?' problems, fixed by `seed`."""
    tasks = []
    for i in range(count):
        a, b = (seed * 7 + i * 3) % 50, (seed * 11 + i * 5) % 40
        tasks.append(Task(id=f"add/{split}/{seed}/{i}", answer=str(a + b),
                          data={"question": f"What is {a} + {b}?", "a": a, "b": b}))
    return tasks


def expert(task: Task, messages: list[dict[str, Any]]) -> str:
    """Call add once, then state its result."""
    if messages[-1]["role"] == "tool":
        return f"The sum is {messages[-1]['content']}."
    arguments = json.dumps({"a": task.data["a"], "b": task.data["b"]})
    return f'<tool_call>{{"name": "add", "arguments": {arguments}}}</tool_call>'


def sum_reward(text: str | None, task: Task) -> float:
    """1 when the last number in `text` is the answer."""
    numbers = re.findall(r"-?\d+", text or "")
    return float(bool(numbers) and numbers[-1] == task.answer)


def expert_engine(tokenizer) -> ScriptedEngine:
    """An engine that plays the expert: a call to add, then the sum the tool returned."""

    def reply(prompt_ids: list[int], _call: int) -> str:
        text = tokenizer.decode(prompt_ids)
        if text.rstrip().endswith("<|im_start|>assistant") and "<|im_start|>tool" in text:
            result = text.rsplit("<|im_start|>tool\n", 1)[1].split("<|im_end|>")[0]
            return f"The sum is {result}."
        question = text.rsplit("What is ", 1)[1].split("?")[0]
        a, b = question.split(" + ")
        return f'<tool_call>{{"name": "add", "arguments": {{"a": {a}, "b": {b}}}}}</tool_call>'

    return ScriptedEngine(tokenizer, reply)


class ScriptedPolicy:
    """A session policy that answers with `reply(messages, call)`, tokenised and closed with
    eos (logprob -0.5 each), and records every prompt and params it was given."""

    def __init__(self, tokenizer: Any, reply: Callable[[list[dict], int], str]) -> None:
        self.tokenizer, self.reply = tokenizer, reply
        self.prompts: list[ChatPrompt] = []
        self.params: list[SamplingParams] = []
        self.completions: list[Completion] = []

    async def __call__(self, prompt: ChatPrompt, params: SamplingParams) -> Completion:
        text = self.reply(prompt.messages, len(self.prompts))
        ids = self.tokenizer.encode(text, add_special_tokens=False)[:params.max_tokens - 1]
        ids = ids + [self.tokenizer.eos_token_id]
        completion = Completion(ids, [-0.5] * len(ids), "stop", prompt_tokens=len(prompt))
        self.prompts.append(prompt)
        self.params.append(params)
        self.completions.append(completion)
        return completion


@asynccontextmanager
async def served(tokenizer: Any, policy: Any, **settings: Any):
    """A started gateway with one session on `policy`; yields (gateway, session)."""
    gateway = Gateway(tokenizer)
    await gateway.start()
    trajectory = Trajectory(uid="u", traj_id="t", mode=settings.get("mode", "full_trajectory"),
                            prompt_ids=[])
    session = gateway.open(policy=policy, settings=EpisodeSettings(**settings),
                           trajectory=trajectory)
    try:
        yield gateway, session
    finally:
        await gateway.close()


def first_messages(task: Task) -> list[dict[str, Any]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task.data["question"]}]


async def openai_program(task: Task, client: Any) -> float:
    """An agent loop over the `openai` client: call add while the model asks, score the end."""
    messages = first_messages(task)
    for _ in range(3):
        reply = await client.chat.completions.create(model="policy", messages=messages,
                                                     tools=[ADD])
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return graded(message.content, task)
        for call in message.tool_calls:
            arguments = json.loads(call.function.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": str(arguments.get("a", 0) + arguments.get("b", 0))})
    return 0.0


def graded(text: str | None, task: Task) -> float:
    """1 for the right sum; otherwise a small reward that varies with the reply, so an untrained
    model's group has different rewards and GRPO moves the weights in a short test."""
    return sum_reward(text, task) or len(text or "") % 5 / 10


def config(tiny_path: str, suite: str, log_dir: str, **rollout: Any):
    """A tiny training run of program suite `suite` on the tiny model."""
    from turnwise.trainer.config import Config

    return Config.model_validate({
        "name": suite, "model": {"name": tiny_path}, "env": {"name": suite},
        "rollout": {"mode": "full_trajectory", "group_size": 2, "tasks_per_iteration": 2,
                    "max_turns": 3, "max_tokens_per_turn": 16, "max_episode_tokens": 1024,
                    **rollout},
        "train": {"iterations": 2, "lr": 1e-3, "threads": 1},
        "sft": {"episodes": 0}, "eval": {"tasks": 2, "split": "valid"},
        "log": {"dir": log_dir, "quiet": True, "save_trajectories": 2, "tensorboard": False}})
