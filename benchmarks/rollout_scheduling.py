"""Rollout scheduling: the async orchestrator vs verl-agent's lock-step loop vs generation alone.

One command, one table: for each engine capacity C (rows the hf engine decodes at once), the
wall time of one rollout iteration under three schedules on the same tiny model and episodes:

- async:     the orchestrator; each episode runs its own loop, so tool waits overlap other
             episodes' generation. An episode waiting for a tool holds no engine row, so it may
             keep `--oversubscribe` x C episodes in flight to keep the C rows busy.
- lockstep:  verl-agent's loop over waves of C episodes: generate for every live episode of the
             wave, then step every environment, repeat until the wave is done
- gen-only:  async with tools that answer at once: the generation-only lower bound

Tools have heavy-tailed latency (lognormal, median 50 ms, p99 1 s) and episodes vary in length
(1..8 turns); every response is exactly `--tokens` tokens (ignore_eos), so the three schedules
do identical generation work. An iteration has `--waves` x C episodes (groups of `--group`),
so it is equally long at every capacity; a much shorter one is dominated by its slowest
episode's own chain of tool waits, which no schedule can hide. Each number is the median of `--repeats` runs, interleaved so
machine noise hits all schedules alike. Targets: lockstep / async >= 2, async / gen-only <= 1.15.

    .venv/bin/python -m benchmarks.rollout_scheduling [--capacity 16 32 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import time

import torch
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines import SamplingParams, make_engine
from turnwise.envs.base import Observation, Step, Task
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.trainer.config import ModelConfig
from turnwise.trainer.models import load_policy, resolve_model

from benchmarks.common import add_output_args, write_json

MEDIAN_S = 0.05
SIGMA = math.log(1.0 / MEDIAN_S) / 2.3263  # p99 = median * exp(2.3263 sigma) = 1 s


class LatencyEnv:
    """Answers after a lognormal wait; ends after its own number of turns."""

    system_prompt = "You operate a tool. Reply with one call per turn."

    def __init__(self, rng: random.Random, turns: int, latency: bool) -> None:
        self.waits = [rng.lognormvariate(math.log(MEDIAN_S), SIGMA) if latency else 0.0
                      for _ in range(turns)]
        self.turns, self.t = turns, 0

    async def reset(self, task: Task) -> Observation:
        self.t = 0
        return Observation(text=f"Task {task.id}: query the tool {self.turns} times.", anchor=0)

    async def step(self, action_text: str) -> Step:
        await asyncio.sleep(self.waits[self.t])
        self.t += 1
        done = self.t >= self.turns
        return Step(Observation(text=f"Tool result {self.t}: 42 items found.", anchor=self.t),
                    reward=float(done), done=done, info={"success": done})

    async def close(self) -> None:
        pass


class LatencySuite:
    """The k-th environment made gets the k-th draw of length and waits, whatever the schedule."""

    name = "latency"

    def __init__(self, seed: int, latency: bool) -> None:
        self.seed, self.latency, self.made = seed, latency, 0

    def make(self) -> LatencyEnv:
        rng = random.Random(self.seed * 1_000_003 + self.made)
        self.made += 1
        return LatencyEnv(rng, turns=rng.randint(1, 8), latency=self.latency)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        return [Task(id=f"q{i}") for i in range(count)]

    def oracle(self, task):
        raise NotImplementedError

    def corpus(self):
        yield self.system_prompt


def run_once(engine, formatter, settings, *, schedule: str, latency: bool, in_flight: int,
             tasks: int, group: int, seed: int) -> tuple[float, int]:
    suite = LatencySuite(seed, latency)
    orch = Orchestrator(engine, suite, formatter, settings, max_concurrency=in_flight,
                        max_tool_concurrency=in_flight, schedule=schedule, quiet=True)
    started = time.perf_counter()
    trajs = asyncio.run(orch.rollout(suite.tasks("train", tasks, seed), group_size=group,
                                     tag="bench", seed=seed))
    return time.perf_counter() - started, sum(t.num_response_tokens() for t in trajs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", type=int, nargs="+", default=[16, 32, 64],
                        help="engine rows decoded at once (hf max_batch); lock-step wave size")
    parser.add_argument("--oversubscribe", type=float, default=2.0,
                        help="async episodes in flight per engine row")
    parser.add_argument("--waves", type=int, default=8, help="episodes per engine row")
    parser.add_argument("--group", type=int, default=4, help="episodes per task")
    parser.add_argument("--tokens", type=int, default=8, help="tokens per response")
    add_output_args(parser, repeats=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 keeps a shared CPU machine from thrashing)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    path = resolve_model(ModelConfig(name="tiny:household"))
    _, tokenizer = load_policy(path)
    formatter = ChatFormatter(tokenizer)
    settings = EpisodeSettings(
        mode="per_step", history=2, max_turns=8, max_tokens_per_turn=args.tokens,
        sampling=SamplingParams(temperature=1.0, ignore_eos=True))
    print(f"{args.waves} x C episodes of 1..8 turns, {args.tokens} tokens per response, "
          f"tool latency lognormal (median {MEDIAN_S * 1000:.0f} ms, p99 1 s); async keeps "
          f"{args.oversubscribe:g} x C episodes in flight; median of {args.repeats} runs each")
    # rows: mean rows per decode step under async (of C)
    print(f"{'C':>4} {'async s':>8} {'lockstep s':>10} {'gen-only s':>10} "
          f"{'lockstep/async':>14} {'async/gen-only':>14} {'async tok/s':>11} {'rows':>5}")
    results = []
    for capacity in args.capacity:
        common = {"tasks": max(1, args.waves * capacity // args.group), "group": args.group,
                  "seed": args.seed}
        engine = make_engine("hf", path, tokenizer, max_batch=capacity)
        in_flight = max(capacity, int(args.oversubscribe * capacity))
        schedules = {"async": ("async", True, in_flight),
                     "lockstep": ("lockstep", True, capacity),
                     "gen-only": ("async", False, in_flight)}
        run_once(engine, formatter, settings, schedule="async", latency=False, in_flight=8,
                 tasks=2, group=2, seed=args.seed)  # warm-up
        times: dict[str, list[float]] = {name: [] for name in schedules}
        tokens, steps, rows = 0, 0, 0  # decode steps and rows in them while async ran
        for _ in range(args.repeats):
            for name, (schedule, latency, limit) in schedules.items():
                before = (engine.stats["decode_steps"], engine.stats["rows_sum"])
                seconds, tokens = run_once(engine, formatter, settings, schedule=schedule,
                                           latency=latency, in_flight=limit, **common)
                times[name].append(seconds)
                if name == "async":
                    steps += engine.stats["decode_steps"] - before[0]
                    rows += engine.stats["rows_sum"] - before[1]
        med = {name: statistics.median(values) for name, values in times.items()}
        print(f"{capacity:>4} {med['async']:>8.2f} {med['lockstep']:>10.2f} "
              f"{med['gen-only']:>10.2f} {med['lockstep'] / med['async']:>14.2f} "
              f"{med['async'] / med['gen-only']:>14.2f} {tokens / med['async']:>11.0f} "
              f"{rows / max(steps, 1):>5.1f}", flush=True)
        results.append({"capacity": capacity, **med, "lockstep/async": med["lockstep"] / med["async"],
                        "async/gen-only": med["async"] / med["gen-only"],
                        "async_tokens_per_s": tokens / med["async"],
                        "rows_per_step": rows / max(steps, 1)})
        asyncio.run(engine.close())
    write_json(args.json, "rollout_scheduling", {"rows": results, "repeats": args.repeats,
                                                 "tokens_per_response": args.tokens})


if __name__ == "__main__":
    main()
