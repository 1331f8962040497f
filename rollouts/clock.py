"""How much of the wall time the engine had work: the generation requests in flight over time.

The orchestrator wraps every `engine.generate` in `generating()`; `idle_seconds()` is the time
so far with no request in flight. Asynchronous training exists to drive the engine's idle share
towards zero, so the loop reports it per step (`perf/engine_idle`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class GenerationClock:
    """Counts requests in flight and accumulates the time none was."""

    def __init__(self, now=time.perf_counter) -> None:
        self._now = now
        self.in_flight = 0
        self._idle = 0.0
        self._idle_since: float | None = now()

    @contextmanager
    def generating(self) -> Iterator[None]:
        """Mark one request in flight for the duration of the block."""
        if self.in_flight == 0 and self._idle_since is not None:
            self._idle += self._now() - self._idle_since
            self._idle_since = None
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle_since = self._now()

    def idle_seconds(self) -> float:
        """Seconds so far (since construction) with no request in flight."""
        ongoing = self._now() - self._idle_since if self._idle_since is not None else 0.0
        return self._idle + ongoing
