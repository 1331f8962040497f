"""The learning report from finished run folders: report.json, report.md and report.png.

Per run: held-out score before RL (after SFT) and after, the held-out tool calls per episode
before and after, the training curve, wall time and the budget it used (iterations, episodes,
generated tokens, tool calls, solved episodes). Per recipe: mean and sample standard deviation
over seeds. Per (method, baseline) pair: the seed-by-seed difference of the final score (both
start from the same SFT model of that seed), its mean and the 95% Student-t interval of that mean.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import yaml


def headline(recipe: str) -> str:
    """The score a recipe is judged by: its graded reward for search (token F1) and shop
    (WebShop's score, with the cpu-tiny preset's `reward: score`), else success."""
    return "reward" if recipe.startswith(("search_", "shop_")) else "success"


def read_run(record: dict[str, Any]) -> dict[str, Any]:
    """One run's figures from its folder (metrics.jsonl, summary.json, config.yaml)."""
    folder = Path(record["run"])
    rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines() if x]
    summary = json.loads((folder / "summary.json").read_text())
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    train = [r for r in rows if r.get("iteration", 0) >= 1 and "rollout/episodes" in r]
    episodes = [r["rollout/episodes"] for r in train]
    total = lambda key: sum(r.get(key, 0.0) * n for r, n in zip(train, episodes))
    solved = total("rollout/success")
    # Calls the executor ran (ARPO's branches share their prefix turns: counting calls per
    # trajectory would count a shared call once per branch); else the per-episode mean.
    executed = [sum(v for k, v in r.items() if k.startswith("tools/") and k.endswith("/calls"))
                for r in train]
    calls = sum(executed) if any(executed) else total("rollout/tool_calls")
    key = headline(record["recipe"])
    sft = next((r for r in rows if r.get("iteration") == -1), {})
    return {
        **record,
        "metric": f"eval/{key}",
        "before": summary["eval_before"].get(f"eval/{key}"),
        "after": summary["eval_after"].get(f"eval/{key}"),
        "success_before": summary["eval_before"].get("eval/success"),
        "success_after": summary["eval_after"].get("eval/success"),
        "eval_tool_calls_before": summary["eval_before"].get("eval/tool_calls"),
        "eval_tool_calls_after": summary["eval_after"].get("eval/tool_calls"),
        "eval_tasks": cfg["eval"]["tasks"], "eval_split": cfg["eval"]["split"],
        "curve": [r.get(f"rollout/{key}") for r in train],
        # Held-out score by iteration: 0 (after SFT), every eval.every, and the last.
        "eval_curve": sorted({r["iteration"]: r[f"eval/{key}"] for r in rows
                              if r.get("iteration", -1) >= 0 and f"eval/{key}" in r}.items()),
        "budget": {
            "iterations": len(train),
            "episodes": sum(episodes),
            "generated_tokens": total("rollout/response_tokens"),
            "tool_calls": calls,
            "solved_episodes": solved,
            "tool_calls_per_solved": calls / solved if solved else None,
            "rl_seconds": sum(r.get("time/iteration", 0.0) for r in train),
            "sft_rows": sft.get("sft/rows"),
        },
    }


# Two-sided 95% quantiles of Student's t by degrees of freedom (1-10); above 10 the df=10 value,
# a little wide, stands in.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def interval95(values: list[float]) -> tuple[float, float] | None:
    """The 95% Student-t confidence interval of the mean of `values`; None below two values."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    half = _T95[min(len(values) - 1, len(_T95)) - 1] * statistics.stdev(values) / math.sqrt(
        len(values))
    return mean - half, mean + half


def stats(values: list[float]) -> dict[str, float | None]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def summarize(runs: list[dict[str, Any]], pairs: dict[str, str | None]) -> dict[str, Any]:
    """Per-recipe means and spreads, and the paired comparisons."""
    recipes: dict[str, Any] = {}
    for name in dict.fromkeys(r["recipe"] for r in runs):
        mine = [r for r in runs if r["recipe"] == name]
        recipes[name] = {
            "metric": mine[0]["metric"], "seeds": [r["seed"] for r in mine],
            "before": stats([r["before"] for r in mine]),
            "after": stats([r["after"] for r in mine]),
            "gain": stats([r["after"] - r["before"] for r in mine]),
            "gain_ci95": interval95([r["after"] - r["before"] for r in mine]),
            "wall_seconds": stats([r["wall_seconds"] for r in mine]),
            "rl_seconds": stats([r["budget"]["rl_seconds"] for r in mine]),
            "tool_calls_per_solved": stats([r["budget"]["tool_calls_per_solved"] for r in mine]),
            "eval_tool_calls_before": stats([r.get("eval_tool_calls_before") for r in mine]),
            "eval_tool_calls_after": stats([r.get("eval_tool_calls_after") for r in mine]),
            "budget": mine[0]["budget"],
        }
    comparisons = []
    for method, baseline in pairs.items():
        if baseline is None or method not in recipes or baseline not in recipes:
            continue
        by_seed = {r["seed"]: r for r in runs if r["recipe"] == baseline}
        diffs = [r["after"] - by_seed[r["seed"]]["after"] for r in runs
                 if r["recipe"] == method and r["seed"] in by_seed]
        comparisons.append({"method": method, "baseline": baseline,
                            "after_minus_baseline": stats(diffs), "ci95": interval95(diffs),
                            "per_seed": diffs})
    return {"recipes": recipes, "comparisons": comparisons}


def format_stats(s: dict[str, Any], scale: float = 100.0) -> str:
    if s["mean"] is None:
        return "n/a"
    return f"{s['mean'] * scale:.1f} ± {s['std'] * scale:.1f}"


def format_interval(ci: tuple[float, float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]"


def format_per_seed(diffs) -> str:
    """Seed-by-seed differences in points: '+0.7, -0.6, ...'."""
    return ", ".join(f"{d * 100:+.1f}" for d in diffs)


def _calls(recipe: dict[str, Any]) -> str:
    """Held-out tool calls per episode, before -> after; '-' for recipes without tools."""
    before, after = (recipe[k]["mean"] for k in ("eval_tool_calls_before", "eval_tool_calls_after"))
    if not before and not after:
        return "-"
    return " -> ".join("n/a" if v is None else f"{v:.2f}" for v in (before, after))


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# Learning report (cpu-tiny presets)", "",
             ("Held-out score in points (x100), mean ± sample std over seeds. *Before*: right "
              "after the SFT cold start (the RL starting point); *after*: after the last RL "
              "iteration. Methods and their baselines start from the same SFT model per seed. "
              "*RL s*: seconds of the RL iterations; *wall s*: the whole run, SFT included where "
              "it ran (the first run of a family; later ones load it from the cache). *Tool calls "
              "/ solved*: calls executed per solved training episode; *held-out calls*: tool calls "
              "per held-out episode, before -> after. *Gain* and *after - baseline*: mean ± std "
              "over seeds and the 95% Student-t interval of that mean."), "",
             ("| recipe | metric | before | after | gain | seeds | iterations | episodes | "
              "tool calls / solved | held-out calls | RL s | wall s |"), "|" + " --- |" * 12]
    for name, r in report["recipes"].items():
        b = r["budget"]
        calls = r["tool_calls_per_solved"]
        lines.append(
            f"| {name} | {r['metric']} | {format_stats(r['before'])} | "
            f"{format_stats(r['after'])} | {format_stats(r['gain'])} "
            f"{format_interval(r.get('gain_ci95'))} | {len(r['seeds'])} | "
            f"{b['iterations']} | {b['episodes']:.0f} | "
            f"{format_stats(calls, 1.0) if b['tool_calls'] else '-'} | {_calls(r)} | "
            f"{r['rl_seconds']['mean']:.0f} | {r['wall_seconds']['mean']:.0f} |")
    if report["comparisons"]:
        lines += ["", ("| method | baseline | after - baseline (points) | 95% interval | "
                   "per seed |"),
                  "| --- | --- | --- | --- | --- |"]
        for c in report["comparisons"]:
            seeds = format_per_seed(c["per_seed"])
            lines.append(f"| {c['method']} | {c['baseline']} | "
                         f"{format_stats(c['after_minus_baseline'])} | "
                         f"{format_interval(c.get('ci95'))} | {seeds} |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["recipes"])
    fig, (bars, curves, held) = plt.subplots(1, 3, figsize=(18, 4.5))
    x = range(len(names))
    for offset, key, label in ((-0.2, "before", "after SFT"), (0.2, "after", "after RL")):
        means = [(report["recipes"][n][key]["mean"] or 0) * 100 for n in names]
        stds = [(report["recipes"][n][key]["std"] or 0) * 100 for n in names]
        bars.bar([i + offset for i in x], means, 0.4, yerr=stds, capsize=3, label=label)
    bars.set_xticks(list(x), names, rotation=30, ha="right")
    bars.set_ylabel("held-out score (points)")
    bars.set_title("before vs after RL (mean ± std over seeds)")
    bars.legend()
    for name in names:
        mine = [r["curve"] for r in runs if r["recipe"] == name and r["curve"]]
        if not mine:
            continue
        length = min(len(c) for c in mine)
        mean = [statistics.fmean((c[i] or 0) for c in mine) * 100 for i in range(length)]
        curves.plot(range(1, length + 1), mean, marker="o", ms=3, label=name)
    curves.set_xlabel("RL iteration")
    curves.set_ylabel("training rollouts' score (points)")
    curves.set_title("learning curves (mean over seeds)")
    curves.legend(fontsize=7)
    for name in names:
        mine = [dict(r["eval_curve"]) for r in runs if r["recipe"] == name and r["eval_curve"]]
        points = sorted(set.intersection(*(set(c) for c in mine))) if mine else []
        if points:
            held.plot(points, [statistics.fmean(c[i] for c in mine) * 100 for i in points],
                      marker="o", ms=3, label=name)
    held.set_xlabel("RL iteration")
    held.set_ylabel("held-out score (points)")
    held.set_title("held-out evaluations (mean over seeds)")
    held.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(records: list[dict[str, Any]], pairs: dict[str, str | None], out: Path) -> None:
    """Read every run, aggregate, and write report.json, report.md and report.png into `out`."""
    runs = [read_run(r) for r in records]
    report = summarize(runs, pairs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({**report, "runs": runs}, indent=2))
    (out / "report.md").write_text(render_markdown(report))
    plot(report, runs, out / "report.png")
