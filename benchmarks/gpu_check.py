"""The GPU path, measured in one command: real-size models (random weights, bf16) on one GPU.

    python -m benchmarks.gpu_check                  # on a GPU: ~7 min on one H100, no downloads
    python -m benchmarks.gpu_check --dry-run        # the same code, tiny models, CPU, ~1 min

Sections (each under its own time budget; one that fails is reported and the rest still run):
- generation: the `hf` engine's tokens/s at 16, 64, 256 concurrent requests, and its time
  against one batched `model.generate` of the same prompts and tokens (Qwen2.5-1.5B);
- update small / large: the torch backend's update on Qwen2.5-1.5B and Qwen3-4B: tokens/s,
  TFLOP/s and MFU (6 x parameters x tokens / time / the GPU's dense bf16 peak), peak memory;
  padded, with gradient checkpointing, packed (sdpa; flash attention where installed), and
  groups of rows with a shared prefix run per row or once per group;
- iteration: one household_gigpo iteration (gpu preset, hf engine, torch backend, 16 x 8
  episodes of 4 turns x 128 tokens) through trainer.loop, with its time split;
- logprob gap: the engine/trainer gap in bf16 (`train/rollout_logprob_diff`) and what
  `train.old_logprobs: recompute` and `loss.is_correction` do to it;
- deepspeed: ZeRO-2 and ZeRO-3 on one GPU against the torch backend (skipped without
  DeepSpeed).

It prints one table and writes a record named gpu_check (the GPU, the headline figures under
`ratios`, every figure under `figures`) into benchmarks/RESULTS.json. docs/gpu.md explains the
figures and gives the device command.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import threading
import time
import traceback
from pathlib import Path

import torch

from benchmarks.common import machine, quiet
from benchmarks.gpu_common import DRY, Context, SectionSkipped, SectionTimeout, Sizes, time_limit
from benchmarks.gpu_generation import generation
from benchmarks.gpu_loop import iteration, logprob_gap
from benchmarks.gpu_models import REAL, Folders, free_memory, household_tokenizer, peak_bf16
from benchmarks.gpu_record import NAME, earlier_sections, import_record, table, write_record
from benchmarks.gpu_update import LARGE_VARIANTS, deepspeed_vs_torch, small_variants, update

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("generation", "update small", "update large", "iteration", "logprob gap", "deepspeed")


def section_functions(ctx: Context) -> dict:
    """Each section's function of (context, seconds it may use)."""
    small, large = ctx.specs
    micro_small, micro_large = ctx.sizes.micro_tokens
    return {
        "generation": generation,
        "update small": lambda c, b: update(c, small, small_variants(), micro_small, b),
        "update large": lambda c, b: update(c, large, LARGE_VARIANTS, micro_large, b),
        "iteration": iteration,
        "logprob gap": logprob_gap,
        "deepspeed": deepspeed_vs_torch,
    }


def run_section(fn, ctx: Context, budget_s: float, left_s: float) -> dict:
    """Run one section under `min(budget_s, left_s)` seconds; its outcome, never an exception."""
    limit = min(budget_s, left_s)
    if limit < 0.3 * budget_s:
        return {"status": "skipped", "reason": f"out of time ({left_s:.0f} s left of the check)"}
    started = time.perf_counter()
    outcome: dict = {}
    try:
        # The section paces its repeats to 80% of its time; the alarm is the backstop.
        with time_limit(limit):
            result = fn(ctx, 0.8 * limit)
        outcome = {"status": "ok", "rows": result.rows, "figures": result.figures,
                   "ratios": result.ratios}
    except SectionSkipped as exc:
        outcome = {"status": "skipped", "reason": str(exc)}
    except SectionTimeout as exc:
        outcome = {"status": "timed out", "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported in the table; the next section runs
        traceback.print_exc()
        outcome = {"status": "failed", "reason": f"{type(exc).__name__}: {str(exc)[:500]}"}
    finally:
        free_memory()
    outcome["seconds"] = time.perf_counter() - started
    return outcome


class Check:
    """One run of the check: its context, its outcomes so far, and how to report them."""

    def __init__(self, ctx: Context, args: argparse.Namespace, gpu: str | None) -> None:
        self.ctx, self.args, self.gpu = ctx, args, gpu
        self.outcomes: dict[str, dict] = {}
        # With --only, the other sections' figures come from the last record of this GPU.
        self.kept = earlier_sections(args.results, gpu, ctx.dry) if args.only else {}
        self.current: str | None = None  # the section running now
        self.started = time.perf_counter()
        self.reported = threading.Lock()

    def run(self, names: list[str]) -> None:
        """The sections `names`, in order, each under its budget and what is left of the check."""
        functions = section_functions(self.ctx)
        for name in names:
            left = self.ctx.sizes.total_s - (time.perf_counter() - self.started)
            print(f"== {name}", file=sys.stderr, flush=True)
            self.current = name
            outcome = run_section(functions[name], self.ctx, self.ctx.sizes.budgets[name], left)
            self.outcomes[name] = {**outcome, "date": datetime.date.today().isoformat()}
        self.current = None

    def report(self) -> str:
        """Print the table and write the record (once, even when the watchdog calls too)."""
        if not self.reported.acquire(blocking=False):
            return ""
        seconds = time.perf_counter() - self.started
        if self.current is not None and self.current not in self.outcomes:
            self.outcomes[self.current] = {"status": "killed", "reason": (
                f"still running when the check's watchdog stopped it at {seconds:.0f} s")}
        peak = self.ctx.peak
        title = (f"GPU check{' (DRY RUN: tiny models on the CPU, not measurements)' if self.ctx.dry else ''}: "
                 f"{self.gpu or 'no GPU'}; peak bf16 "
                 f"{f'{peak[1]:.0f} TFLOP/s ({peak[0]})' if peak else 'unknown (no MFU)'}; "
                 f"{seconds / 60:.1f} min")
        sections = {name: self.outcomes.get(name) or self.kept[name] for name in SECTIONS
                    if name in self.outcomes or name in self.kept}
        text = table(title, sections)
        print(text, flush=True)
        if self.args.results:
            write_record(Path(self.args.results), self.record(text, seconds, sections))
            print(f"wrote the gpu_check record into {self.args.results}", flush=True)
        return text

    def record(self, text: str, seconds: float, sections: dict[str, dict]) -> dict:
        """The gpu_check record: GPU, peak used, table, headline ratios, every figure."""
        ratios = {k: v for o in sections.values() for k, v in o.get("ratios", {}).items()}
        peak = self.ctx.peak
        return {"name": NAME, "command": "python -m benchmarks.gpu_check"
                + (" --dry-run" if self.ctx.dry else ""),
                "date": datetime.date.today().isoformat(), "seconds": seconds, "gpu": self.gpu,
                "dry_run": self.ctx.dry,
                "peak_bf16": {"entry": peak[0], "tflops": peak[1]} if peak else None,
                "rerun": sorted(self.outcomes) if self.kept else None,
                "table": text, "ratios": ratios,
                "figures": {"benchmark": NAME, "machine": machine(),
                            "sections": {n: {k: v for k, v in o.items() if k != "kept"}
                                         for n, o in sections.items()}}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; --results defaults to benchmarks/RESULTS.json except in a dry run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny models on the CPU: checks that every section runs")
    parser.add_argument("--results", default=None, metavar="PATH",
                        help="benchmark records to write into (default: benchmarks/RESULTS.json "
                             "on a GPU; none in a dry run)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS,
                        help="run these sections only; the record keeps the other sections' "
                             "figures from its last run on the same GPU")
    parser.add_argument("--peak-tflops", type=float,
                        help="the GPU's dense bf16 peak, for a GPU not in the table")
    parser.add_argument("--import-record", metavar="PATH",
                        help="run nothing: copy the gpu_check record of the records at PATH (a "
                             "RESULTS.json brought back from the GPU machine) into --results")
    args = parser.parse_args(argv)
    if args.results is None and not args.dry_run:
        args.results = str(ROOT / "benchmarks" / "RESULTS.json")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the check (or import a record) and leave with 1 if a section failed or timed out."""
    args = parse_args(argv)
    if args.import_record:
        record = import_record(Path(args.import_record), Path(args.results))
        print(f"gpu_check record of {record['date']} ({record['gpu']}) written into "
              f"{args.results}")
        return
    quiet()
    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        raise SystemExit("gpu_check: no GPU here (torch.cuda.is_available() is False); "
                         "use --dry-run to check the code on the CPU")
    gpu = torch.cuda.get_device_name(0) if cuda else None
    peak = ("--peak-tflops", args.peak_tflops) if args.peak_tflops else (
        peak_bf16(gpu) if gpu else None)
    device = "cuda" if cuda else "cpu"
    sizes = DRY if args.dry_run else Sizes()
    tokenizer = household_tokenizer()
    specs = tuple(s.tiny() for s in REAL) if args.dry_run else REAL
    ctx = Context(device=device, dry=args.dry_run, sizes=sizes, tokenizer=tokenizer, specs=specs,
                  folders=Folders(tokenizer, device), peak=peak)
    check = Check(ctx, args, gpu)
    # A section stuck in a library call outlives its alarm: report what there is and leave.
    watchdog = threading.Timer(sizes.total_s + 30, lambda: (check.report(), ctx.folders.remove(),
                                                            os._exit(3)))
    watchdog.daemon = True
    watchdog.start()
    check.run(list(args.only or SECTIONS))
    watchdog.cancel()
    check.report()
    ctx.folders.remove()
    failed = [n for n, o in check.outcomes.items() if o["status"] in ("failed", "timed out")]
    # Leave at once: a section that timed out may have left threads behind.
    sys.stdout.flush()
    os._exit(1 if failed else 0)


if __name__ == "__main__":
    main()
