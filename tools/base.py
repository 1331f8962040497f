"""The tool types: `Tool`, `ToolCall`, `ToolResult`, the per-episode `ToolContext`, and errors."""

from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "error", "timeout", "invalid"]


class ToolError(Exception):
    """An expected failure a tool reports to the model (its message is shown as is)."""


class ToolTimeout(ToolError):
    """A tool that enforces its own time limit reports hitting it (counted as a timeout)."""


class TransientToolError(ToolError):
    """A failure worth retrying (a flaky backend); the executor retries it with backoff."""


class ToolArgumentError(ValueError):
    """Arguments that do not fit a tool's schema; the message says which and why."""


@dataclass
class ToolCall:
    """A request to run tool `name` with `arguments` (a JSON object)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:12]}")


@dataclass
class ToolResult:
    """What came back from one call. `content` is the text the model reads."""

    call_id: str
    name: str
    content: str
    status: Status = "ok"
    error: str | None = None
    latency: float = 0.0  # seconds from the call to its result, queueing included
    attempts: int = 0
    truncated: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_info(self) -> dict[str, Any]:
        """A JSON-friendly record for `Step.info["tool_calls"]` and trajectory viewers."""
        return {"id": self.call_id, "name": self.name, "arguments": self.arguments,
                "status": self.status, "result": self.content, "error": self.error,
                "latency": round(self.latency, 6), "attempts": self.attempts,
                "truncated": self.truncated}


class ToolContext:
    """State that lives for one episode: stateful tools keep sessions here; closed at episode end.

    A tool function receives it when one of its parameters is annotated `ToolContext`; that
    parameter never appears in the schema the model sees.
    """

    def __init__(self, episode_id: str | None = None, task: Any = None) -> None:
        self.episode_id = episode_id or uuid.uuid4().hex[:12]
        self.task = task
        self.state: dict[str, Any] = {}
        self._closers: list[Callable[[], Any]] = []
        self.closed = False

    def on_close(self, closer: Callable[[], Any]) -> None:
        """Run `closer` (sync or async) when the episode ends."""
        self._closers.append(closer)

    async def aclose(self) -> list[str]:
        """Run every closer, newest first; returns the errors instead of raising them."""
        errors = []
        while self._closers:
            closer = self._closers.pop()
            try:
                out = closer()
                if inspect.isawaitable(out):
                    await out
            except Exception as exc:  # one failing cleanup must not skip the others
                errors.append(f"{type(exc).__name__}: {exc}")
        self.state.clear()
        self.closed = True
        return errors


Validator = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Tool:
    """A callable the model can use, with its OpenAI function schema.

    `fn` takes the arguments as keywords (plus the context under `context_param`); it may be a
    coroutine function. `validate` checks and coerces arguments before a call.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    validate_args: Validator | None = None
    context_param: str | None = None
    timeout: float | None = None  # overrides the executor's per-call timeout
    max_concurrency: int | None = None  # overrides the executor's per-tool limit
    retry_on: tuple[type[BaseException], ...] = ()  # extra exception types that are transient
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(
                f"tool name {self.name!r}: use letters, digits, '_' and '-' (OpenAI function names)"
            )
        if self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must be a JSON schema of type object")

    @property
    def is_async(self) -> bool:
        fn = self.fn
        if inspect.iscoroutinefunction(fn):
            return True
        # A callable object whose __call__ is async.
        return not inspect.isroutine(fn) and inspect.iscoroutinefunction(
            getattr(type(fn), "__call__", None))  # noqa: B004

    def schema(self) -> dict[str, Any]:
        """The OpenAI function-calling schema: {"type": "function", "function": {...}}."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}

    def validate(self, arguments: Any) -> dict[str, Any]:
        """Checked (and coerced) arguments; raises ToolArgumentError naming what is wrong."""
        if not isinstance(arguments, dict):
            raise ToolArgumentError(
                f"arguments of {self.name!r} must be a JSON object, got {type(arguments).__name__}")
        if self.validate_args is not None:
            return self.validate_args(arguments)
        from .schema import check_json_schema

        check_json_schema(self.parameters, arguments, where=self.name)
        return dict(arguments)

    async def invoke(self, arguments: dict[str, Any], context: ToolContext | None = None,
                     *, executor: Any = None) -> Any:
        """Run the tool on validated arguments; sync functions run on `executor` threads."""
        kwargs = dict(arguments)
        if self.context_param is not None:
            kwargs[self.context_param] = context if context is not None else ToolContext()
        if self.is_async:
            return await self.fn(**kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, lambda: self.fn(**kwargs))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (tests, plain Python use)."""
        return self.fn(*args, **kwargs)


def valid_text(text: str) -> str:
    """`text` as valid UTF-8: lone surrogates (from undecodable file names, say) become '?'.

    A tokenizer refuses them, so one such result would otherwise fail its whole episode.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def render_output(value: Any) -> str:
    """A tool's return value as the text the model reads (always valid UTF-8)."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None:
        return ""
    if hasattr(value, "model_dump"):  # pydantic models
        value = value.model_dump(mode="json")
    try:
        return valid_text(json.dumps(value, ensure_ascii=False, default=str))
    except (TypeError, ValueError):
        return valid_text(str(value))
