"""Per-tool counters and latency percentiles, reported as flat `tools/<name>/<metric>` keys."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

LATENCY_WINDOW = 4096  # recent calls kept for percentiles
# Calls to names no tool has are counted under this one name, not one family per misspelling;
# no tool can be called so (tool names are letters, digits, '_' and '-').
UNKNOWN_TOOL = "(unknown)"


@dataclass
class ToolStats:
    calls: int = 0
    ok: int = 0
    errors: int = 0
    timeouts: int = 0
    invalid: int = 0
    retries: int = 0
    truncated: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def record(self, status: str, latency: float, attempts: int, truncated: bool) -> None:
        self.calls += 1
        if status == "ok":
            self.ok += 1
        elif status == "timeout":
            self.timeouts += 1
        elif status == "invalid":
            self.invalid += 1
        else:
            self.errors += 1
        self.retries += max(attempts - 1, 0)
        self.truncated += int(truncated)
        if status != "invalid":  # rejected before running: no latency to speak of
            self.latencies.append(latency)


class ToolMetrics:
    """Statistics of every tool an executor ran."""

    def __init__(self) -> None:
        self.stats: dict[str, ToolStats] = {}

    def record(self, name: str, status: str, latency: float, attempts: int,
               truncated: bool) -> None:
        self.stats.setdefault(name, ToolStats()).record(status, latency, attempts, truncated)

    def summary(self, prefix: str = "tools/") -> dict[str, float]:
        """Counts, error rate and latency p50/p90/p99 (seconds) per tool."""
        out: dict[str, float] = {}
        for name, s in sorted(self.stats.items()):
            key = f"{prefix}{name}/"
            out.update({key + "calls": s.calls, key + "errors": s.errors,
                        key + "timeouts": s.timeouts, key + "invalid": s.invalid,
                        key + "retries": s.retries, key + "truncated": s.truncated,
                        key + "error_rate": (s.errors + s.timeouts) / max(s.calls, 1)})
            if s.latencies:
                lat = np.asarray(s.latencies, dtype=float)
                p50, p90, p99 = np.percentile(lat, [50, 90, 99])
                out.update({key + "latency_p50": float(p50), key + "latency_p90": float(p90),
                            key + "latency_p99": float(p99),
                            key + "latency_mean": float(lat.mean())})
        return out

    def reset(self) -> None:
        self.stats.clear()
