"""HTTP to inference servers: one aiohttp session on an event loop of its own thread.

Callers on any event loop (the trainer's, each test's `asyncio.run`) or on a plain thread (the
trainer's weight sync) submit coroutines to this loop, so the session and its keep-alive
connections outlive any caller's loop (an aiohttp or httpx session is bound to the loop that
made it, and reusing it from another fails with "Event loop is closed").

Why aiohttp and not httpx: with keep-alive, httpx (0.29 / httpcore 1.0.9) spends CPU that grows
with the square of the pooled connections on every request. `AsyncConnectionPool.
_assign_requests_to_connections` runs whenever a request starts or ends, and for each idle
connection it builds a list over all connections and polls the idle socket for readability
(`has_expired`). Measured here, 10 rounds of 64 concurrent requests to one vLLM server: httpx
with 64 kept-alive connections used 5.5-7.2 s of client CPU (a profile of 5 rounds: 6.7 M
`is_idle` calls), with its default limits (20 kept alive) 1.3 s, with keep-alive off 0.9 s;
aiohttp, whose connector keeps idle connections in a per-host queue, 0.2 s. Where the client
shares cores with the server, that CPU is taken from generation: rounds took 1.3-3.1 s with
httpx keeping 64 connections against 0.7-1.2 s with keep-alive off (the issue saw 5-9 s vs
0.45 s). aiohttp's idle timeout is kept under uvicorn's (5 s), so a request never goes out on a
connection the server is closing.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine
from typing import Any

import aiohttp

# uvicorn, as vLLM starts it, closes connections idle for 5 s (VLLM_HTTP_TIMEOUT_KEEP_ALIVE).
KEEPALIVE_S = 4.0


class ServerDown(Exception):
    """The server could not be reached, dropped the connection, timed out or failed (5xx)."""


class ServerRefused(Exception):
    """The server answered that the request itself is wrong (4xx): retrying cannot help."""


class LoopThread:
    """An event loop on a daemon thread that callers on any loop or thread submit work to."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine) -> Any:
        """Run `coroutine` on this loop and wait for it (from any thread but this loop's)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.call from its own thread would wait for ever")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def run(self, coroutine: Coroutine) -> Any:
        """Run `coroutine` on this loop and await it from the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def close(self) -> None:
        """Stop the loop and its thread."""
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class HttpLoop(LoopThread):
    """A `LoopThread` holding one aiohttp session for every server."""

    def __init__(self, *, connect_timeout: float = 10.0, name: str = "turnwise-http") -> None:
        super().__init__(name)
        self.connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession = self.call(self._open())

    async def _open(self) -> aiohttp.ClientSession:
        # No cap on connections: the orchestrator bounds how many requests are in flight.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
        return aiohttp.ClientSession(connector=connector)

    async def request(self, method: str, url: str, *, body: Any = None,
                      params: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        """The JSON answer to one request (None for an empty body); runs on this loop."""
        limits = aiohttp.ClientTimeout(total=timeout, sock_connect=self.connect_timeout)
        try:
            async with self._session.request(method, url, json=body, params=params,
                                             timeout=limits) as response:
                text = await response.text()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ServerDown(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        if response.status >= 500:
            raise ServerDown(f"{method} {url}: HTTP {response.status}: {text[:300]}")
        if response.status >= 400:
            raise ServerRefused(f"{method} {url}: HTTP {response.status}: {text[:500]}")
        return json.loads(text) if text else None

    def close(self) -> None:
        """Close the session, then stop the loop's thread."""
        if self._thread.is_alive():
            self.call(self._session.close())
        super().close()
