"""Paired re-evaluation on one large common held-out set: method vs baseline, less task noise.

The learning report scores each seed on its own 128 held-out tasks (the draw follows the run's
seed), so every figure carries a few points of task-sampling noise: the household SFT start, one
model, scores 36.1 ± 3.9 across the seeds' task sets. Here every finished run's final policy,
and the SFT start it came from, are evaluated greedily on the same `--tasks` tasks of the
recipe's evaluation split, drawn with `--task-seed` (`turnwise eval --task-seed`). Per recipe:
the start's score (one number when all seeds share it), the final scores (mean ± sample std over
seeds) and the gain with its 95% Student-t interval; per (method, baseline) pair of the learning
runner: the seed-by-seed difference, and over all seeds the tasks only one of the two solved.
Writes reeval.json and reeval.md into `--out`.

    .venv/bin/python -m benchmarks.learning.reeval --runs RUNS --out OUT \\
        --recipes household_gigpo household_grpo --tasks 1024
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .evidence import finished_runs
from .report import format_interval, format_per_seed, format_stats, headline, interval95, stats
from .run import RECIPES


def evaluate(folder: Path, policy: str, tasks: int, task_seed: int, out: Path) -> dict[str, Any]:
    """`policy` on `tasks` tasks (seed `task_seed`) of `folder`'s recipe: score and per-task.
    An earlier report at `out` of the same policy and tasks is read instead (rerun after adding
    seeds: only the new runs are evaluated)."""
    from turnwise.trainer.evaluate import run_eval
    from turnwise.trainer.recipe import load_recipe

    cfg = load_recipe(str(folder / "config.yaml"), [])
    report = json.loads(out.read_text()) if out.exists() else {}
    same = (report.get("model") and Path(report["model"]).resolve() == Path(policy).resolve()
            and (report.get("task_seed"), report.get("tasks")) == (task_seed, tasks))
    if not same:
        report = run_eval(cfg, policy=policy, tasks=tasks, task_seed=task_seed, out=str(out),
                          source=str(folder), echo=lambda _: None)
    key = headline(cfg.name)
    return {"score": report["metrics"][key]["value"],
            "per_task": {e["task_id"]: float(e[key]) for e in report["episodes"]}}


def measure(runs: Path, recipes: list[str], tasks: int, task_seed: int) -> list[dict[str, Any]]:
    """One record per finished run of `recipes`: its start and final scores on the common set."""
    folders = sorted(f for f in runs.iterdir() if (f / "done.json").exists()
                     and json.loads((f / "done.json").read_text())["recipe"] in recipes)
    records, cache = [], {}
    for folder, done, start in finished_runs(folders):
        if start not in cache:  # one start, one evaluation: the task set does not depend on the run
            cache[start] = evaluate(folder, start, tasks, task_seed,
                                    folder / f"reeval-start-{tasks}-{task_seed}.json")
        after = evaluate(folder, str(folder / "policy"), tasks, task_seed,
                         folder / f"reeval-{tasks}-{task_seed}.json")
        records.append({"recipe": done["recipe"], "seed": done["seed"], "start": start,
                        "before": cache[start], "after": after})
        print(f"{folder.name}: {cache[start]['score']:.3f} -> {after['score']:.3f}", flush=True)
    return records


def summarize(records: list[dict[str, Any]], tasks: int, task_seed: int) -> dict[str, Any]:
    recipes = {}
    for name in dict.fromkeys(r["recipe"] for r in records):
        mine = [r for r in records if r["recipe"] == name]
        gains = [r["after"]["score"] - r["before"]["score"] for r in mine]
        recipes[name] = {"seeds": [r["seed"] for r in mine],
                         "before": stats([r["before"]["score"] for r in mine]),
                         "starts": len({r["start"] for r in mine}),
                         "after": stats([r["after"]["score"] for r in mine]),
                         "gain": stats(gains), "gain_ci95": interval95(gains)}
    comparisons = []
    for method, baseline in RECIPES.items():
        if baseline not in recipes or method not in recipes:
            continue
        base = {r["seed"]: r for r in records if r["recipe"] == baseline}
        pairs = [(r, base[r["seed"]]) for r in records
                 if r["recipe"] == method and r["seed"] in base]
        diffs = [a["after"]["score"] - b["after"]["score"] for a, b in pairs]
        # Over all seeds' common tasks: how often the method beat the baseline on a task, and
        # how often the other way round (ties carry no information about the difference).
        better = worse = 0
        for a, b in pairs:
            for task, value in a["after"]["per_task"].items():
                better += value > b["after"]["per_task"][task]
                worse += value < b["after"]["per_task"][task]
        comparisons.append({"method": method, "baseline": baseline,
                            "seeds": [a["seed"] for a, _ in pairs], "per_seed": diffs,
                            "after_minus_baseline": stats(diffs), "ci95": interval95(diffs),
                            "tasks_better": better, "tasks_worse": worse})
    return {"tasks": tasks, "task_seed": task_seed, "recipes": recipes,
            "comparisons": comparisons}


def render(summary: dict[str, Any]) -> str:
    lines = [f"# Re-evaluation on {summary['tasks']} common held-out tasks "
             f"(task seed {summary['task_seed']}, greedy)", "",
             ("Points (x100). *Before*: the SFT start (± 0.0 where every seed shares it); "
              "*after*: the final policies, mean ± sample std over seeds; *gain* and *after - "
              "baseline*: mean ± std over seeds with the 95% Student-t interval. *Tasks better / "
              "worse*: summed over seeds, the common tasks the method scored higher / lower on "
              "than its baseline of the same seed."), "",
             "| recipe | seeds | before | after | gain |", "| --- | --- | --- | --- | --- |"]
    for name, r in summary["recipes"].items():
        lines.append(f"| {name} | {len(r['seeds'])} | {format_stats(r['before'])} | "
                     f"{format_stats(r['after'])} | {format_stats(r['gain'])} "
                     f"{format_interval(r['gain_ci95'])} |")
    if summary["comparisons"]:
        lines += ["", ("| method | baseline | after - baseline | 95% interval | tasks better / "
                       "worse | per seed |"), "| --- | --- | --- | --- | --- | --- |"]
        for c in summary["comparisons"]:
            lines.append(f"| {c['method']} | {c['baseline']} | "
                         f"{format_stats(c['after_minus_baseline'])} | "
                         f"{format_interval(c['ci95'])} | {c['tasks_better']} / "
                         f"{c['tasks_worse']} | "
                         + format_per_seed(c["per_seed"]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--tasks", type=int, default=1024)
    parser.add_argument("--task-seed", type=int, default=1000,
                        help="seed of the common task draw (the runs evaluated on seed + 1)")
    args = parser.parse_args()
    unknown = sorted(set(args.recipes) - set(RECIPES))
    if unknown:
        raise SystemExit(f"--recipes {unknown}: allowed are {list(RECIPES)}")
    records = measure(args.runs, args.recipes, args.tasks, args.task_seed)
    if not records:
        raise SystemExit(f"--runs {args.runs}: no finished runs of {args.recipes}")
    summary = summarize(records, args.tasks, args.task_seed)
    args.out.mkdir(parents=True, exist_ok=True)
    # Per-task scores stay in each run folder's reeval-*.json; here only the scores.
    runs = [{**r, "before": r["before"]["score"], "after": r["after"]["score"]} for r in records]
    (args.out / "reeval.json").write_text(json.dumps({**summary, "runs": runs}, indent=2))
    (args.out / "reeval.md").write_text(render(summary))
    print(render(summary))


if __name__ == "__main__":
    main()
