"""What every tool-call format shares: the parse result, answers, thinking, error observations."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from ..base import ToolArgumentError, ToolCall, ToolResult
from ..registry import ToolRegistry

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


@dataclass
class ParseResult:
    """The meaning of one model response.

    Exactly one of these holds: `invalid` (with `error` saying why), `answer` is set (the
    episode's final answer), `calls` is non-empty, or `action` is set (action format, no tool).
    """

    calls: list[ToolCall] = field(default_factory=list)
    answer: str | None = None
    action: str | None = None
    invalid: bool = False
    error: str | None = None

    @property
    def final(self) -> bool:
        return self.answer is not None and not self.invalid


def invalid(error: str) -> ParseResult:
    return ParseResult(invalid=True, error=error)


class ToolParser(Protocol):
    """A tool-call format, both ways: instructions for the system prompt, and parsing replies."""

    name: str
    max_calls: int | None

    def instructions(self) -> str:
        """The text that teaches the model this format and lists the tools."""
        ...

    def parse(self, text: str) -> ParseResult:
        """Parse a response; malformed calls give `invalid=True` and an error, never raise."""
        ...

    def format_results(self, results: list[ToolResult]) -> tuple[str, str]:
        """(chat role, text) of the observation that carries `results` back to the model."""
        ...

    def format_error(self, error: str) -> tuple[str, str]:
        """(chat role, text) of the observation that tells the model its reply was malformed."""
        ...


class ParserBase:
    """Shared machinery: the tool registry, thinking removal, `<answer>` extraction, limits."""

    name = "base"

    def __init__(self, registry: ToolRegistry, *, answer_tag: str | None = "answer",
                 max_calls: int | None = None, error_role: str = "user") -> None:
        if max_calls is not None and max_calls < 1:
            raise ValueError(f"parser max_calls={max_calls}: must be >= 1 or None (no limit)")
        if error_role not in ("user", "tool"):
            raise ValueError(f"parser error_role={error_role!r}: allowed are 'user', 'tool'")
        self.registry = registry
        self.answer_tag = answer_tag
        self.max_calls = max_calls
        self.error_role = error_role

    def format_error(self, error: str) -> tuple[str, str]:
        return self.error_role, f"Invalid response: {error}\n{self.reminder()}"

    def reminder(self) -> str:
        """One line restating the format, appended to error observations."""
        return ""

    @staticmethod
    def strip_thinking(text: str) -> str:
        """The response without its thoughts (tool tags inside thoughts do not count).

        Closed <think> blocks go, and so does everything before a `</think>` left without an
        opening tag: templates such as DeepSeek-R1's and Qwen3.5's open the thought in the
        prompt, so the response starts inside it.
        """
        text = _THINK.sub("", text)
        return text.split("</think>", 1)[1] if "</think>" in text else text

    def find_answer(self, text: str) -> tuple[str | None, str | None]:
        """(answer, error): the content of the single answer tag, or an error when malformed."""
        if self.answer_tag is None:
            return None, None
        tag = self.answer_tag
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
        opened = text.count(f"<{tag}>")
        if opened > len(found):
            return None, f"<{tag}> is opened but never closed with </{tag}>"
        if len(found) > 1:
            return None, f"{len(found)} <{tag}> blocks; give exactly one final answer"
        return (found[0].strip(), None) if found else (None, None)

    def check_calls(self, calls: list[ToolCall]) -> str | None:
        """An error if there are more calls than allowed, else None."""
        if self.max_calls is not None and len(calls) > self.max_calls:
            return (f"{len(calls)} tool calls in one response; at most {self.max_calls} "
                    f"{'is' if self.max_calls == 1 else 'are'} allowed")
        return None

    def validate_call(self, name: str, arguments: object,
                      label: str) -> tuple[ToolCall | None, str | None]:
        """A checked call, or an error naming the unknown tool or the bad argument."""
        if name not in self.registry:
            return None, (f"{label}: unknown tool {name!r}; available tools: "
                          f"{', '.join(self.registry.names()) or 'none'}")
        try:
            checked = self.registry.get(name).validate(arguments)
        except ToolArgumentError as exc:
            return None, f"{label}: {exc}"
        return ToolCall(name=name, arguments=checked), None

    def finish(self, calls: list[ToolCall], answer: str | None, errors: list[str],
               *, bare_text: str) -> ParseResult:
        """Combine what was found into one ParseResult (shared decision rules)."""
        if errors:
            return invalid("; ".join(errors))
        if calls and answer is not None:
            return invalid("a response either calls tools or gives the final answer, not both")
        if calls:
            too_many = self.check_calls(calls)
            return invalid(too_many) if too_many else ParseResult(calls=calls)
        if answer is not None:
            return ParseResult(answer=answer)
        if self.answer_tag is None:
            return ParseResult(answer=bare_text.strip())
        return invalid(f"no tool call and no <{self.answer_tag}>...</{self.answer_tag}> found")
