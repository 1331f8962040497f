"""1,000 concurrent episodes on the tiny model (real hf engine, short generations) with a
simulated tool latency per step: every episode comes back, and asyncio tasks, file
descriptors, threads and memory are where they were (measured before and after)."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import threading
import time

import pytest
from fakes import CountingEnv, CountingSuite
from fault_ledger import figure, record
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines import make_engine
from turnwise.agent.engines.base import SamplingParams
from turnwise.rollouts.episode import Episode, EpisodeSettings
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.rollouts.trajectory import Trajectory

EPISODES = 1000
KINDS = (Episode, CountingEnv, Trajectory)


def rss_mb() -> float:
    """Resident memory after a collection, with freed heap handed back to the system."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_a_thousand_concurrent_episodes_leak_nothing(tiny_path, tokenizer):
    engine = make_engine("hf", tiny_path, tokenizer, max_batch=256, batch_wait_ms=5.0)
    suite = CountingSuite(delay=0.02)  # each step "calls a tool" that takes 20 ms
    settings = EpisodeSettings(mode="per_step", history=1, max_turns=1, max_tokens_per_turn=2,
                               max_episode_tokens=64, sampling=SamplingParams(temperature=1.0))
    orch = Orchestrator(engine, suite, ChatFormatter(tokenizer), settings,
                        max_concurrency=EPISODES, max_tool_concurrency=EPISODES, quiet=True)
    tasks = suite.tasks("train", EPISODES // 4, 0)

    async def rollouts():
        baseline_tasks = len(asyncio.all_tasks())
        # A first rollout of the same size: the engine's worker, and the allocator's high-water
        # mark for batches of this size, are costs paid once, not leaks.
        await orch.rollout(tasks, group_size=4, tag="warm", seed=0)
        before = (rss_mb(), open_fds(), threading.active_count())
        # Objects of these kinds that earlier tests in this process left are theirs, not ours
        # (held here, so that no new object can take one's id).
        earlier = [o for o in gc.get_objects() if type(o) in KINDS]
        earlier_ids = {id(o) for o in earlier}
        peak_in_flight = 0

        async def watch():
            nonlocal peak_in_flight
            while True:
                peak_in_flight = max(peak_in_flight, len(asyncio.all_tasks()))
                await asyncio.sleep(0.05)

        watcher = asyncio.ensure_future(watch())
        started = time.perf_counter()
        trajs = await orch.rollout(tasks, group_size=4, tag="load", seed=1)
        wall = time.perf_counter() - started
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await asyncio.sleep(0)
        leftover = len(asyncio.all_tasks()) - baseline_tasks
        counts = (len(trajs), sum(t.status == "failed" for t in trajs))
        del trajs
        after = (rss_mb(), open_fds(), threading.active_count())
        alive = sum(type(o) in KINDS and id(o) not in earlier_ids for o in gc.get_objects())
        return counts, wall, before, after, leftover, peak_in_flight, alive

    (count, failed), wall, before, after, leftover, peak, alive = asyncio.run(rollouts())
    asyncio.run(engine.close())
    last = orch.last
    assert count == EPISODES and last["episodes_started"] == EPISODES and failed == 0
    assert last["status_done"] + last["status_truncated"] + last["status_failed"] == EPISODES
    assert last["status_failed"] == 0
    assert peak >= EPISODES  # they really were in flight together
    assert leftover == 0  # no asyncio task outlived its rollout
    assert alive == 0  # no episode, environment or trajectory is kept by anything
    assert after[1] == before[1]  # file descriptors
    assert after[2] == before[2]  # threads
    grown = after[0] - before[0]
    # The allocator's fragmentation moves RSS by tens of MB either way between identical
    # rollouts; the object count above is the exact check, this one catches gross leaks.
    assert grown < 100, f"RSS grew by {grown:.0f} MB over {EPISODES} episodes"
    turns = int(last["turns"])
    figure("load: episodes in flight at once (peak asyncio tasks)", peak)
    figure("load: 1000 episodes wall time", wall, "s")
    figure("load: turns / response tokens", f"{turns} / {int(last['response_tokens'])}")
    figure("load: RSS before -> after", f"{before[0]:.0f} -> {after[0]:.0f} MB ({grown:+.1f} MB)")
    figure("load: fds / threads before -> after",
           f"{before[1]} -> {after[1]} / {before[2]} -> {after[2]}")
    figure("load: engine peak batch rows", engine.stats["peak_rows"])
    figure("load: episodes/envs/trajectories alive after", alive)
    record("load", "1000 concurrent episodes, none lost", EPISODES,
           int(last["status_done"] + last["status_truncated"]))
