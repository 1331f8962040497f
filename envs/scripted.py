"""Scripted experts for tool-using tasks: the steps an expert takes, rendered as response text.

A task source knows what an expert would do (search for this, run that code, answer this); how
a step becomes text depends on the tool-call format of the environment that runs it, so the
rendering is a parameter. The default renders Search-R1-style tags, which the tiny tokenizer
knows: `<search>q</search>`, `<python>code</python>`, `<answer>a</answer>`; `render_for` gives
the rendering of a tool suite's format (xml tags or Hermes JSON calls, with a short thought).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .base import Observation

STEP_KINDS = ("search", "code", "answer")


def task_draw(task_id: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by a task's id (and `salt`): an expert that varies its script on
    a share p of the tasks does so where `task_draw(task.id, salt) < p`."""
    return int(hashlib.sha256(f"{salt}{task_id}".encode()).hexdigest()[:12], 16) / 16 ** 12


def check_share(key: str, value: object) -> float:
    """`value` as a share of tasks; anything but a number in [0, 1] stops, naming `key`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{key}={value!r}: allowed is a number in [0, 1]")
    return float(value)


@dataclass(frozen=True)
class ScriptStep:
    """One expert move: `kind` is search, code or answer; `text` its query, code or answer."""

    kind: str
    text: str

    def __post_init__(self) -> None:
        if self.kind not in STEP_KINDS:
            raise ValueError(f"ScriptStep.kind={self.kind!r}: allowed are {list(STEP_KINDS)}")


Render = Callable[[ScriptStep], str]
_TAGS = {"search": "search", "code": "python", "answer": "answer"}


def tag_render(step: ScriptStep) -> str:
    """`<search>...</search>`, `<python>...</python>` or `<answer>...</answer>`."""
    tag = _TAGS[step.kind]
    return f"<{tag}>{step.text}</{tag}>"


# The tools a suite registers for each kind of step: (tool name, its one text argument).
STEP_TOOLS = {"search": ("search", "query"), "code": ("python", "code")}
# Only a search's thought quotes its text: quoting code would double the response.
THOUGHTS = {"search": "I should search for: {text}", "code": "I will compute this with Python.",
            "answer": "I have the answer."}


def hermes_render(step: ScriptStep) -> str:
    """A Hermes JSON tool call (`<tool_call>{"name": ..., "arguments": ...}</tool_call>`), or the
    answer in `<answer>` tags."""
    if step.kind == "answer":
        return f"<answer>{step.text}</answer>"
    name, argument = STEP_TOOLS[step.kind]
    call = json.dumps({"name": name, "arguments": {argument: step.text}}, ensure_ascii=False)
    return f"<tool_call>{call}</tool_call>"


def render_for(parser: str, *, think: bool) -> Render:
    """How an expert writes a step in the `parser` format ("xml" or "hermes"); with `think`,
    a one-line `<think>` comes first, as the formats that ask for reasoning expect."""
    renders = {"xml": tag_render, "hermes": hermes_render}
    if parser not in renders:
        raise ValueError(f"parser={parser!r}: allowed are {sorted(renders)}")
    render = renders[parser]
    if not think:
        return render

    def thoughtful(step: ScriptStep) -> str:
        return f"<think>{THOUGHTS[step.kind].format(text=step.text)}</think>\n{render(step)}"

    return thoughtful


class ScriptedOracle:
    """Answers each turn with the next step of its script (the last one repeats)."""

    def __init__(self, steps: Sequence[ScriptStep], render: Render = tag_render) -> None:
        if not steps:
            raise ValueError("ScriptedOracle needs at least one step")
        self.steps, self.render, self.position = list(steps), render, 0

    def act(self, observation: Observation) -> str:
        step = self.steps[min(self.position, len(self.steps) - 1)]
        self.position += 1
        return self.render(step)
