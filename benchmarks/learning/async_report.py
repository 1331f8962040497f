"""Held-out success against training wall time: an asynchronous recipe and its synchronous
twin, seed by seed, at equal samples (the same steps of the same groups per step).

Reads the run folders the learning runner made (`benchmarks.learning.run --recipes
household_gigpo household_gigpo_async`): each run's evaluations (iteration 0 and every
`eval.every`) and the wall time its steps took up to then (`time/iteration`, evaluation
excluded). The paired comparison on 1024 common tasks is reeval.py's; this adds time.
Writes async.json, async.md and async.png into `--out`.

    .venv/bin/python -m benchmarks.learning.async_report --runs benchmarks/learning/runs \\
        --method household_gigpo_async --baseline household_gigpo --out OUT
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def curve(folder: Path) -> list[dict[str, float]]:
    """(iteration, training seconds so far, held-out success) at each evaluation of a run."""
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    points, seconds = [], 0.0
    for record in sorted((r for r in records if r["iteration"] >= 0), key=lambda r: r["iteration"]):
        seconds += record.get("time/iteration", 0.0)
        if "eval/success" in record:
            points.append({"iteration": record["iteration"], "seconds": seconds,
                           "success": record["eval/success"],
                           "staleness": record.get("async/staleness_mean", 0.0)})
    return points


def summarize(runs: Path, recipe: str, seeds: list[int]) -> dict[str, Any]:
    """Per evaluation point: mean seconds and success over the seeds that finished."""
    curves = {s: curve(runs / f"{recipe}-s{s}") for s in seeds
              if (runs / f"{recipe}-s{s}" / "done.json").exists()}
    if not curves:
        return {"seeds": [], "points": []}
    points = []
    for i, first in enumerate(next(iter(curves.values()))):
        at = [c[i] for c in curves.values() if len(c) > i]
        points.append({"iteration": first["iteration"],
                       "seconds": statistics.mean(p["seconds"] for p in at),
                       "success": statistics.mean(p["success"] for p in at),
                       "staleness": statistics.mean(p["staleness"] for p in at)})
    return {"seeds": sorted(curves), "points": points}


def render(method: str, baseline: str, report: dict[str, Any]) -> str:
    m, b = report[method], report[baseline]
    lines = [f"# {method} against {baseline}: held-out success over training time", "",
             (f"Mean over seeds {m['seeds']} (method) and {b['seeds']} (baseline); each run's "
              "own 128 evaluation tasks; seconds of training steps, evaluations excluded."), "",
             "| iteration | baseline s | baseline success | method s | method success | "
             "method staleness |", "| --- | --- | --- | --- | --- | --- |"]
    for p, q in zip(b["points"], m["points"]):
        lines.append(f"| {p['iteration']} | {p['seconds']:.0f} | {p['success']:.3f} | "
                     f"{q['seconds']:.0f} | {q['success']:.3f} | {q['staleness']:.2f} |")
    if b["points"] and m["points"]:
        ratio = b["points"][-1]["seconds"] / max(m["points"][-1]["seconds"], 1e-9)
        lines += ["", f"Training time, baseline / method: {ratio:.2f}x. The runs did not run side "
                  "by side: on a shared machine whose load changed between them, their times "
                  "compare loosely (benchmarks/async_training.py times the two side by side)."]
    return "\n".join(lines) + "\n"


def plot(method: str, baseline: str, report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in (baseline, method):
        points = report[name]["points"]
        ax.plot([p["seconds"] / 60 for p in points], [p["success"] for p in points], "o-",
                label=name)
    ax.set_xlabel("training minutes (evaluations excluded)")
    ax.set_ylabel("held-out success")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--method", default="household_gigpo_async")
    parser.add_argument("--baseline", default="household_gigpo")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    # Paired: only the seeds both recipes finished, so each mean is over the same seeds.
    paired = [s for s in args.seeds if all((args.runs / f"{name}-s{s}" / "done.json").exists()
                                           for name in (args.method, args.baseline))]
    report = {name: summarize(args.runs, name, paired) for name in (args.method, args.baseline)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "async.json").write_text(json.dumps(report, indent=2))
    (args.out / "async.md").write_text(render(args.method, args.baseline, report))
    plot(args.method, args.baseline, report, args.out / "async.png")
    print(render(args.method, args.baseline, report))


if __name__ == "__main__":
    main()
