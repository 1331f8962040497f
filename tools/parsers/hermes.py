"""Hermes / Qwen JSON tool calls: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`."""

from __future__ import annotations

import json
import re

from ..base import ToolCall, ToolResult
from ..registry import ToolRegistry
from .base import ParserBase, ParseResult

_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class HermesParser(ParserBase):
    """JSON calls inside <tool_call> tags; results go back as role "tool" in <tool_response> tags.

    The tags are this parser's own format, for templates that render a tool message like any
    other; where the chat template formats tool messages itself (Qwen, Llama 3.1, DeepSeek), the
    chat layer sends each result raw as its own tool message instead (see
    `agent.chat.ChatFormatter.observation_messages`), so nothing is wrapped twice.

    With `answer_tag=None` a response without calls is the final answer (chat-assistant style);
    otherwise the final answer must be inside the answer tag (Search-R1 style rewards).
    `list_tools=False` leaves the schemas out of the instructions, for when the chat template
    lists them itself (the `tools` argument of `apply_chat_template`).
    """

    name = "hermes"

    def __init__(self, registry: ToolRegistry, *, answer_tag: str | None = "answer",
                 max_calls: int | None = None, error_role: str = "user",
                 list_tools: bool = True) -> None:
        super().__init__(registry, answer_tag=answer_tag, max_calls=max_calls,
                         error_role=error_role)
        self.list_tools = list_tools

    def instructions(self) -> str:
        schemas = "\n".join(json.dumps(s, ensure_ascii=False) for s in self.registry.schemas())
        listing = (f"# Tools\n\nYou can call the functions described by these JSON schemas:\n"
                   f"<tools>\n{schemas}\n</tools>\n\n" if self.list_tools else "")
        plural = "s" if (self.max_calls or 0) > 1 else ""
        limit = ("" if self.max_calls is None else
                 f" Make at most {self.max_calls} call{plural} per reply.")
        answer = ("" if self.answer_tag is None else
                  f" When you know the final answer, reply with <{self.answer_tag}>your answer"
                  f"</{self.answer_tag}> and no tool call.")
        return (
            f"{listing}To call a function, write a JSON object with the function's name and its "
            "arguments inside <tool_call></tool_call> tags:\n"
            '<tool_call>{"name": "<function name>", "arguments": {"<argument>": <value>}}'
            "</tool_call>\n"
            f"Each result comes back inside <tool_response></tool_response> tags.{limit}{answer}"
        )

    def reminder(self) -> str:
        return ('Call a tool as <tool_call>{"name": "<function name>", "arguments": {...}}'
                "</tool_call>" + (f", or answer with <{self.answer_tag}>...</{self.answer_tag}>."
                                  if self.answer_tag else "."))

    def parse(self, text: str) -> ParseResult:
        body = self.strip_thinking(text)
        bodies = _CALL.findall(body)
        errors: list[str] = []
        if body.count("<tool_call>") > len(bodies):
            errors.append("a <tool_call> is opened but never closed with </tool_call>")
        calls: list[ToolCall] = []
        for i, raw in enumerate(bodies):
            label = f"tool call {i + 1}" if len(bodies) > 1 else "tool call"
            call, error = self._one(raw, label)
            if error:
                errors.append(error)
            elif call is not None:
                calls.append(call)
        answer, answer_error = self.find_answer(_CALL.sub("", body))
        if answer_error:
            errors.append(answer_error)
        return self.finish(calls, answer, errors, bare_text=body)

    def _one(self, raw: str, label: str) -> tuple[ToolCall | None, str | None]:
        raw = raw.strip()
        fenced = _FENCE.match(raw)
        if fenced:
            raw = fenced.group(1)
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            return None, (f"{label}: not valid JSON ({exc.msg} at line {exc.lineno} column "
                          f"{exc.colno}): {raw[:80]!r}")
        if not isinstance(data, dict):
            return None, (f"{label}: expected a JSON object with \"name\" and \"arguments\", "
                          f"got {type(data).__name__}")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            return None, f"{label}: \"name\" must be the tool's name as a string"
        if "arguments" in data and "parameters" in data:
            return None, f"{label}: give \"arguments\" or \"parameters\", not both"
        arguments = data.get("arguments", data.get("parameters", {}))
        if isinstance(arguments, str):  # OpenAI-style arguments encoded as a JSON string
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                return None, (f"{label}: \"arguments\" is a string that is not valid JSON "
                              f"({exc.msg})")
        if not isinstance(arguments, dict):
            return None, (f"{label}: \"arguments\" must be a JSON object, got "
                          f"{type(arguments).__name__}")
        unknown = set(data) - {"name", "arguments", "parameters"}
        if unknown:
            return None, (f"{label}: unexpected keys {sorted(unknown)}; only \"name\" and "
                          "\"arguments\"")
        return self.validate_call(name, arguments, label)

    def format_results(self, results: list[ToolResult]) -> tuple[str, str]:
        return "tool", "\n".join(f"<tool_response>\n{r.content}\n</tool_response>" for r in results)

