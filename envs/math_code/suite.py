"""The `math_code` suite: exact-answer math problems solved with a sandboxed Python tool.

The agent writes `<python>code</python>`; what the code prints comes back inside
`<result>...</result>`; `<answer>\\boxed{value}</answer>` ends the episode (`parser: hermes`
uses JSON tool calls instead). Reward 1 when the boxed value equals the answer exactly as a
rational number, else 0; success is a reward of 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ...tools.python import python_tool
from ..base import Task, register_suite
from ..scripted import ScriptStep
from ..tool_suite import ToolSuite
from . import MathCodeTasks, is_correct
from .problems import SPLITS

INSTRUCTIONS = (
    "Solve the math problem. Run Python code to compute exact values rather than working them "
    "out by hand. Give the final answer boxed inside the answer tags, for example "
    "<answer>\\boxed{42}</answer>."
)


@register_suite("math_code")
class MathCodeSuite(ToolSuite):
    """Arithmetic and word problems with a Python tool (local sandbox by default).

    Options: `parser` (xml | hermes), `anchor` (observation | state), `think`,
    `max_calls_per_episode`, `executor` (Executor options), the tool's `backend` (local | e2b),
    `stateful` (variables persist across the calls of one episode; the sandbox closes with the
    episode), `limits` (SandboxLimits fields), `isolation` (auto | bwrap | unshare), `e2b`
    (E2B options), and the task source's `kinds` and `oracle_direct` (the share of tasks the
    expert answers without running code).
    """

    name = "math_code"

    def __init__(self, *, parser: str = "xml", anchor: str = "observation", think: bool = True,
                 max_calls_per_episode: int | None = 8, executor: dict[str, Any] | None = None,
                 backend: str = "local", stateful: bool = False,
                 limits: dict[str, Any] | None = None, isolation: str = "auto",
                 e2b: dict[str, Any] | None = None, kinds: Sequence[str] | None = None,
                 oracle_direct: float = 0.0) -> None:
        self.problems = MathCodeTasks(kinds=kinds, direct=oracle_direct)
        try:
            python = python_tool(backend=backend, stateful=stateful, limits=limits,
                                 isolation=isolation, e2b=e2b, name="python")
        except ValueError as exc:
            raise ValueError(f"env.options: {exc}") from None
        super().__init__([python], reward=_boxed_reward, instructions=INSTRUCTIONS,
                         parser=parser, anchor=anchor, think=think,
                         max_calls_per_episode=max_calls_per_episode, executor=executor)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        """`count` problems of `split` (train / valid / test), fixed by `seed`."""
        return self.problems.tasks(split, count, seed)

    def oracle_steps(self, task: Task) -> list[ScriptStep]:
        """Run the solution program, then answer with its value boxed."""
        return self.problems.oracle_steps(task)

    def corpus(self) -> Iterable[str]:
        """Problems, the prompts of both formats, the expert's responses, its results, answers."""
        yield from self.problems.corpus()
        tasks = [task for split in SPLITS for task in self.problems.tasks(split, 60, 11)]
        yield from self.format_texts(step for task in tasks
                                     for step in self.problems.solution_steps(task))
        for task in tasks:
            # What the solution prints (its answer), as the tool's result would show it.
            yield f"<result>{task.answer}</result>"


def _boxed_reward(answer: str, task: Task) -> float:
    return float(is_correct(answer, task.answer))
