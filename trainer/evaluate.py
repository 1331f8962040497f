"""Evaluation: play an environment's tasks with a policy and report what it achieved.

Episodes run through the training path (`rollouts.Orchestrator` driving the inference engine),
greedy or sampled, `samples` per task. The report gives the success rate (Wilson interval), the
task score and episode reward, pass@k, turns and tool calls per episode (bootstrap intervals
over tasks; see `evalstats`), success per task type, and, for environments with an evidence
check (search QA), the share of answered episodes whose tool results held the answer and the
success rate of those (Wilson intervals). `turnwise eval` writes it as JSON and prints it as a
table; the training loop logs the same numbers before and after training.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..envs.base import Task, suite_has_tools, suite_tool_metrics
from ..rollouts.episode import EpisodeSettings
from ..rollouts.metrics import called_tools, evidence_counts, summarize
from ..rollouts.orchestrator import Orchestrator
from ..rollouts.trajectory import Trajectory
from .config import Config
from .evalstats import Estimate, bootstrap_mean, k_values, pass_at_k, wilson


async def evaluate_policy(orchestrator: Orchestrator, tasks: Sequence[Task], *,
                          settings: EpisodeSettings, tag: str, samples: int = 1,
                          seed: int | None = None) -> tuple[list[Trajectory], dict[str, float]]:
    """Play `samples` episodes of every task; return the trajectories and flat `eval/` metrics."""
    trajs = await orchestrator.rollout(tasks, group_size=samples, tag=tag, seed=seed, branch=False,
                                       settings=settings)
    tools = suite_has_tools(orchestrator.suite)
    return trajs, flat_metrics(build_report(trajs, samples, tools=tools), trajs, tools=tools)


@dataclass(frozen=True)
class Evaluation:
    """The held-out tasks a training run evaluates on, and how (empty: no evaluation)."""

    tasks: list[Task]
    settings: EpisodeSettings

    async def run(self, orchestrator: Orchestrator, tag: str) -> dict[str, float]:
        """Play every task once; the flat `eval/` metrics (nothing without tasks). Its tool
        calls stay out of the training steps' `tools/...` counters."""
        if not self.tasks:
            return {}
        _trajs, metrics = await evaluate_policy(orchestrator, self.tasks, settings=self.settings,
                                                tag=tag)
        suite_tool_metrics(orchestrator.suite, reset=True)
        return metrics


def build_report(trajs: Sequence[Trajectory], samples: int, *,
                 tools: bool = True) -> dict[str, Any]:
    """Estimates with intervals, per task type, and one record per episode; tool calls only
    where the suite has `tools` or an episode called one."""
    by_task: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajs:
        by_task[t.uid].append(t)
    groups = list(by_task.values())

    def per_task(value: Callable[[Trajectory], float]) -> list[list[float]]:
        return [[value(t) for t in g] for g in groups]

    metrics: dict[str, Estimate] = {
        "success": wilson(sum(t.success for t in trajs), len(trajs)),
        "score": bootstrap_mean(per_task(episode_score)),
        "reward": bootstrap_mean(per_task(lambda t: t.outcome_reward)),
        "turns": bootstrap_mean(per_task(lambda t: len(t.turns))),
    }
    if tools or called_tools(trajs):
        metrics["tool_calls"] = bootstrap_mean(
            per_task(lambda t: sum(len(x.tool_calls) for x in t.turns)))
    evidence = evidence_counts(trajs)  # search: found vs read
    if evidence is not None:
        checked, found, solved = evidence
        metrics["evidence_found"] = wilson(found, checked)
        if found:
            metrics["success_given_evidence"] = wilson(solved, found)
    for k in k_values(samples):
        metrics[f"pass@{k}"] = bootstrap_mean(
            [[pass_at_k(len(g), sum(t.success for t in g), k)] for g in groups if len(g) >= k])
    by_kind: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajs:
        by_kind[t.task_kind].append(t)
    kinds = {kind: {"episodes": len(group),
                    "success": wilson(sum(t.success for t in group), len(group)).as_dict(),
                    "score": sum(episode_score(t) for t in group) / len(group)}
             for kind, group in sorted(by_kind.items())}
    episodes = [{"task_id": t.task_id, "task_type": t.task_kind, "uid": t.uid,
                 "success": t.success, "score": episode_score(t), "reward": t.outcome_reward,
                 "turns": len(t.turns), "tool_calls": sum(len(x.tool_calls) for x in t.turns),
                 "status": t.status} for t in trajs]
    return {"episodes_total": len(trajs), "tasks": len(groups), "samples": samples,
            "metrics": {name: est.as_dict() for name, est in metrics.items()},
            "per_task_type": kinds, "episodes": episodes}


def episode_score(traj: Trajectory) -> float:
    """The environment's own task score when it reports one (WebShop's), else the episode reward."""
    return float(traj.info.get("score", traj.outcome_reward))


def flat_metrics(report: dict[str, Any], trajs: Sequence[Trajectory],
                 prefix: str = "eval/", *, tools: bool = True) -> dict[str, float]:
    """`summarize`'s numbers plus each estimate and its interval, as flat keys for logging."""
    out = summarize(trajs, prefix=prefix, tools=tools)
    for name, est in report["metrics"].items():
        out[f"{prefix}{name}"] = est["value"]
        out[f"{prefix}{name}_low"], out[f"{prefix}{name}_high"] = est["low"], est["high"]
    return out


def format_table(report: dict[str, Any], title: str) -> str:
    """The report as an aligned text table."""
    rows = [("metric", "value", "95% interval", "method")]
    for name, est in report["metrics"].items():
        rows.append((name, _num(est["value"]), f"[{_num(est['low'])}, {_num(est['high'])}]",
                     "Wilson (episodes)" if est["method"] == "wilson" else "bootstrap (tasks)"))
    rows.append(("", "", "", ""))
    rows.append(("task type", "success", "95% interval", "episodes"))
    for kind, entry in report["per_task_type"].items():
        s = entry["success"]
        rows.append((kind, _num(s["value"]), f"[{_num(s['low'])}, {_num(s['high'])}]",
                     str(entry["episodes"])))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [title] + ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                       for row in rows]
    return "\n".join(lines)


def _num(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


# ------------------------------------------------------------------------------ the command


def resolve_source(source: str, overrides: list[str], policy: str | None = None
                   ) -> tuple[Config, str | None]:
    """The config of a recipe or of a run folder, and the model folder to evaluate: `policy`
    when given, else the run's final policy (None for a recipe: its own model)."""
    from .recipe import RecipeError, bundled_recipes, load_recipe, recipe_path

    if policy is not None and not (Path(policy) / "config.json").is_file():
        raise RecipeError(f"eval --policy={policy!r}: not a model folder (no config.json)")
    folder = Path(source)
    if not folder.exists():
        try:
            recipe_path(source)
        except RecipeError:
            raise RecipeError(f"{source}: no run folder, recipe file or bundled recipe of that "
                              f"name; `turnwise eval` takes a run folder (runs/<name>, holding "
                              f"config.yaml and policy/) or a recipe; bundled recipes are "
                              f"{bundled_recipes()}") from None
    if folder.is_dir():
        if not (folder / "config.yaml").is_file():
            raise RecipeError(f"{source}: a folder given to `turnwise eval` must be a run folder "
                              "with config.yaml (and the final policy in policy/)")
        final = folder / "policy"
        if policy is None and not (final / "config.json").is_file():
            raise RecipeError(f"{source}: no final policy in {final} (did the run finish?)")
        return load_recipe(str(folder / "config.yaml"), overrides), policy or str(final)
    return load_recipe(source, overrides), policy


def run_eval(cfg: Config, *, policy: str | None, split: str | None = None,
             tasks: int | None = None, samples: int = 1, sampled: bool = False,
             out: str | None = None, source: str = "", echo: Callable[[str], None] = print,
             task_seed: int | None = None) -> dict[str, Any]:
    """Evaluate the recipe's model (or a run's `policy`) and write the JSON report.

    The tasks are those the training loop evaluates (drawn with `eval.task_seed`, by default
    the run's seed + 1) unless `task_seed` draws others: one `task_seed` gives runs of different
    seeds a common task set.
    """
    return asyncio.run(_run_eval(cfg, policy, split or cfg.eval.split,
                                 cfg.eval.tasks if tasks is None else tasks, samples, sampled,
                                 out, source, echo,
                                 cfg.eval.seed_for(cfg.seed) if task_seed is None else task_seed))


async def _run_eval(cfg: Config, policy: str | None, split: str, n_tasks: int, samples: int,
                    sampled: bool, out: str | None, source: str, echo,
                    task_seed: int) -> dict[str, Any]:
    from .build import basics, build_run, eval_settings
    from .models import resolve_model
    from .recipe import RecipeError

    greedy = cfg.eval.greedy and not sampled
    if n_tasks < 1:
        raise RecipeError(f"eval --tasks={n_tasks}: must be >= 1")
    if samples < 1 or (greedy and samples > 1):
        raise RecipeError(f"eval --samples={samples}: must be >= 1, and 1 when greedy "
                          "(greedy samples are identical; add --sampled for pass@k)")
    path = policy or resolve_model(cfg.model)
    base = basics(cfg, path)
    try:
        eval_tasks = base.suite.tasks(split, n_tasks, task_seed)
    except ValueError as exc:
        raise RecipeError(f"eval --split={split!r}: {exc}") from None
    run = build_run(cfg, base, path, train=False)
    try:
        trajs, _ = await evaluate_policy(run.orchestrator, eval_tasks,
                                         settings=eval_settings(cfg, sampled=sampled), tag="eval",
                                         samples=samples, seed=None if greedy else cfg.seed)
    finally:
        await run.close()
    r = cfg.rollout
    report = {"source": source, "model": path, "env": cfg.env.name, "split": split,
              "sampling": {"greedy": greedy, **({} if greedy else {
                  "temperature": r.temperature, "top_p": r.top_p, "top_k": r.top_k})},
              "seed": cfg.seed, "task_seed": task_seed,
              **build_report(trajs, samples, tools=suite_has_tools(base.suite))}
    target = Path(out) if out else _default_out(source, policy, cfg, split)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2, default=str))
    mode = "greedy" if greedy else f"sampled (temperature {r.temperature})"
    echo(format_table(report, f"turnwise eval {source}, policy {policy or cfg.model.name}: "
                              f"{cfg.env.name}/{split}, {n_tasks} tasks x {samples} samples, "
                              f"{mode}"))
    echo(f"report: {target}")
    return report


def _default_out(source: str, policy: str | None, cfg: Config, split: str) -> Path:
    folder = Path(source)
    if folder.is_dir():  # a run: its final policy, or another model named by --policy
        final = policy is None or Path(policy).resolve() == (folder / "policy").resolve()
        return folder / (f"eval-{split}.json" if final else f"eval-{split}-{Path(policy).name}.json")
    return Path(cfg.log.dir) / f"{cfg.name}-eval-{split}.json"
