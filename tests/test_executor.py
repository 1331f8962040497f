"""The executor: hangs, exceptions, huge outputs, wrong arguments, retries, limits, metrics."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from turnwise.tools import (
    Executor,
    ToolCall,
    ToolError,
    ToolRegistry,
    TransientToolError,
    is_transient,
    tool,
)
from turnwise.tools.metrics import ToolMetrics
from turnwise.tools.truncate import truncate_text


def run(coro):
    return asyncio.run(coro)


@tool
async def hang(seconds: float = 3600.0) -> str:
    """Sleep for a long time."""
    await asyncio.sleep(seconds)
    return "woke"


@tool
def hang_sync(seconds: float = 3.0) -> str:
    """Block a thread for a while."""
    time.sleep(seconds)
    return "woke"


@tool
def boom(message: str) -> str:
    """Raise."""
    raise RuntimeError(message)


@tool
def refuse(reason: str) -> str:
    """Fail the way tools are expected to fail."""
    raise ToolError(reason)


@tool
def big(megabytes: int = 10) -> str:
    """Return a lot of text."""
    return "HEAD" + "x" * (megabytes * 1024 * 1024) + "TAIL"


@tool
def add(a: int, b: int) -> int:
    """Add."""
    return a + b


def executor(**options):
    return Executor(ToolRegistry([hang, hang_sync, boom, refuse, big, add]), **options)


def test_a_hanging_tool_times_out_and_the_result_says_so():
    ex = executor(timeout=0.2)
    started = time.perf_counter()
    result = run(ex.call(ToolCall("hang", {})))
    assert result.status == "timeout" and result.content == "Error: tool 'hang' timed out after 0.2s"
    assert time.perf_counter() - started < 2.0
    result = run(ex.call(ToolCall("hang_sync", {"seconds": 1.0})))
    assert result.status == "timeout" and ex.abandoned == 1
    assert result.attempts == 1  # a hang is never retried
    assert ex.metrics.summary()["tools/hang/timeouts"] == 1


def test_exceptions_become_error_observations():
    ex = executor()
    result = run(ex.call(ToolCall("boom", {"message": "disk on fire"})))
    assert result.status == "error" and result.content == "Error: RuntimeError: disk on fire"
    assert result.attempts == 1  # a bug is not transient
    result = run(ex.call(ToolCall("refuse", {"reason": "no such city"})))
    assert result.status == "error" and result.content == "Error: no such city"


def test_ten_megabytes_are_cut_to_the_budget_with_a_marker():
    ex = executor(max_output_tokens=100)
    result = run(ex.call(ToolCall("big", {"megabytes": 10})))
    assert result.ok and result.truncated
    # 100 tokens of 4 characters: 280 head characters, 120 tail characters, marker between.
    assert result.content.startswith("HEAD" + "x" * 276) and result.content.endswith("x" * 116 + "TAIL")
    assert "output truncated: about 10485368 of 10485768 characters omitted" in result.content
    assert len(result.content) < 500


def test_wrong_arguments_and_unknown_tools_are_invalid():
    ex = executor()
    result = run(ex.call(ToolCall("add", {"a": "one", "b": 2})))
    assert result.status == "invalid"
    assert "argument 'a': Input should be a valid integer" in result.content
    result = run(ex.call(ToolCall("sub", {"a": 1})))
    assert result.status == "invalid" and "unknown tool 'sub'; available tools: hang" in result.content
    result = run(ex.call(ToolCall("add", {"a": 1, "b": 2})))
    assert result.ok and result.content == "3"
    summary = ex.metrics.summary()
    assert summary["tools/add/invalid"] == 1 and summary["tools/add/calls"] == 2


def test_calls_to_unknown_names_count_under_one_key():
    ex = executor()
    for name in ("sub", "ad", "Add", "sub"):
        result = run(ex.call(ToolCall(name, {"a": 1})))
        assert result.status == "invalid" and result.name == name  # the record keeps the name
    summary = ex.metrics.summary()
    assert summary["tools/(unknown)/calls"] == 4 and summary["tools/(unknown)/invalid"] == 4
    families = {key.split("/")[1] for key in summary}
    assert families == {"(unknown)"}  # no tools/sub/..., tools/ad/..., tools/Add/...


def test_transient_errors_are_retried_with_backoff_and_others_are_not():
    attempts = []

    @tool
    async def flaky(x: int) -> str:
        """Fails twice, then works."""
        attempts.append(time.perf_counter())
        if len(attempts) < 3:
            request = httpx.Request("GET", "http://search")
            raise httpx.HTTPStatusError("busy", request=request,
                                        response=httpx.Response(503, request=request))
        return f"ok {x}"

    ex = Executor(ToolRegistry([flaky]), retries=2, backoff=(0.05, 1.0))
    result = run(ex.call(ToolCall("flaky", {"x": 1})))
    assert result.ok and result.content == "ok 1" and result.attempts == 3
    assert attempts[1] - attempts[0] >= 0.05 and attempts[2] - attempts[1] >= 0.1
    assert ex.metrics.summary()["tools/flaky/retries"] == 2
    attempts.clear()
    ex = Executor(ToolRegistry([flaky]), retries=1, backoff=(0.01, 0.01))
    result = run(ex.call(ToolCall("flaky", {"x": 1})))
    assert result.status == "error" and result.attempts == 2 and "busy" in result.content


def test_transient_classification():
    request = httpx.Request("GET", "http://x")

    def status(code):
        return httpx.HTTPStatusError("s", request=request, response=httpx.Response(code, request=request))

    assert is_transient(status(429)) and is_transient(status(502))
    assert not is_transient(status(404)) and not is_transient(status(400))
    assert is_transient(httpx.ConnectError("refused")) and is_transient(httpx.ReadTimeout("slow"))
    assert is_transient(ConnectionResetError()) and is_transient(TransientToolError("x"))
    assert not is_transient(ValueError("bug")) and not is_transient(ToolError("expected"))
    assert is_transient(KeyError("k"), (KeyError,))


def test_concurrency_is_bounded_per_tool():
    running = 0
    peak = 0

    @tool(max_concurrency=2)
    async def slow(i: int) -> int:
        """Slow."""
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return i

    @tool
    async def free(i: int) -> int:
        """Not limited by slow's slots."""
        return i

    ex = Executor(ToolRegistry([slow, free]), max_concurrency=8)
    calls = [ToolCall("slow", {"i": i}) for i in range(6)] + [ToolCall("free", {"i": 9})]
    started = time.perf_counter()
    results = run(ex.call_many(calls))
    assert [r.content for r in results] == ["0", "1", "2", "3", "4", "5", "9"]
    assert peak == 2
    assert time.perf_counter() - started >= 0.15  # 6 calls, 2 at a time, 0.05 s each


def test_latency_percentiles():
    metrics = ToolMetrics()
    for latency in (1.0, 2.0, 3.0, 4.0):
        metrics.record("search", "ok", latency, attempts=1, truncated=False)
    metrics.record("search", "timeout", 10.0, attempts=1, truncated=False)
    metrics.record("search", "invalid", 0.0, attempts=0, truncated=False)
    s = metrics.summary()
    # latencies 1, 2, 3, 4, 10 (the invalid call never ran): median 3;
    # p90 = 4 + 0.6 * (10 - 4) = 7.6 (linear interpolation at rank 0.9 * 4 = 3.6)
    assert s["tools/search/latency_p50"] == pytest.approx(3.0)
    assert s["tools/search/latency_p90"] == pytest.approx(7.6)
    assert s["tools/search/latency_mean"] == pytest.approx(4.0)
    assert s["tools/search/calls"] == 6 and s["tools/search/timeouts"] == 1
    assert s["tools/search/error_rate"] == pytest.approx(1 / 6)


def test_truncation_with_a_tokenizer(tokenizer):
    text = " ".join(f"word{i}" for i in range(5000))
    cut, was_cut = truncate_text(text, 50, tokenizer=tokenizer)
    assert was_cut and cut.startswith("word0 word1") and cut.endswith("word4999")
    body = cut.split("\n[... output truncated")[0]
    assert len(tokenizer.encode(body, add_special_tokens=False)) <= 35  # 70% of 50
    short = "hello there"
    assert truncate_text(short, 50, tokenizer=tokenizer) == (short, False)
