"""`math_code`: arithmetic and word problems with exactly checked answers, to solve with code.

Everything but the environment: tasks, the reward (1 when the last `\\boxed{}` of a response
equals the answer as a rational number), and the expert's script (run a short program that
prints the answer, then give it boxed). A suite wires these to a `ToolEnv` with a Python tool.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..base import Task
from ..scripted import Render, ScriptedOracle, ScriptStep, check_share, tag_render, task_draw
from .answers import extract_boxed, format_answer, is_correct, parse_number
from .problems import GENERATORS, SPLITS, make_problems

INSTRUCTION = "Solve the problem. You may run Python code. Put the final answer in \\boxed{}."


class MathCodeTasks:
    """Tasks, reward and expert script for code-assisted math problems.

    `direct` is the share of tasks on which the expert answers at once, without running code,
    as hand-written worked solutions often do; which tasks is fixed by a hash of the task id.
    The answer is still right, so the expert's success stays 1, but a model imitating it learns
    two strategies, and only one of them is within its reach.
    """

    def __init__(self, *, kinds: Sequence[str] | None = None, direct: float = 0.0) -> None:
        self.kinds = tuple(kinds or GENERATORS)
        make_problems("train", 1, 0, self.kinds)  # validate `kinds` now
        self.direct = check_share("env.options.oracle_direct", direct)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        """`count` problems of `split` (train / valid / test), determined by `seed`."""
        return make_problems(split, count, seed, self.kinds)

    def prompt(self, task: Task) -> str:
        """The problem as the agent first sees it."""
        return f"{INSTRUCTION}\n\n{task.data['question']}"

    def reward(self, task: Task, response: str) -> float:
        """1.0 when the response's last boxed value equals the answer exactly, else 0.0."""
        return float(is_correct(response, task.answer))

    def oracle_steps(self, task: Task) -> list[ScriptStep]:
        """An expert's moves: run the solution program, then answer with the value boxed; on a
        `direct` share of tasks, answer at once."""
        steps = self.solution_steps(task)
        return steps[-1:] if self.answers_directly(task) else steps

    def solution_steps(self, task: Task) -> list[ScriptStep]:
        """Run the solution program, then answer with the value boxed."""
        return [ScriptStep("code", task.data["solution_code"]),
                ScriptStep("answer", f"\\boxed{{{task.answer}}}")]

    def answers_directly(self, task: Task) -> bool:
        """Whether the expert skips the code on `task` (a fixed draw per task id)."""
        return task_draw(task.id) < self.direct

    def oracle(self, task: Task, render: Render = tag_render) -> ScriptedOracle:
        return ScriptedOracle(self.oracle_steps(task), render)

    def corpus(self) -> Iterable[str]:
        """Text for a tiny tokenizer: problems and the expert's responses."""
        yield INSTRUCTION
        for split in SPLITS:
            for task in self.tasks(split, 140, 7):
                yield task.data["question"]
                yield "\n".join(tag_render(step) for step in self.solution_steps(task))


__all__ = ["GENERATORS", "MathCodeTasks", "SPLITS", "extract_boxed", "format_answer",
           "is_correct", "parse_number"]
