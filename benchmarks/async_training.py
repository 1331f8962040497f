"""Asynchronous training against the synchronous loop: wall time of N training iterations.

Contenders, side by side on the same tiny model, engine, tasks and budget (`turnwise train` on a
suite whose tool answers after a wait): the synchronous loop (rollout.max_staleness 0) and
asynchronous training with k = 1, 2, 4 with decoupled-PPO correction, its proximal log-probs
recomputed by the trainer (an extra forward pass) or, at k = 1 and 2, approximated without it
(`train.old_logprobs: loglinear`); and, to separate the costs, k = 1 without any correction and
the synchronous loop with the recompute. Two workloads: tools with heavy-tailed latency
(lognormal, median 50 ms, p99 1 s; episodes of 1..8 turns) and tools that answer at once. For
each: seconds per iteration (median over repeats, contenders interleaved), the speed-up over
the synchronous loop, and where the time went: the share of wall time the engine had no
request in flight and the share the trainer waited for groups. Targets: async >= 2x faster with
the heavy-tailed tools at k >= 2, and never slower without tools.

A second table measures how well an update overlaps generation on this machine when it runs
on a thread of the trainer's process (what turnwise does) or in a process of its own: the
engine's tokens/s and the update's steps/s while both run, each as a share of running alone.

    .venv/bin/python -m benchmarks.async_training [--iterations 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import torch
from turnwise.envs.base import register_suite
from turnwise.trainer.loop import train
from turnwise.trainer.recipe import load_recipe

from benchmarks.common import add_output_args, write_json
from benchmarks.overlap import overlap_table
from benchmarks.rollout_scheduling import LatencySuite

# (name, k, train.old_logprobs): the synchronous loop; async with decoupled PPO, the proximal
# log-probs recomputed (an extra forward pass over the batch) or log-linear (no pass); async
# without correction (the engine's log-probs as the old ones); sync paying the recompute.
CONTENDERS = (("sync", 0, "rollout"), ("k=1", 1, "recompute"), ("k=2", 2, "recompute"),
              ("k=4", 4, "recompute"), ("k=1 loglinear", 1, "loglinear"),
              ("k=2 loglinear", 2, "loglinear"), ("k=1 plain", 1, "rollout"),
              ("sync+recompute", 0, "recompute"))


@register_suite("bench_latency")
def _latency_suite(seed: int = 0, latency: bool = True) -> LatencySuite:
    return LatencySuite(seed, latency)


def run(k: int, *, latency: bool, args, proximal: str) -> dict[str, float]:
    """One training run; its seconds per iteration and idle shares (after the first step)."""
    overrides = [
        "env.name=bench_latency", f"env.options={{latency: {str(latency).lower()}}}",
        "model.name=tiny:household", "model.tiny=null", "sft.episodes=0", "eval.tasks=0",
        "rollout.mode=per_step", f"rollout.max_turns={8}", "rollout.max_tokens_per_turn=16",
        f"rollout.tasks_per_iteration={args.tasks}", f"rollout.group_size={args.group}",
        "rollout.max_concurrency=64", f"train.iterations={args.iterations}",
        f"train.threads={args.threads}", "log.quiet=true", "log.tensorboard=false",
        "log.save_trajectories=0", "log.plot_every=0", f"rollout.max_staleness={k}",
    ]
    if proximal != "rollout":
        overrides += [f"train.old_logprobs={proximal}", "loss.is_correction={mode: mask}"]
    with tempfile.TemporaryDirectory() as folder:
        cfg = load_recipe("household_grpo", overrides + [f"log.dir={folder}", "log.run_name=b"])
        history = train(cfg, echo=lambda *a, **kw: None).history
    steady = history[1:] or history  # the first step also fills the pipeline
    return {"s_per_iteration": statistics.mean(r["time/iteration"] for r in steady),
            "engine_idle": statistics.mean(r["time/engine_idle_share"] for r in steady),
            "trainer_idle": statistics.mean(r["time/trainer_idle_share"] for r in steady),
            "staleness": statistics.mean(r["async/staleness_mean"] for r in steady)}


def workload(latency: bool, args) -> list[dict]:
    """Every contender `args.repeats` times, interleaved; medians per contender."""
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in CONTENDERS}
    for _ in range(args.repeats):
        for name, k, proximal in CONTENDERS:
            runs[name].append(run(k, latency=latency, args=args, proximal=proximal))
    rows = []
    for name, _, _ in CONTENDERS:
        row = {key: statistics.median(r[key] for r in runs[name]) for key in runs[name][0]}
        rows.append({"k": name, **row})
    sync = rows[0]["s_per_iteration"]
    for row in rows:
        row["sync/this"] = sync / row["s_per_iteration"]
    return rows


def print_rows(title: str, rows: list[dict]) -> None:
    print(title)
    print(f"{'contender':>15} {'s/iteration':>12} {'sync/this':>10} {'engine idle':>12} "
          f"{'trainer idle':>13} {'staleness':>10}")
    for r in rows:
        print(f"{r['k']:>15} {r['s_per_iteration']:>12.2f} {r['sync/this']:>9.2f}x "
              f"{r['engine_idle']:>11.0%} {r['trainer_idle']:>12.0%} {r['staleness']:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--tasks", type=int, default=8, help="tasks per iteration")
    parser.add_argument("--group", type=int, default=4, help="episodes per task")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--overlap-seconds", type=float, default=8.0)
    add_output_args(parser, repeats=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    tools = workload(True, args)
    print_rows(f"{args.iterations} iterations of {args.tasks} tasks x {args.group} episodes, "
               f"1..8 turns; tools lognormal (median 50 ms, p99 1 s); median of "
               f"{args.repeats}", tools)
    plain = workload(False, args)
    print_rows("the same without tool latency", plain)
    overlap = asyncio.run(overlap_table(seconds=args.overlap_seconds, threads=args.threads))
    ratios = {f"tools: sync / {r['k']}": r["sync/this"] for r in tools[1:]}
    ratios |= {f"no tools: sync / {r['k']}": r["sync/this"] for r in plain[1:]}
    ratios |= {f"overlap ({mode})": row["overlap"] for mode, row in overlap.items()}
    write_json(args.json, "async_training", {"tools": tools, "no_tools": plain,
                                             "overlap": overlap, "ratios": ratios,
                                             "seconds": time.perf_counter() - started})


if __name__ == "__main__":
    main()
