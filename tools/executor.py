"""The executor: runs tool calls with a timeout, bounded concurrency, retries and truncation.

`Executor.call` never raises (except for cancellation of the caller): an unknown tool, bad
arguments, an exception, a hang or an oversized output all come back as a `ToolResult` whose
`content` tells the model what happened and whose `status` feeds the metrics.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from .base import (
    Tool,
    ToolArgumentError,
    ToolCall,
    ToolContext,
    ToolError,
    ToolResult,
    ToolTimeout,
    TransientToolError,
    render_output,
    valid_text,
)
from .metrics import UNKNOWN_TOOL, ToolMetrics
from .registry import ToolRegistry
from .truncate import TokenCounter, truncate_text

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException, extra: tuple[type[BaseException], ...] = ()) -> bool:
    """Worth retrying: network failures, 5xx and rate limits, TransientToolError, `extra`."""
    if isinstance(exc, TransientToolError) or (extra and isinstance(exc, extra)):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRY_STATUS
    return isinstance(exc, (httpx.TransportError, ConnectionError))


class _Hung(Exception):
    """The executor's own timeout, kept apart from TimeoutErrors a tool raises itself."""


class Executor:
    """Runs calls to the tools of `registry`.

    Args:
        timeout: seconds one attempt may take (a tool's own `timeout` overrides it).
        max_concurrency: calls of one tool running at once (a tool's own limit overrides it).
        retries: extra attempts after a transient error; hangs and tool bugs are not retried.
        backoff: (initial, maximum) seconds of the exponential backoff with jitter.
        max_output_tokens: budget of a result's text; longer outputs keep head and tail.
        tokenizer: counts tokens for the budget; without it a token is 4 characters.
        threads: worker threads for sync tools (a hung sync tool holds one until it returns).
    """

    def __init__(
        self,
        registry: ToolRegistry | Sequence[Tool],
        *,
        timeout: float = 30.0,
        max_concurrency: int = 16,
        retries: int = 2,
        backoff: tuple[float, float] = (0.5, 8.0),
        max_output_tokens: int = 1024,
        tokenizer: TokenCounter | None = None,
        threads: int = 32,
    ) -> None:
        if timeout <= 0 or max_concurrency < 1 or retries < 0 or max_output_tokens < 1:
            raise ValueError(
                f"Executor: timeout={timeout} must be > 0, max_concurrency={max_concurrency} >= 1, "
                f"retries={retries} >= 0, max_output_tokens={max_output_tokens} >= 1")
        self.registry = registry if isinstance(registry, ToolRegistry) else ToolRegistry(registry)
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.retries = retries
        self.backoff = backoff
        self.max_output_tokens = max_output_tokens
        self.tokenizer = tokenizer
        self.metrics = ToolMetrics()
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="turnwise-tool")
        # Semaphores bind to an event loop: one set per loop (a fresh asyncio.run gets fresh ones).
        self._slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.abandoned = 0  # sync calls that timed out and may still occupy a thread

    async def call(self, call: ToolCall, context: ToolContext | None = None) -> ToolResult:
        """Run one call; every failure is a result, never an exception."""
        started = time.perf_counter()
        arguments = call.arguments if isinstance(call.arguments, dict) else {}
        result = ToolResult(call_id=call.id, name=call.name, content="", arguments=dict(arguments))
        try:
            tool = self.registry.get(call.name) if call.name in self.registry else None
            if tool is None:
                known = ", ".join(self.registry.names())
                return self._finish(result, started, "invalid",
                                    f"unknown tool {call.name!r}; available tools: {known}")
            try:
                arguments = tool.validate(call.arguments)
            except ToolArgumentError as exc:
                return self._finish(result, started, "invalid", str(exc))
            async with self._slot(tool):
                value = await self._attempts(tool, arguments, context, result)
            text = render_output(value)
            result.content, result.truncated = truncate_text(
                text, self.max_output_tokens, tokenizer=self.tokenizer)
            return self._finish(result, started, "ok", None)
        except asyncio.CancelledError:
            raise
        except _Hung:
            limit = self._timeout(tool)
            return self._finish(result, started, "timeout",
                                f"tool {call.name!r} timed out after {limit:g}s")
        except ToolTimeout as exc:
            return self._finish(result, started, "timeout", str(exc) or "timed out")
        except ToolError as exc:
            return self._finish(result, started, "error", str(exc) or type(exc).__name__)
        except Exception as exc:  # a tool's bug becomes an observation and a metric
            return self._finish(result, started, "error", f"{type(exc).__name__}: {exc}")

    async def call_many(self, calls: Sequence[ToolCall],
                        context: ToolContext | None = None) -> list[ToolResult]:
        """Run calls concurrently; results come back in the order of `calls`."""
        return list(await asyncio.gather(*(self.call(c, context) for c in calls)))

    def close(self) -> None:
        """Release the worker threads (hung sync tools are left to finish on their own)."""
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _timeout(self, tool: Tool) -> float:
        return tool.timeout if tool.timeout is not None else self.timeout

    def _slot(self, tool: Tool) -> asyncio.Semaphore:
        slots = self._slots.setdefault(asyncio.get_running_loop(), {})
        if tool.name not in slots:
            slots[tool.name] = asyncio.Semaphore(tool.max_concurrency or self.max_concurrency)
        return slots[tool.name]

    async def _attempts(self, tool: Tool, arguments: dict[str, Any], context: ToolContext | None,
                        result: ToolResult) -> Any:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            # initial * 2^(n-1) seconds, capped, plus up to `initial` of jitter so that many
            # episodes hitting one rate limit do not retry in lock-step.
            wait=wait_exponential(multiplier=self.backoff[0], max=self.backoff[1])
            + wait_random(0, self.backoff[0]),
            retry=retry_if_exception(lambda e: is_transient(e, tool.retry_on)),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                result.attempts += 1
                return await self._once(tool, arguments, context)
        raise AssertionError("unreachable: tenacity either returns or reraises")

    async def _once(self, tool: Tool, arguments: dict[str, Any],
                    context: ToolContext | None) -> Any:
        task = asyncio.ensure_future(tool.invoke(arguments, context, executor=self._threads))
        done, _ = await asyncio.wait({task}, timeout=self._timeout(tool))
        if task in done:
            return task.result()
        task.cancel()
        if not tool.is_async:
            self.abandoned += 1
        # Give an async tool a moment to run its cleanup (kill a subprocess, close a socket).
        await asyncio.wait({task}, timeout=1.0)
        raise _Hung()

    def _finish(self, result: ToolResult, started: float, status: str,
                error: str | None) -> ToolResult:
        result.status = status  # type: ignore[assignment]
        result.latency = time.perf_counter() - started
        if error is not None:
            error = valid_text(error)
            # An exception's message can be as long as any output; it gets the same budget.
            result.content, cut = truncate_text(f"Error: {error}", self.max_output_tokens,
                                                tokenizer=self.tokenizer)
            result.error = result.content[len("Error: "):] if cut else error
            result.truncated = result.truncated or cut
        known = result.name in self.registry
        self.metrics.record(result.name if known else UNKNOWN_TOOL, result.status,
                            result.latency, result.attempts, result.truncated)
        return result
