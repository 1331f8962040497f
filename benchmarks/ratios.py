"""Each benchmark's headline ratios, read from the figures of the same run.

`run_all` stores them in every record of benchmarks/RESULTS.json under `ratios`, so a reader
compares contenders without knowing each benchmark's figure layout. A benchmark that computes
its own (`figures["ratios"]`) is taken as it is. Ratios only, never absolute times: these
machines are shared and noisy, and only contenders measured side by side in one run compare.

    python -m benchmarks.ratios      # fill in `ratios` of the records in RESULTS.json that lack it
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.json"


def _rollout_scheduling(f: dict) -> dict:
    out = {}
    for row in f["rows"]:
        out[f"C={row['capacity']}: lock-step / async"] = row["lockstep/async"]
        out[f"C={row['capacity']}: async / generation alone"] = row["async/gen-only"]
    return out


def _engine_overhead_hf(f: dict) -> dict:
    return {f"N={r['concurrency']}: engine / bare generate": r["engine/generate"]
            for r in f["rows"]}


def _engine_overhead_vllm(f: dict) -> dict:
    return {f"N={r['concurrency']}: engine / LLM.generate": r["engine/LLM.generate"]
            for r in f["rows"]}


def _server_engine(f: dict) -> dict:
    out = {}
    for r in f["rows"]:
        out[f"N={r['concurrency']}: server / in-process (wall)"] = r["server/in-process"]
        out[f"N={r['concurrency']}: server / in-process (CPU)"] = r["cpu server/in-process"]
    out[f"N={f['scale']['concurrency']}: one server / two"] = f["scale"]["one/two"]
    return out


def _trl_comparison(f: dict) -> dict:
    return {"TRL GRPOTrainer / turnwise (time per iteration)": f["trl/turnwise"]}


def _prefix_sharing(f: dict) -> dict:
    return {f"{w['rows']}: plain / shared (update time)": w["plain/shared"]
            for w in f["workloads"]}


def _credit_overhead(f: dict) -> dict:
    iteration = f["tiny_iteration_s"]
    return {f"{name} credit / tiny iteration": seconds / iteration
            for name, seconds in f["estimators_on_iteration_s"].items()}


def _train_backends(f: dict) -> dict:
    return {f"{c['backend']} x{c['procs']} procs, {c['threads']} threads / torch 1 thread "
            "(tokens/s)": c["ratio"] for c in f["configs"][1:]}


def _memory(f: dict) -> dict:
    full = {(r["turns"], r["prompt"]): r for r in f["rows"] if r["mode"] == "full_trajectory"}
    return {f"{r['turns']} turns: per_step / full_trajectory (update peak MiB)":
            r["update_peak_mib"] / full[r["turns"], r["prompt"]]["update_peak_mib"]
            for r in f["rows"] if r["mode"] == "per_step" and (r["turns"], r["prompt"]) in full}


FROM_FIGURES: dict[str, Callable[[dict], dict]] = {
    "rollout_scheduling": _rollout_scheduling, "engine_overhead_hf": _engine_overhead_hf,
    "engine_overhead_vllm": _engine_overhead_vllm, "server_engine": _server_engine,
    "trl_comparison": _trl_comparison, "prefix_sharing": _prefix_sharing,
    "credit_overhead": _credit_overhead, "train_backends": _train_backends, "memory": _memory,
}
def headline_ratios(record: dict) -> dict[str, float]:
    """The record's ratios: its benchmark's own, else read from its figures."""
    figures = record.get("figures") or {}
    if "ratios" in figures:
        return dict(figures["ratios"])
    name = record["name"]
    if name in FROM_FIGURES and figures:
        return FROM_FIGURES[name](figures)
    return {}


def main() -> None:
    results = json.loads(RESULTS.read_text())
    filled = []
    for record in results["records"]:
        if "ratios" not in record and "error" not in record and "skipped" not in record:
            record["ratios"] = headline_ratios(record)
            filled.append(record["name"])
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"ratios filled in for {', '.join(filled) or 'no record'}", file=sys.stderr)


if __name__ == "__main__":
    main()
