"""Task sampling on a mixture whose parts differ in difficulty (issue 33): each sampler against
`uniform` at equal rollouts, paired by seed.

The mixture: the search agent's cpu-tiny preset (recipes/search_grpo.yaml) with questions of 1, 2
and 3 hops (`env.options.hops=[1,2,3]`); the parts are the hop counts. Every run draws from the
same pool of training questions (`task_sampling.pool`), plays 30 iterations of 16 questions x 8
episodes (the same rollouts whatever the sampler) and starts from one SFT model (`sft.seed=0`,
cached), so a sampler and the uniform baseline differ, seed by seed, only in which questions
they trained on. Held-out: `eval.tasks` questions of the valid split, greedy, before and after.

    nice -n 10 .venv/bin/python -m benchmarks.learning.sampling --seeds 0 1 2 3 4
    .venv/bin/python -m benchmarks.learning.sampling --report-only

Writes report.json and report.md into benchmarks/learning/task_sampling/; run folders go to its
runs/ (kept: a rerun skips finished runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .report import format_interval, format_per_seed, format_stats, interval95, stats

HERE = Path(__file__).resolve().parent / "task_sampling"
SAMPLERS = ("uniform", "dump", "difficulty_band", "mopps")
PARTS = ("1-hop", "2-hop", "3-hop")
MIXTURE = ["env.options.hops=[1,2,3]", "eval.every=0"]


def run_one(sampler: str, seed: int, runs: Path, pool: int, eval_tasks: int,
            extra: list[str]) -> dict[str, Any]:
    """Train one (sampler, seed) in its own process; what it cost and where it went."""
    name = f"{sampler}-s{seed}"
    folder = runs / name
    if (folder / "done.json").exists():
        return json.loads((folder / "done.json").read_text())
    command = [sys.executable, "-m", "turnwise.trainer.cli", "train", "search_grpo",
               "preset=cpu-tiny", f"seed={seed}", "sft.seed=0", *MIXTURE,
               f"eval.tasks={eval_tasks}", f"task_sampling.sampler={sampler}",
               f"task_sampling.pool={pool}", f"log.dir={runs}", f"log.run_name={name}",
               "log.quiet=true", "checkpoint.every=0", "resume=auto", *extra]
    started = time.perf_counter()
    out = subprocess.run(command, check=False, capture_output=True, text=True,
                         env={**os.environ, "WANDB_MODE": "disabled"})
    (runs / f"{name}.log").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed (exit {out.returncode}); see {runs / (name + '.log')}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False,
                            capture_output=True, text=True).stdout.strip()
    record = {"sampler": sampler, "seed": seed, "run": str(folder), "commit": commit,
              "wall_seconds": time.perf_counter() - started, "command": " ".join(command[2:])}
    (folder / "done.json").write_text(json.dumps(record, indent=2))
    return record


def read_run(record: dict[str, Any]) -> dict[str, Any]:
    """Held-out figures before and after, and what training spent its rollouts on."""
    folder = Path(record["run"])
    summary = json.loads((folder / "summary.json").read_text())
    steps = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s.get("iteration", 0) >= 1 and "task_sampling/flat_share" in s]

    def held_out(side: str) -> dict[str, float]:
        metrics = summary[side]
        out = {"success": metrics["eval/success"], "f1": metrics["eval/reward"]}
        out.update({p: metrics.get(f"eval/success/{p}") for p in PARTS})
        return out

    def mean(key: str) -> float | None:
        values = [s[key] for s in steps if key in s]
        return statistics.fmean(values) if values else None

    return {"sampler": record["sampler"], "seed": record["seed"],
            "before": held_out("eval_before"), "after": held_out("eval_after"),
            "flat_share": mean("task_sampling/flat_share"),
            "train_success": mean("rollout/success"),
            "share": {p: mean(f"task_sampling/{p}/share") for p in PARTS},
            "last_prob": {p: steps[-1].get(f"task_sampling/{p}/prob") for p in PARTS},
            "iterations": len(steps),
            "rl_seconds": sum(s["time/iteration"] for s in steps),
            "wall_seconds": record["wall_seconds"]}


FIGURES = ("success", *PARTS, "f1")


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per sampler: means and spreads; against uniform: paired differences, seed by seed."""
    out: dict[str, Any] = {"samplers": {}, "paired": {}}
    for sampler in dict.fromkeys(r["sampler"] for r in runs):
        mine = [r for r in runs if r["sampler"] == sampler]
        out["samplers"][sampler] = {
            "seeds": [r["seed"] for r in mine],
            "after": {k: stats([r["after"][k] for r in mine]) for k in FIGURES},
            "before": {k: stats([r["before"][k] for r in mine]) for k in FIGURES},
            "flat_share": stats([r["flat_share"] for r in mine]),
            "share": {p: stats([r["share"][p] for r in mine]) for p in PARTS},
            "rl_seconds": stats([r["rl_seconds"] for r in mine])}
    base = {r["seed"]: r for r in runs if r["sampler"] == "uniform"}
    for sampler in out["samplers"]:
        if sampler == "uniform":
            continue
        pairs = [(r, base[r["seed"]]) for r in runs if r["sampler"] == sampler
                 and r["seed"] in base]
        rows = {}
        for key in (*FIGURES, "flat_share"):
            diffs = [(a["after"][key] - b["after"][key]) if key != "flat_share"
                     else a[key] - b[key] for a, b in pairs
                     if _value(a, key) is not None and _value(b, key) is not None]
            rows[key] = {"diff": stats(diffs), "ci95": interval95(diffs), "per_seed": diffs}
        out["paired"][sampler] = {"seeds": [a["seed"] for a, _ in pairs], **rows}
    return out


def _value(run: dict[str, Any], key: str) -> float | None:
    return run[key] if key == "flat_share" else run["after"][key]


def render(summary: dict[str, Any], pool: int) -> str:
    lines = ["# Task sampling on search hops 1-3 (cpu-tiny, held-out, greedy)", "",
             (f"search_grpo's cpu-tiny preset with 1-, 2- and 3-hop questions; every sampler draws "
              f"from the same pool of {pool} training questions and plays 30 iterations of 16 "
              "questions x 8 episodes from one cached SFT start. Points (x100), mean ± sample "
              "std over seeds. *Success*: exact match; *F1*: the reward. *Flat*: share of the "
              "step's groups whose 8 episodes all scored alike (rollouts that teach nothing), "
              "mean over iterations; *share*: the hop's share of the groups played."), "",
             ("| sampler | seeds | success | 1-hop | 2-hop | 3-hop | F1 | flat | "
              "share 1/2/3-hop | RL s |"), "|" + " --- |" * 10]
    for name, s in summary["samplers"].items():
        share = " / ".join(f"{s['share'][p]['mean'] * 100:.0f}" if s['share'][p]['mean']
                           is not None else "n/a" for p in PARTS)
        lines.append(f"| {name} | {len(s['seeds'])} | "
                     + " | ".join(format_stats(s["after"][k]) for k in FIGURES)
                     + f" | {format_stats(s['flat_share'])} | {share} | "
                     f"{s['rl_seconds']['mean']:.0f} |")
    before = next(iter(summary["samplers"].values()))["before"]
    lines += ["", "Before RL (the shared SFT start): "
              + ", ".join(f"{k} {format_stats(before[k])}" for k in FIGURES), "",
              "| sampler - uniform | figure | mean ± std | 95% interval | per seed |",
              "| --- | --- | --- | --- | --- |"]
    for name, rows in summary["paired"].items():
        for key in (*FIGURES, "flat_share"):
            row = rows[key]
            lines.append(f"| {name} | {key} | {format_stats(row['diff'])} | "
                         f"{format_interval(row['ci95'])} | "
                         + format_per_seed(row["per_seed"]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samplers", nargs="*", default=list(SAMPLERS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--pool", type=int, default=192)
    parser.add_argument("--eval-tasks", type=int, default=192)
    parser.add_argument("--runs", type=Path, default=HERE / "runs")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="an override for every run (repeatable)")
    args = parser.parse_args()
    unknown = sorted(set(args.samplers) - set(SAMPLERS))
    if unknown:
        raise SystemExit(f"--samplers {unknown}: allowed are {list(SAMPLERS)}")
    args.runs.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for seed in args.seeds:  # seed-major: every finished seed is a complete pair
            for sampler in args.samplers:
                record = run_one(sampler, seed, args.runs, args.pool, args.eval_tasks,
                                 args.overrides)
                print(f"{sampler} seed {seed}: {record['wall_seconds']:.0f}s", flush=True)
    runs = [read_run(json.loads(done.read_text())) for seed in args.seeds
            for sampler in args.samplers
            if (done := args.runs / f"{sampler}-s{seed}" / "done.json").exists()]
    if not runs:
        raise SystemExit(f"--runs {args.runs}: no finished runs")
    summary = summarize(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps({"runs": runs, "summary": summary,
                                                      "pool": args.pool}, indent=2))
    (args.out / "report.md").write_text(render(summary, args.pool))
    print(render(summary, args.pool))


if __name__ == "__main__":
    main()
