"""Learning evidence: every cpu-tiny recipe trained over several seeds, before vs after RL.

Each run is `turnwise train RECIPE preset=cpu-tiny seed=S` in its own process. Its held-out
evaluation before RL (iteration 0, right after the SFT cold start) is the starting point; the
evaluation after the last iteration is the result. Recipes of one family share the SFT model of a
seed (`sft.cache`), so a method and its baseline start from the very same policy: the comparison
is paired, seed by seed. The SFT model itself comes from one seed (`--sft-seed`), so the
spread over seeds is the spread of RL from a common start. The report (report.json, report.md,
report.png) is written by `benchmarks/learning/report.py` from the run folders;
`benchmarks/learning/evidence.py` adds, for the search runs, finding vs reading. Run them from
the repository root.

    .venv/bin/python -m benchmarks.learning.run                 # all recipes, seeds 0 1 2
    .venv/bin/python -m benchmarks.learning.run --recipes household_gigpo household_grpo
    .venv/bin/python -m benchmarks.learning.run --report-only   # rebuild the report
    .venv/bin/python -m benchmarks.learning.run --jobs 2        # two runs at once, 1 thread each
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .report import write_report

HERE = Path(__file__).resolve().parent

# Each recipe with the baseline it is compared against (same rollouts and budget).
RECIPES: dict[str, str | None] = {
    "household_gigpo": "household_grpo",
    "household_gigpo_async": "household_gigpo",
    "household_grpo": None,
    "shop_gigpo": "shop_grpo",
    "shop_grpo": None,
    "alfworld_gigpo": "alfworld_grpo",
    "alfworld_grpo": None,
    "search_grpo": None,
    "search_igpo": "search_grpo",
    "search_arpo": "search_grpo",
    "code_agent": None,
    "calculator_agent": None,  # an openai-client agent program, trained through the gateway
}


def run_one(recipe: str, seed: int, runs: Path, extra: list[str], sft_seed: int) -> dict:
    """Train `recipe` with `seed`; return where its run folder is and what it cost."""
    name = f"{recipe}-s{seed}"
    folder = runs / name
    if (folder / "done.json").exists():
        return json.loads((folder / "done.json").read_text())
    command = [sys.executable, "-m", "turnwise.trainer.cli", "train", recipe, "preset=cpu-tiny",
               f"seed={seed}", f"sft.seed={sft_seed}", f"log.dir={runs}", f"log.run_name={name}",
               "log.quiet=true", "checkpoint.every=0", "resume=auto", *extra]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    (runs / f"{name}.log").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed (exit {out.returncode}); see {runs / (name + '.log')}")
    record = {"recipe": recipe, "seed": seed, "run": str(folder), "wall_seconds": wall,
              "command": " ".join(command[2:])}
    (folder / "done.json").write_text(json.dumps(record, indent=2))
    return record


def family(recipe: str) -> str:
    """Recipes that share an SFT cold start: household_*, alfworld_*, shop_*, search_*."""
    return recipe.split("_")[0]


def schedule(recipes: list[str], seeds: list[int]) -> list[list[tuple[str, int]]]:
    """Waves of (recipe, seed) runs: first one run per family (it trains and caches the SFT
    model), then all the others, which load it; the runs of a wave may go in parallel."""
    runs = [(recipe, seed) for seed in seeds for recipe in recipes]  # seed-major
    leaders = list({family(r): (r, s) for r, s in reversed(runs)}.values())[::-1]
    return [leaders, [run for run in runs if run not in leaders]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=HERE / "runs",
                        help="run folders (kept: a rerun skips finished runs)")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--sft-seed", type=int, default=0,
                        help="one SFT cold start per recipe family, shared by every RL seed")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="an override for every run (repeatable)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at once; with more than one, each trains on one thread "
                             "(two 1-thread runs beat one 2-thread run on 2 cores)")
    args = parser.parse_args()
    unknown = sorted(set(args.recipes) - set(RECIPES))
    if unknown:
        raise SystemExit(f"--recipes {unknown}: allowed are {list(RECIPES)}")
    if args.jobs < 1:
        raise SystemExit(f"--jobs {args.jobs}: must be >= 1")
    args.runs.mkdir(parents=True, exist_ok=True)
    overrides = (["train.threads=1"] if args.jobs > 1 else []) + args.overrides

    def one(run: tuple[str, int]) -> dict:
        record = run_one(*run, args.runs, overrides, args.sft_seed)
        print(f"{run[0]} seed {run[1]}: {record['wall_seconds']:.0f}s", flush=True)
        return record

    if not args.report_only:
        with ThreadPoolExecutor(args.jobs) as pool:
            for wave in schedule(args.recipes, args.seeds):
                list(pool.map(one, wave))
    records = [json.loads(done.read_text()) for seed in args.seeds for recipe in args.recipes
               if (done := args.runs / f"{recipe}-s{seed}" / "done.json").exists()]
    write_report(records, RECIPES, args.out)
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
