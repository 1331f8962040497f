"""Which server gets a request: fewest outstanding requests, an episode's turns on one server.

The pool holds no I/O: the server engine tells it what happened (a request started or ended, a
server failed its health check or came back) and asks it where to send the next request. Every
method runs on the engine's HTTP loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field


class NoServerAvailable(RuntimeError):
    """Every server is out of service; the message names each URL and why it was taken out."""


@dataclass(eq=False)
class Server:
    url: str
    outstanding: int = 0  # requests sent and not yet answered
    up: bool = True
    failure: str = ""  # why it was last taken out
    attempts: set[asyncio.Task] = field(default_factory=set)  # in flight, cancelled on take-out


class ServerPool:
    """Servers behind one engine: balancing, session affinity, taking out and readmitting."""

    def __init__(self, urls: list[str], *, max_sessions: int = 100_000) -> None:
        if not urls:
            raise ValueError("engine.urls is empty: give at least one server URL")
        cleaned = [u.rstrip("/") for u in urls]
        if len(set(cleaned)) != len(cleaned):
            raise ValueError(f"engine.urls={urls}: a URL is listed twice")
        self.servers = [Server(u) for u in cleaned]
        self.max_sessions = max_sessions
        # session id -> its server, most recently used last (the oldest are forgotten first).
        self._sessions: OrderedDict[str, Server] = OrderedDict()

    @property
    def up(self) -> list[Server]:
        return [s for s in self.servers if s.up]

    def pick(self, session: str | None = None) -> Server:
        """The server for the next request of `session` (None: no affinity)."""
        if session is not None:
            server = self._sessions.get(session)
            if server is not None and server.up:
                self._sessions.move_to_end(session)
                return server
        candidates = self.up
        if not candidates:
            raise NoServerAvailable(self.describe())
        # Ties go to the server listed first, so a quiet pool fills servers in order.
        server = min(candidates, key=lambda s: s.outstanding)
        if session is not None:
            self._sessions[session] = server
            self._sessions.move_to_end(session)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return server

    def take_out(self, server: Server, why: str) -> bool:
        """Stop sending to `server`; cancel what it has in flight (the engine retries those
        elsewhere). False if it was out already."""
        if not server.up:
            return False
        server.up, server.failure = False, why
        for attempt in list(server.attempts):
            attempt.cancel()
        return True

    def readmit(self, server: Server) -> None:
        """Send to `server` again; sessions that moved away while it was out stay moved."""
        server.up, server.failure = True, ""

    def describe(self) -> str:
        """Each server's URL and state, for error messages."""
        return "; ".join(f"{s.url}: {'up' if s.up else 'out (' + s.failure + ')'}"
                         for s in self.servers)
