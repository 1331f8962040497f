"""Run every performance benchmark once, each in its own process, and write benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks.run_all [--quick] [--only NAME ...] [--out benchmarks/RESULTS.md]
    make bench  [ARGS=--quick]

Every record of a run is kept beside the report (benchmarks/RESULTS.json): `--only NAME` reruns
those benchmarks and replaces just their records, marked with the date of the rerun.

Each benchmark prints its own table (kept verbatim in RESULTS.md, with the command that made it)
and writes its figures as JSON, from which the summary of ratios and the scaling note are filled
in. The vLLM engine and server engine benchmarks run in .venv-vllm when it exists
(`make vllm-venv`). Full run: about 25 minutes on 2 cores; `--quick` runs toy sizes (a few
minutes) to check that all run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import machine
from benchmarks.ratios import headline_ratios
from benchmarks.results import write_results

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
# Library log lines that would bury the tables.
NOISE = re.compile(r"^(\([\w-]+ pid=\d+\)|INFO|WARNING|DEBUG|\[W|\[\d{4}-|Loading|Triton|\s*warnings\.warn)")


@dataclass(frozen=True)
class Bench:
    name: str
    module: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    vllm: bool = False  # runs in .venv-vllm


BENCHES = (
    Bench("rollout_scheduling", "rollout_scheduling",
          ("--capacity", "16", "64", "--waves", "8", "--repeats", "2"),
          ("--capacity", "8", "--waves", "2", "--repeats", "1")),
    Bench("engine_overhead_hf", "engine_overhead", ("--concurrency", "16", "64", "--repeats", "15"),
          ("--concurrency", "8", "--tokens", "8", "--repeats", "1")),
    Bench("engine_overhead_vllm", "engine_overhead",
          ("--engine", "vllm", "--concurrency", "16", "64", "--repeats", "15"),
          ("--engine", "vllm", "--concurrency", "8", "--tokens", "8", "--repeats", "1"), vllm=True),
    Bench("server_engine", "server_engine", ("--concurrency", "16", "64", "--repeats", "15"),
          ("--concurrency", "8", "--tokens", "8", "--repeats", "1", "--sync-hidden", "128",
           "--sync-layers", "2"), vllm=True),
    Bench("trl_comparison", "trl_comparison", ("--rounds", "3", "--steps", "3"),
          ("--rounds", "1", "--steps", "1", "--prompts", "2", "--group", "4", "--tokens", "8")),
    Bench("prefix_sharing", "prefix_sharing", ("--tasks", "4", "--repeats", "3"),
          ("--tasks", "1", "--repeats", "1")),
    Bench("credit_overhead", "credit_overhead", ("--repeats", "3", "--iterations", "2", "--tasks", "2"),
          ("--groups", "16", "--repeats", "1", "--iterations", "1", "--tasks", "1")),
    Bench("train_backends", "train_backends", ("--repeats", "3"),
          ("--repeats", "1", "--rows", "4", "--length", "64", "--hidden", "64", "--layers", "2")),
    Bench("memory", "memory", (), ("--turns", "1", "4", "--prompts", "512")),
    Bench("report_overhead", "report_overhead", ("--repeats", "3", "--tasks", "2"),
          ("--repeats", "1", "--tasks", "1", "--group", "2", "--save", "2")),
    Bench("sandbox_latency", "sandbox_latency", ("--repeats", "20"), ("--repeats", "3")),
    Bench("async_training", "async_training", ("--iterations", "6", "--repeats", "2"),
          ("--iterations", "2", "--repeats", "1", "--tasks", "2", "--group", "2",
           "--overlap-seconds", "1")),
    Bench("gateway_overhead", "gateway_overhead", ("--conversations", "8", "--repeats", "2"),
          ("--conversations", "2", "--turns", "2", "--repeats", "1", "--concurrency", "1",
           "--tokens", "4")),
)
WITH_JSON = {"rollout_scheduling", "engine_overhead_hf", "engine_overhead_vllm", "server_engine",
             "trl_comparison", "prefix_sharing", "credit_overhead", "train_backends", "memory",
             "gateway_overhead", "async_training", "report_overhead", "sandbox_latency"}


def run_one(bench: Bench, *, quick: bool, folder: Path) -> dict:
    """Run `bench` in a fresh process; its command, wall time, table, figures (or why not)."""
    python = VLLM_PYTHON if bench.vllm else Path(sys.executable)
    args = list(bench.quick if quick else bench.full)
    out = folder / f"{bench.name}.json"
    if bench.name in WITH_JSON:
        args += ["--json", str(out)]
    shown = f"{python.relative_to(ROOT) if python.is_relative_to(ROOT) else 'python'} -m " \
            f"benchmarks.{bench.module} " + " ".join(a for a in args if not a.startswith(str(folder)))
    shown = shown.replace(" --json", "").strip()
    record = {"name": bench.name, "command": shown, "machine": machine()}
    if bench.vllm and not python.exists():
        return {**record, "skipped": "no .venv-vllm here (`make vllm-venv` builds it)"}
    print(f"== {bench.name}: {shown}", flush=True)
    started = time.perf_counter()
    done = subprocess.run([str(python), "-m", f"benchmarks.{bench.module}", *args], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    record["seconds"] = time.perf_counter() - started
    table = "\n".join(line for line in done.stdout.splitlines()
                      if line.strip() and not NOISE.match(line))
    print(table, flush=True)
    record["table"] = table
    if done.returncode != 0:
        record["error"] = done.stderr[-3000:]
        print(f"!! {bench.name} failed (exit {done.returncode}):\n{record['error']}", flush=True)
    else:
        if out.exists():
            record["figures"] = json.loads(out.read_text())
        record["ratios"] = headline_ratios(record)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes: checks, not figures")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        records = [run_one(b, quick=args.quick, folder=Path(folder))
                   for b in BENCHES if not args.only or b.name in args.only]
    total = elapsed = time.perf_counter() - started
    command = "python -m benchmarks.run_all" + (" --quick" if args.quick else "")
    out = Path(args.out)
    saved = out.with_suffix(".json")  # every record of the last full run, for `--only` reruns
    if args.only and not args.quick and saved.exists():
        last = json.loads(saved.read_text())
        rerun = {r["name"]: {**r, "rerun": datetime.date.today().isoformat()} for r in records}
        kept = {r["name"] for r in last["records"]}
        records = [rerun.get(r["name"], r) for r in last["records"]]
        records += [r for name, r in rerun.items() if name not in kept]
        command, total, date = last["command"], last["total_s"], last["date"]
        # the full run's machine (a file from before it was kept: this one); a rerun names its
        # own where it differs
        notes = last.get("machine") or machine()
    else:
        date, notes = datetime.date.today().isoformat(), machine()
        if args.only:
            command += f" --only {' '.join(args.only)}"
    if not args.quick:
        saved.write_text(json.dumps({"command": command, "total_s": total, "date": date,
                                     "machine": notes, "records": records}, indent=1) + "\n")
    write_results(out, records, notes, command=command, total_s=total, quick=args.quick,
                  date=date)
    print(f"wrote {args.out} after {elapsed / 60:.1f} min")
    if any("error" in r for r in records):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
