"""Search runs, finding vs reading: did RL teach the agent to retrieve the answer, or to read it?

For every finished `search_*` run folder, the policy RL started from (its SFT model) and the
final policy are evaluated greedily on the run's own held-out tasks (`turnwise eval`'s path).
Per episode that answered, search_qa reports whether a retrieved passage held a gold answer
(`evidence_found`); *reading* is the exact-match rate of those episodes. Per recipe: both before
and after RL, mean ± sample std over seeds; per method: after minus search_grpo, seed by seed.
Writes evidence.json and evidence.md into `--out`.

    .venv/bin/python -m benchmarks.learning.evidence --runs benchmarks/learning/runs \\
        --out benchmarks/learning

The start policy is the `sft_policy` of the run's summary.json; runs written before that field
existed give it in the runner's log beside the folder ("sft: cached policy PATH"), or share it
with a run of equal model, env and sft settings (SFT with `sft.cache` is keyed on exactly those
and the demonstrations, and does not depend on the RL seed).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .report import format_interval, format_per_seed, format_stats, interval95, stats

KEYS = ("reward", "success", "evidence_found", "success_given_evidence")


def start_policy(folder: Path) -> str | None:
    """The SFT model a run started from, from its summary or the runner's log; None if unknown."""
    summary = json.loads((folder / "summary.json").read_text())
    if summary.get("sft_policy"):
        return summary["sft_policy"]
    log = folder.parent / f"{folder.name}.log"
    if not log.exists():
        return None
    found = re.search(r"^sft: cached policy (\S+)$", log.read_text(), re.MULTILINE)
    return found.group(1) if found else None


def sft_settings(folder: Path) -> str:
    """What keys a run's SFT start: its model, env and sft settings."""
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    return json.dumps([cfg["model"], cfg["env"], cfg["sft"], cfg["train"].get("threads")],
                      sort_keys=True)


def evaluate(folder: Path, policy: str) -> dict[str, float]:
    """Greedy held-out figures of `policy` on `folder`'s evaluation tasks."""
    from turnwise.trainer.evaluate import run_eval
    from turnwise.trainer.recipe import load_recipe

    cfg = load_recipe(str(folder / "config.yaml"), [])
    out = folder / f"evidence-{Path(policy).name}.json"
    report = run_eval(cfg, policy=policy, out=str(out), source=str(folder), echo=lambda _: None)
    return {key: report["metrics"][key]["value"] for key in KEYS if key in report["metrics"]}


def finished_runs(folders: list[Path]) -> Iterator[tuple[Path, dict[str, Any], str]]:
    """(folder, its done.json, the SFT start it came from) for each finished run of `folders`;
    a run whose start is unknown is skipped, saying so."""
    folders = [f for f in folders if (f / "done.json").exists()]
    starts = {sft_settings(f): p for f in folders if (p := start_policy(f))}
    for folder in folders:
        start = start_policy(folder) or starts.get(sft_settings(folder))
        if start is None:
            print(f"{folder.name}: no known start policy; skipped")
            continue
        yield folder, json.loads((folder / "done.json").read_text()), start


def measure(runs: Path) -> list[dict[str, Any]]:
    """One record per finished search run: recipe, seed, figures before and after RL."""
    records, cache = [], {}
    for folder, done, start in finished_runs(sorted(runs.glob("search_*-s*"))):
        key = (start, done["seed"])  # the held-out tasks depend on the seed only
        if key not in cache:
            cache[key] = evaluate(folder, start)
        records.append({"recipe": done["recipe"], "seed": done["seed"], "start": start,
                        "before": cache[key], "after": evaluate(folder, str(folder / "policy"))})
        print(f"{folder.name}: {records[-1]['before']} -> {records[-1]['after']}", flush=True)
    return records


def _mean_std(values: list[float]) -> str:
    return format_stats(stats(values))


def render(records: list[dict[str, Any]], baseline: str = "search_grpo") -> str:
    recipes = list(dict.fromkeys(r["recipe"] for r in records))
    lines = ["# Search: finding vs reading (cpu-tiny, held-out, greedy)", "",
             ("*Found*: share of answered questions whose retrieved passages held a gold answer; "
              "*reading*: exact-match rate of those; *F1*: the learning report's score. Points "
              "(x100), mean ± sample std over seeds; before = the SFT start, after = the final "
              "policy."), "",
             ("| recipe | seeds | found before | found after | reading before | reading after | "
              "F1 before | F1 after |"), "|" + " --- |" * 8]
    for name in recipes:
        mine = [r for r in records if r["recipe"] == name]

        def cell(side: str, key: str) -> str:
            return _mean_std([r[side][key] for r in mine if key in r[side]])  # noqa: B023

        lines.append(f"| {name} | {len(mine)} | {cell('before', 'evidence_found')} | "
                     f"{cell('after', 'evidence_found')} | "
                     f"{cell('before', 'success_given_evidence')} | "
                     f"{cell('after', 'success_given_evidence')} | {cell('before', 'reward')} | "
                     f"{cell('after', 'reward')} |")
    base = {r["seed"]: r for r in records if r["recipe"] == baseline}
    lines += ["", f"| method - {baseline} | figure | mean ± std | 95% interval | per seed |",
              "| --- | --- | --- | --- | --- |"]
    for name in (n for n in recipes if n != baseline):
        paired = [(r, base[r["seed"]]) for r in records if r["recipe"] == name
                  and r["seed"] in base]
        for key, label in (("evidence_found", "found"), ("success_given_evidence", "reading"),
                           ("reward", "F1")):
            diffs = [a["after"][key] - b["after"][key] for a, b in paired
                     if key in a["after"] and key in b["after"]]
            lines.append(f"| {name} | {label} | {_mean_std(diffs)} | "
                         f"{format_interval(interval95(diffs))} | "
                         + format_per_seed(diffs) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=Path(__file__).parent / "runs")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    records = measure(args.runs)
    if not records:
        raise SystemExit(f"--runs {args.runs}: no finished search_* run folders")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evidence.json").write_text(json.dumps(records, indent=2))
    (args.out / "evidence.md").write_text(render(records))
    print(render(records))


if __name__ == "__main__":
    main()
