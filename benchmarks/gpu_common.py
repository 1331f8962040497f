"""What the GPU check's sections share: their sizes, their context, what each returns, timing on
the device, and the time limit each section runs under."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every size the check uses; the real run's fit 8 minutes on one H100."""

    concurrency: tuple[int, ...] = (16, 64, 256)  # generation: requests in flight
    gen_tokens: int = 128  # generation: tokens per response (EOS ignored)
    repeats: int = 3  # timed repeats per contender, fewer when a section's time runs short
    update_rows: int = 64  # update: rows of 50-100% of update_length tokens
    update_length: int = 1024
    # train.micro_batch_tokens of the small and the large model: activations of 8192 tokens of
    # Qwen2.5-1.5B (~22 GiB) or 4096 of Qwen3-4B (~16 GiB) beside weights, gradients and AdamW
    # states in bf16 (12 and 32 GiB) and the fp32 vocabulary softmax of the trained tokens.
    micro_tokens: tuple[int, int] = (8192, 4096)
    groups: int = 8  # shared prefixes: groups x group_size rows, prefix + suffix tokens each
    group_size: int = 8
    prefix: int = 768
    suffix: int = 256
    ds_rows: int = 32  # DeepSpeed vs torch, Qwen2.5-1.5B
    iteration: tuple[int, int, int, int] = (16, 8, 4, 128)  # tasks, group, turns, tokens/turn
    gap: tuple[int, int, int, int] = (4, 8, 2, 64)  # the logprob-gap rollout, likewise
    budgets: dict[str, float] = dataclasses.field(default_factory=lambda: {
        "generation": 80, "update small": 60, "update large": 50, "iteration": 110,
        "logprob gap": 60, "deepspeed": 150})
    # The whole check after start-up; a section that no longer fits is skipped, and a watchdog
    # reports and stops the check 30 s past it (8 minutes in all with the start-up).
    total_s: float = 430.0


DRY = Sizes(concurrency=(2, 4, 8), gen_tokens=4, repeats=1, update_rows=4, update_length=64,
            micro_tokens=(4096, 4096), groups=2, group_size=2, prefix=24, suffix=12, ds_rows=4,
            iteration=(1, 2, 2, 8), gap=(1, 2, 2, 8),
            budgets={"generation": 60, "update small": 60, "update large": 60,
                     "iteration": 90, "logprob gap": 90, "deepspeed": 120},
            total_s=600.0)


@dataclasses.dataclass
class Context:
    """What every section may use: built once before the first."""

    device: str
    dry: bool
    sizes: Sizes
    tokenizer: Any
    specs: tuple[Any, Any]  # (small, large) gpu_models.ModelSpec
    folders: Any  # gpu_models.Folders
    peak: tuple[str, float] | None  # (table entry, dense bf16 TFLOP/s)


@dataclasses.dataclass
class Result:
    """A section's printed rows (figure, value), its figures for the record, its headlines."""

    rows: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    ratios: dict[str, float] = dataclasses.field(default_factory=dict)


def sync(device: str) -> None:
    """Wait for the GPU's queued work (nothing to wait for on the CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> float:
    """Wall seconds of `fn()`, the device's queue drained before and after."""
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def interleaved_medians(contenders: dict[str, Callable[[], Any]], device: str, *, repeats: int,
                        budget_s: float) -> dict[str, float]:
    """Median seconds of each contender over up to `repeats` rounds (contenders take turns);
    after the first round, no new round starts once `budget_s` is spent."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    started = time.perf_counter()
    for round_ in range(repeats):
        if round_ and time.perf_counter() - started > budget_s:
            break
        for name, fn in contenders.items():
            times[name].append(timed(fn, device))
    return {name: statistics.median(values) for name, values in times.items()}


class SectionTimeout(Exception):
    """A section ran past its time budget."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise `SectionTimeout` in this (main) thread after `seconds`. Python code stops at once;
    a long library call ends first. Off the main thread there is no limit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum, _frame):
        raise SectionTimeout(f"over its {seconds:.0f} s budget")

    # An alarm already set (pytest-timeout's) is put back afterwards with what is left of it.
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    started = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL,
                             max(outer_left - (time.perf_counter() - started), 0.01))


def mfu(params: int, tokens: float, seconds: float, peak: tuple[str, float] | None
        ) -> tuple[float, float | None]:
    """(achieved TFLOP/s, model FLOPs utilisation) counting 6 x parameters x tokens per update;
    the utilisation is None without a peak to divide by."""
    tflops = 6.0 * params * tokens / seconds / 1e12
    return tflops, (tflops / peak[1] if peak else None)


def gib(n_bytes: float) -> float:
    """Bytes in GiB."""
    return n_bytes / 2**30


def peak_memory_reset(device: str) -> None:
    """Start counting the GPU allocator's peak afresh."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_memory(device: str) -> float | None:
    """Bytes the device's allocator held at most since the last reset (None on the CPU)."""
    return float(torch.cuda.max_memory_allocated()) if device.startswith("cuda") else None


class SectionSkipped(Exception):
    """A section that cannot run here (say why)."""
