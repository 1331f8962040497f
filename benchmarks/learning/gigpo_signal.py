"""What GiGPO's step level adds to its episode level, measured on the groups a run saved.

For every whole group a `household_gigpo` or `shop_gigpo` run saved (`log.save_trajectories`;
64 keeps a whole household batch), the run's estimator options are applied to the saved turns
twice: with `omega = 0` (the episode advantage A^E alone, which is GRPO's per-episode signal) and
as configured; the difference is omega * A^S. Per run, over its saved groups:

- *grouped*: share of steps whose anchor state recurs in the group (step group of two or more);
- *step signal*: share of steps with a non-zero step advantage;
- *agree*: where both are non-zero, share of steps whose A^S has the sign of A^E;
- *flipped*: share of steps whose total advantage has the opposite sign to A^E, i.e. where GiGPO
  pushes the step the other way from the outcome;
- *step only*: share of steps with A^S != 0 and A^E = 0: a signal GRPO does not give at all;
- *flat groups*: share of saved groups whose episodes all scored alike (A^E = 0: GRPO learns
  nothing from them), and *flat step signal*: share of those groups' steps with A^S != 0.

*Max logged diff*: the largest gap between the recomputed total advantage and the one the
trainer logged for the same step (0 when the analysis reproduces the run's estimator).

Saved groups are not a random sample when fewer than a whole batch are kept: groups whose
rewards differ are saved first, so *step only*, *flat groups* and *flat step signal* are given
(and averaged) only for runs that saved whole batches.

    .venv/bin/python -m benchmarks.learning.gigpo_signal RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ZERO = 1e-6


def group_signal(trajectories: list[dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    """Counts for one saved group (trajectory records of one uid) under GiGPO `options`."""
    from turnwise.credit.gigpo import gigpo_advantages

    owners, anchors, rewards, invalid = [], [], [], []
    for k, traj in enumerate(trajectories):
        for turn in traj["turns"]:
            owners.append(k)
            anchors.append(turn["anchor"])
            rewards.append(turn["reward"])
            invalid.append(turn["invalid"])
    arrays = {"groups": np.zeros(len(owners), dtype=np.int64), "trajectories": np.array(owners),
              "anchors": anchors, "step_rewards": rewards, "invalid": invalid}
    kept = {k: v for k, v in options.items() if k != "omega"}  # the run's credit.options
    omega = options.get("omega", 1.0)
    episode = gigpo_advantages(**arrays, **kept, omega=0.0)
    step = gigpo_advantages(**arrays, **kept, omega=omega) - episode
    logged = [turn.get("advantage") for traj in trajectories for turn in traj["turns"]]
    sizes = Counter(anchors)
    has_step, has_episode = np.abs(step) > ZERO, np.abs(episode) > ZERO
    both = has_step & has_episode
    total = episode + step
    return {"steps": len(owners), "flat": not has_episode.any(),
            "grouped": sum(sizes[a] >= 2 for a in anchors), "step_signal": int(has_step.sum()),
            "both": int(both.sum()), "step_only": int((has_step & ~has_episode).sum()),
            "agree": int((np.sign(step[both]) == np.sign(episode[both])).sum()),
            "flipped": int((has_episode & (np.sign(total) == -np.sign(episode))).sum()),
            # How far the recomputed advantages are from those the trainer logged (None: not saved).
            "logged_diff": (None if None in logged
                            else float(np.abs(total - np.array(logged)).max(initial=0.0)))}


def run_signal(folder: Path) -> dict[str, Any]:
    """Shares over every saved group of one run folder."""
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    if cfg["credit"]["estimator"] != "gigpo":
        raise SystemExit(f"{folder}: credit.estimator is {cfg['credit']['estimator']!r}, not gigpo")
    counts: dict[str, float] = defaultdict(float)
    flat_steps = flat_signal = 0
    logged_diff = None
    for path in sorted((folder / "trajectories").glob("iter_*.jsonl")):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in path.read_text().splitlines():
            record = json.loads(line)
            groups[record["uid"]].append(record)
        for members in groups.values():
            c = group_signal(members, cfg["credit"].get("options") or {})
            counts["groups"] += 1
            counts["flat"] += c["flat"]
            for key in ("steps", "grouped", "step_signal", "both", "step_only", "agree", "flipped"):
                counts[key] += c[key]
            if c["logged_diff"] is not None:
                logged_diff = max(logged_diff or 0.0, c["logged_diff"])
            if c["flat"]:
                flat_steps += c["steps"]
                flat_signal += c["step_signal"]
    if not counts["groups"]:
        raise SystemExit(f"{folder}: no saved trajectories (log.save_trajectories was 0?)")
    share = lambda a, b: None if a is None or not b else a / b
    rollout = cfg["rollout"]
    if cfg["log"]["save_trajectories"] < rollout["tasks_per_iteration"] * rollout["group_size"]:
        counts["flat"] = flat_signal = counts["step_only"] = None  # informative groups came first
    return {"run": folder.name, "groups": int(counts["groups"]), "steps": int(counts["steps"]),
            "grouped": share(counts["grouped"], counts["steps"]),
            "step_signal": share(counts["step_signal"], counts["steps"]),
            "agree": share(counts["agree"], counts["both"]),
            "flipped": share(counts["flipped"], counts["steps"]),
            "step_only": share(counts["step_only"], counts["steps"]),
            "flat_groups": share(counts["flat"], counts["groups"]),
            "flat_step_signal": share(flat_signal, flat_steps),
            "max_logged_diff": logged_diff}


COLUMNS = ("grouped", "step_signal", "agree", "flipped", "step_only", "flat_groups",
           "flat_step_signal", "max_logged_diff")


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| run | groups | steps | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |",
             "|" + " --- |" * (3 + len(COLUMNS))]
    def cell(v: float | None, column: str) -> str:
        return "n/a" if v is None else f"{v:.1e}" if column == "max_logged_diff" else f"{v:.3f}"

    for r in rows:
        lines.append(f"| {r['run']} | {r['groups']} | {r['steps']} | "
                     + " | ".join(cell(r[c], c) for c in COLUMNS) + " |")
    if len(rows) > 1:
        values = {c: [r[c] for r in rows if r[c] is not None] for c in COLUMNS}
        summary = {c: None if not v else max(v) if c == "max_logged_diff" else statistics.fmean(v)
                   for c, v in values.items()}
        lines.append("| mean (max for the diff) | | | "
                     + " | ".join(cell(summary[c], c) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="also write the table (markdown) and JSON here")
    args = parser.parse_args()
    rows = [run_signal(folder) for folder in args.runs]
    print(render(rows))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gigpo_signal.json").write_text(json.dumps(rows, indent=2))
        (args.out / "gigpo_signal.md").write_text(render(rows))


if __name__ == "__main__":
    main()
