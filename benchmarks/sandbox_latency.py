"""Latency of one Python tool call: a fresh sandbox per call vs a kept session, per isolation.

Run: .venv/bin/python -m benchmarks.sandbox_latency [--repeats 20] [--json PATH]
Prints medians over `--repeats` calls of `print(sum(range(1000)))` and the ratio between them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from turnwise.tools.python import LocalSandbox, SandboxLimits
from turnwise.tools.python.isolation import probe

from benchmarks.common import add_output_args, write_json

CODE = "print(sum(range(1000)))"


async def stateless(kind: str, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        async with LocalSandbox(SandboxLimits(), isolation=kind) as box:
            await box.run(CODE)
        times.append(time.perf_counter() - started)
    return times


async def session(kind: str, repeats: int) -> list[float]:
    times = []
    async with LocalSandbox(SandboxLimits(), isolation=kind) as box:
        await box.run(CODE)  # the start is paid once per episode
        for _ in range(repeats):
            started = time.perf_counter()
            await box.run(CODE)
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output_args(parser, repeats=20)
    args = parser.parse_args()
    repeats = args.repeats
    figures: dict = {"unavailable": {}, "fresh_ms": {}, "session_ms": {}, "ratios": {}}
    for kind in ("bwrap", "unshare"):
        reason = probe(kind, sys.executable)
        if reason:
            print(f"{kind}: unavailable ({reason})")
            figures["unavailable"][kind] = reason
            continue
        fresh = statistics.median(asyncio.run(stateless(kind, repeats)))
        kept = statistics.median(asyncio.run(session(kind, repeats)))
        print(f"{kind:8s} fresh sandbox per call {fresh * 1e3:8.1f} ms | session call "
              f"{kept * 1e3:6.2f} ms | ratio {fresh / kept:7.1f}x  (medians of {repeats})")
        figures["fresh_ms"][kind], figures["session_ms"][kind] = fresh * 1e3, kept * 1e3
        figures["ratios"][f"{kind}: fresh sandbox / session call"] = fresh / kept
    write_json(args.json, "sandbox_latency", figures)


if __name__ == "__main__":
    main()
