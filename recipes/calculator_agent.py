"""An agent program trained through the gateway: a plain loop over the `openai` client that
solves math_code's `leftover` problems with a calculator tool.

The program below is what a user would write against any OpenAI-compatible API; turnwise hands
it a client whose API key names the episode, and trains on the token ids the gateway recorded.
`recipes/calculator_agent.yaml` imports this module, which registers the suite.
"""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Iterable
from typing import Any

from turnwise.envs.base import Task, register_suite
from turnwise.envs.math_code import MathCodeTasks, is_correct
from turnwise.envs.math_code.problems import SPLITS
from turnwise.envs.program import ProgramSuite

SYSTEM = ("Solve the problem. Use the calculator for arithmetic. Give the final answer as "
          "\\boxed{value}.")
TOOLS = [{"type": "function", "function": {
    "name": "calculator", "description": "Evaluate an arithmetic expression (+ - * / // % **).",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                   "required": ["expression"]}}}]
MAX_CALLS = 2


async def run(task: Task, client: Any) -> float:
    """The agent: ask the model, run the calculator calls it makes, score its final answer."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM},
                                      {"role": "user", "content": task.data["question"]}]
    for _ in range(MAX_CALLS + 1):
        reply = await client.chat.completions.create(model="policy", messages=messages,
                                                     tools=TOOLS)
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return float(is_correct(message.content or "", task.answer))
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": calculator(call.function.arguments)})
    return 0.0


def calculator(arguments: str) -> str:
    """The tool: the value of `expression`, or what is wrong with the call."""
    try:
        expression = json.loads(arguments)["expression"]
        return _format(_evaluate(ast.parse(str(expression), mode="eval").body))
    except (ValueError, KeyError, TypeError, SyntaxError, ZeroDivisionError,
            json.JSONDecodeError) as exc:
        return f"error: {type(exc).__name__}: {exc}"


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
        ast.Pow: operator.pow}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ValueError("exponent too large")
        return _OPS[type(node.op)](left, right)
    raise ValueError(f"not arithmetic: {ast.dump(node)[:40]}")


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


class CalculatorExpert:
    """Demonstrations: call the calculator with the solution's expression, then box the
    result; on the `direct` share of problems, answer at once (a tiny model cannot, so RL
    has to find out that only the calculator works; see the recipe)."""

    def __init__(self, problems: MathCodeTasks) -> None:
        self.problems = problems

    def __call__(self, task: Task, messages: list[dict[str, Any]]) -> str:
        last = messages[-1]
        if last["role"] == "tool":
            return f"\\boxed{{{last['content']}}}"
        if self.problems.answers_directly(task):
            return f"\\boxed{{{task.answer}}}"
        return call_text(task)


def call_text(task: Task) -> str:
    """The hermes tool call that computes `task`'s answer."""
    expression = task.data["solution_code"].removeprefix("print(").removesuffix(")")
    arguments = json.dumps({"expression": expression})
    return f'<tool_call>{{"name": "calculator", "arguments": {arguments}}}</tool_call>'


def corpus(problems: MathCodeTasks) -> Iterable[str]:
    """Text for the tiny tokenizer: problems, prompts, tool schema, the expert's replies."""
    yield SYSTEM
    yield json.dumps(TOOLS[0])
    yield from problems.corpus()
    for split in SPLITS:
        for task in problems.tasks(split, 60, 11):
            yield call_text(task)
            yield f"\\boxed{{{task.answer}}}"


@register_suite("calculator_agent")
def calculator_agent(kinds: list[str] | None = None, oracle_direct: float = 0.5) -> ProgramSuite:
    """math_code problems (`kinds`, default leftover) played by the calculator program above."""
    problems = MathCodeTasks(kinds=kinds or ["leftover"], direct=oracle_direct)
    return ProgramSuite("calculator_agent", run, tasks=problems.tasks,
                        corpus=lambda: corpus(problems), expert=CalculatorExpert(problems))
