"""Feedback-turn evidence: UFO against its plain recipe, Critique-GRPO against GRPO, paired by
seed at equal rollouts, on the search and code cpu-tiny presets.

Per family (search: search_grpo, search_ufo, search_critique; code: code_agent, code_ufo,
code_critique) and seed, the plain recipe trains first; its SFT policy (one per family, from
--sft-seed, cached) is where the two feedback recipes start RL too, so the three differ only
in RL. Every final policy, and the SFT policy as the common start, is then evaluated greedily
on the same held-out tasks three ways:

- single: the plain recipe's environment, one answer (search also reports F1);
- try_again: "Let's try again." after a wrong answer, up to 3 answers (feedback/success@1..3);
- critique: one rule critique after a wrong answer, then a refinement (feedback/success@1..2).

Success at the first answer is the same quantity in all three (greedy, same first context).
The report pairs each feedback recipe with the plain recipe seed by seed: single-attempt and
multi-attempt success, mean, std and the 95% Student-t interval of the mean.

    .venv/bin/python -m benchmarks.learning.feedback --families search code --seeds 0 1 2 3 4
    .venv/bin/python -m benchmarks.learning.feedback --report-only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from pathlib import Path

from .report import format_interval, format_per_seed, format_stats, interval95, stats
from .run import run_one

HERE = Path(__file__).resolve().parent
OUT = HERE / "feedback"
FAMILIES = {"search": ("search_grpo", "search_ufo", "search_critique"),
            "code": ("code_agent", "code_ufo", "code_critique")}
METHODS = ("plain", "ufo", "critique")  # the order of each family's recipes
# How every policy is evaluated: the recipe whose environment plays the tasks, and overrides.
EVALS = {"single": (0, []), "try_again": (1, ["env.options.max_attempts=3"]),
         "critique": (2, ["env.options.max_attempts=2"])}
TRAIN = ["eval.tasks=0"]  # held-out evaluation happens here, the same way for every policy


def evaluate(policy: str, recipe: str, overrides: list[str], *, tasks: int,
             task_seed: int) -> dict[str, float]:
    """Greedy held-out metrics of `policy` in `recipe`'s environment."""
    from turnwise.trainer.recipe import load_recipe

    cfg = load_recipe(recipe, ["preset=cpu-tiny", f"model.name={policy}", "model.tiny=null",
                               "log.quiet=true", *overrides])
    return asyncio.run(_evaluate(cfg, policy, tasks, task_seed))


async def _evaluate(cfg, policy: str, n: int, seed: int) -> dict[str, float]:
    from turnwise.envs.base import suite_tool_metrics
    from turnwise.trainer.build import basics, build_run, eval_settings
    from turnwise.trainer.evaluate import evaluate_policy

    base = basics(cfg, policy)
    run = build_run(cfg, base, policy, train=False)
    try:
        tasks = base.suite.tasks(cfg.eval.split, n, seed)
        suite_tool_metrics(base.suite, reset=True)
        _, metrics = await evaluate_policy(run.orchestrator, tasks, settings=eval_settings(cfg),
                                           tag="feedback-eval")
        counters = suite_tool_metrics(base.suite, reset=True)
    finally:
        await run.close()
    keep = {k: v for k, v in metrics.items() if k in ("eval/success", "eval/reward",
                                                       "eval/score", "eval/turns")}
    return {**keep, **{k: v for k, v in counters.items() if k.startswith("feedback/")}}


def evaluate_all(policy: str, family: str, folder: Path, *, tasks: int,
                 task_seed: int) -> dict[str, dict[str, float]]:
    """The three evaluations of `policy`, cached in `folder`/feedback_eval.json."""
    path = folder / "feedback_eval.json"
    if path.exists():
        return json.loads(path.read_text())
    started = time.perf_counter()
    result = {name: evaluate(policy, FAMILIES[family][index], overrides, tasks=tasks,
                             task_seed=task_seed)
              for name, (index, overrides) in EVALS.items()}
    result["seconds"] = time.perf_counter() - started
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return result


def budget(run: Path) -> dict[str, float]:
    """What RL spent: episodes, generated tokens and seconds over its iterations."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]
    train = [r for r in rows if r.get("iteration", 0) >= 1 and "rollout/episodes" in r]
    episodes = [r["rollout/episodes"] for r in train]
    return {"iterations": len(train), "episodes": sum(episodes),
            "generated_tokens": sum(r["rollout/response_tokens"] * n
                                    for r, n in zip(train, episodes)),
            "rl_seconds": sum(r["time/iteration"] for r in train),
            "train_success_last": train[-1]["rollout/success"] if train else None}


def run_family(family: str, seeds: list[int], runs: Path, *, sft_seed: int, tasks: int,
               task_seed: int) -> None:
    """Train and evaluate every recipe of `family` for `seeds` (finished parts are kept)."""
    plain, *methods = FAMILIES[family]
    for seed in seeds:
        record = run_one(plain, seed, runs, TRAIN, sft_seed)
        print(f"{plain} seed {seed}: {record['wall_seconds']:.0f}s", flush=True)
        summary = json.loads((Path(record["run"]) / "summary.json").read_text())
        sft = summary["sft_policy"]
        if sft is None:
            raise SystemExit(f"{plain} seed {seed} kept no SFT policy (sft.cache off?)")
        start = runs / f"{family}-sft{sft_seed}"
        evaluate_all(sft, family, start, tasks=tasks, task_seed=task_seed)
        evaluate_all(str(Path(record["run"]) / "policy"), family, Path(record["run"]),
                     tasks=tasks, task_seed=task_seed)
        for recipe in methods:
            extra = [*TRAIN, f"model.name={sft}", "model.tiny=null", "sft.episodes=0"]
            done = run_one(recipe, seed, runs, extra, sft_seed)
            print(f"{recipe} seed {seed}: {done['wall_seconds']:.0f}s", flush=True)
            evaluate_all(str(Path(done["run"]) / "policy"), family, Path(done["run"]),
                         tasks=tasks, task_seed=task_seed)


# ---------------------------------------------------------------------------------- the report


def measures(result: dict[str, dict[str, float]]) -> dict[str, float | None]:
    """The numbers compared: single-attempt success (and F1), success within k answers."""
    single, again, critique = result["single"], result["try_again"], result["critique"]
    return {"single_success": single["eval/success"], "single_f1": single.get("eval/reward"),
            "try_again@1": again.get("feedback/success@1"),
            "try_again@2": again.get("feedback/success@2"),
            "try_again@3": again.get("feedback/success@3"),
            "attempts_per_solve": again.get("feedback/attempts_per_solve"),
            "critique@1": critique.get("feedback/success@1"),
            "critique@2": critique.get("feedback/success@2")}


def collect(families: list[str], seeds: list[int], runs: Path) -> dict:
    """Per family: the SFT start, per method and seed the measures and budget, and the pairs."""
    report: dict = {}
    for family in families:
        entry: dict = {"methods": {}, "pairs": []}
        starts = sorted(runs.glob(f"{family}-sft*/feedback_eval.json"))
        if starts:
            entry["start"] = measures(json.loads(starts[0].read_text()))
        for method, recipe in zip(METHODS, FAMILIES[family]):
            per_seed = {}
            for seed in seeds:
                folder = runs / f"{recipe}-s{seed}"
                if (folder / "feedback_eval.json").exists():
                    per_seed[seed] = {**measures(json.loads((folder / "feedback_eval.json")
                                                            .read_text())),
                                      "budget": budget(folder)}
            entry["methods"][method] = {"recipe": recipe, "seeds": per_seed}
        plain = entry["methods"]["plain"]["seeds"]
        for method, keys in (("ufo", ("single_success", "try_again@3")),
                             ("critique", ("single_success", "critique@2"))):
            mine = entry["methods"][method]["seeds"]
            paired = sorted(set(mine) & set(plain))
            for key in keys:
                diffs = [mine[s][key] - plain[s][key] for s in paired]
                entry["pairs"].append({"method": entry["methods"][method]["recipe"],
                                       "baseline": entry["methods"]["plain"]["recipe"],
                                       "measure": key, "seeds": paired, "per_seed": diffs,
                                       "diff": stats(diffs), "ci95": interval95(diffs)})
        report[family] = entry
    return report


COLUMNS = ("single_success", "single_f1", "try_again@1", "try_again@2", "try_again@3",
           "attempts_per_solve", "critique@1", "critique@2")


def render(report: dict) -> str:
    lines = ["# Feedback turns: learning evidence (cpu-tiny presets)", "",
             ("Held-out success in points (x100), greedy, the same tasks for every policy; mean "
              "± sample std over seeds. *single*: one answer in the plain recipe's environment "
              "(*F1*: its token F1, search only); *try again @k*: solved within k answers when "
              "a wrong answer gets \"Let's try again.\" (up to 3); *critique @k*: the same with "
              "one rule critique and a refinement (up to 2); *answers / solve*: answers per "
              "solved episode under try again. *SFT start*: the SFT policy all three recipes "
              "of a family start RL from. Every recipe of a family plays the same number of "
              "episodes (iterations x tasks x group size); feedback episodes have more turns."),
             ""]
    head = ("| family | recipe | seeds | single | F1 | try again @1 | @2 | @3 | answers / "
            "solve | critique @1 | @2 | RL episodes | generated tokens | RL s |")
    lines += [head, "|" + " --- |" * 14]
    for family, entry in report.items():
        if "start" in entry:
            start = entry["start"]
            cells = [_points(start[c]) if c != "attempts_per_solve" else _plain(start[c])
                     for c in COLUMNS]
            lines.append(f"| {family} | SFT start | - | " + " | ".join(cells) + " | - | - | - |")
        for method in METHODS:
            data = entry["methods"][method]
            seeds = data["seeds"]
            if not seeds:
                continue
            cells = []
            for column in COLUMNS:
                values = [s[column] for s in seeds.values()]
                cells.append(format_stats(stats(values), 1.0 if column == "attempts_per_solve"
                                          else 100.0))
            spend = [stats([s["budget"][k] for s in seeds.values()])
                     for k in ("episodes", "generated_tokens", "rl_seconds")]
            lines.append(f"| {family} | {data['recipe']} | {len(seeds)} | " + " | ".join(cells)
                         + f" | {spend[0]['mean']:.0f} | {spend[1]['mean']:.0f} | "
                           f"{spend[2]['mean']:.0f} |")
    lines += ["", ("| method | baseline | measure | method - baseline (points) | 95% interval | "
                   "per seed |"), "| --- | --- | --- | --- | --- | --- |"]
    for entry in report.values():
        for pair in entry["pairs"]:
            seeds = format_per_seed(pair["per_seed"])
            lines.append(f"| {pair['method']} | {pair['baseline']} | {pair['measure']} | "
                         f"{format_stats(pair['diff'])} | {format_interval(pair['ci95'])} | "
                         f"{seeds} |")
    return "\n".join(lines) + "\n"


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}"


def _plain(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--runs", type=Path, default=OUT / "runs")
    parser.add_argument("--sft-seed", type=int, default=0)
    parser.add_argument("--tasks", type=int, default=128, help="held-out tasks per evaluation")
    parser.add_argument("--task-seed", type=int, default=1000)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        import torch

        torch.set_num_threads(2)
        for family in args.families:
            run_family(family, args.seeds, args.runs, sft_seed=args.sft_seed, tasks=args.tasks,
                       task_seed=args.task_seed)
    report = collect(args.families, args.seeds, args.runs)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "report.json").write_text(json.dumps(report, indent=2))
    (OUT / "report.md").write_text(render(report))
    print((OUT / "report.md").read_text())


if __name__ == "__main__":
    main()
