"""ARPO's entropy-based adaptive rollout (Dong et al. 2025; reference: dongguanting/ARPO).

Of the M samples a task gets, N start as ordinary episodes. Every response's uncertainty is
measured (`rollouts.entropy`: first k tokens, top logprobs, over ln |V|). When a tool result
arrives and the episode goes on, it forks `beam - 1` times, each with probability
clip(alpha + beta * dH, 0, 1), where dH is the entropy of the response that called the tool
minus that of the trajectory's first response, until the task has M trajectories. A fork
shares its parent's turns (the same `Turn` objects; nothing is generated again) and records
`parent_id` and `branch_turn`. When every trajectory of a task has finished short of M, fresh
episodes start one at a time, as the reference does.

As in the reference, the branching decision uses the entropy of the response that ended in the
tool call (it is known when the result arrives), so a branch never waits for a generation.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..envs.base import Task
from .episode import Act, Episode, EpisodeSettings
from .trajectory import Trajectory

if TYPE_CHECKING:
    from .orchestrator import Orchestrator, RunContext


@dataclass(frozen=True)
class ArpoSettings:
    """Reference defaults: N=8 of M=16 initial samples, k=20 tokens, top-10, beam 2."""

    initial: int = 8  # N: episodes each task starts with (M is the rollout's group_size)
    beam: int = 2  # a branching episode spawns beam - 1 copies
    alpha: float = 0.5  # base branch probability
    beta: float = 0.2  # weight of the entropy change
    entropy_tokens: int = 20  # k
    top_logprobs: int = 10

    def __post_init__(self) -> None:
        for key in ("initial", "beam", "entropy_tokens", "top_logprobs"):
            if getattr(self, key) < 1:
                raise ValueError(f"arpo.{key}={getattr(self, key)}: must be >= 1")


def branch_probability(delta_entropy: float, *, alpha: float, beta: float) -> float:
    """clip(alpha + beta * dH, 0, 1)."""
    return min(1.0, max(0.0, alpha + beta * delta_entropy))


async def arpo_rollout(
    orchestrator: Orchestrator,
    ctx: RunContext,
    act_for: Callable[[str], Act],
    tasks: Sequence[Task],
    *,
    samples: int,
    tag: str,
    seed: int | None,
    settings: EpisodeSettings,
) -> list[Trajectory]:
    """`samples` (M) trajectories per task, grown by entropy-guided branching; grouped by task."""
    arpo = orchestrator.arpo
    if samples < arpo.initial:
        raise ValueError(f"rollout.group_size={samples} (ARPO's M) must be >= "
                         f"arpo.initial={arpo.initial} (N)")
    settings = replace(
        settings, entropy_tokens=arpo.entropy_tokens,
        sampling=replace(settings.sampling, top_logprobs=arpo.top_logprobs,
                         top_logprobs_tokens=arpo.entropy_tokens))
    rng = random.Random(seed)
    made = [0] * len(tasks)  # trajectories created per task (the cap is `samples`)
    live = [0] * len(tasks)
    results: list[list[tuple[int, Trajectory]]] = [[] for _ in tasks]
    running: set[asyncio.Task] = set()
    ctx.progress.add_episodes(len(tasks) * samples)

    def reserve(i: int) -> tuple[int, str, int | None]:
        n = made[i]
        made[i] += 1
        return n, f"{tag}/{i}/{n}", None if seed is None else seed + i * samples + n

    def start_fresh(i: int) -> None:
        n, traj_id, sample_seed = reserve(i)
        episode = orchestrator.new_episode(act_for(traj_id), tasks[i], settings, uid=f"{tag}/{i}",
                                           traj_id=traj_id, seed=sample_seed)
        launch(i, n, episode)

    def launch(i: int, n: int, episode: Episode) -> None:
        live[i] += 1
        running.add(asyncio.ensure_future(run(i, n, episode)))

    def maybe_branch(i: int, episode: Episode) -> None:
        if episode.turn >= settings.max_turns:  # a copy could not generate anything new
            return
        first, now = episode.traj.turns[0].entropy, episode.traj.turns[-1].entropy
        if first is None or now is None:
            raise RuntimeError("ARPO needs top logprobs from the engine; "
                               f"trajectory {episode.traj.traj_id} has a turn without entropy")
        p = branch_probability(now - first, alpha=arpo.alpha, beta=arpo.beta)
        for _ in range(arpo.beam - 1):
            if made[i] >= samples:
                return
            if rng.random() < p:
                n, traj_id, sample_seed = reserve(i)
                launch(i, n, episode.fork(traj_id, seed=sample_seed))

    async def run(i: int, n: int, episode: Episode) -> None:
        async with ctx.slots:
            trajectory = await orchestrator.drive(
                episode, ctx, after_step=lambda e: maybe_branch(i, e))
        results[i].append((n, trajectory))
        live[i] -= 1
        if live[i] == 0 and made[i] < samples:
            start_fresh(i)

    for i in range(len(tasks)):
        for _ in range(arpo.initial):
            start_fresh(i)
    try:
        while running:
            done, _ = await asyncio.wait(set(running), return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                running.discard(finished)
                finished.result()  # a bug in one episode stops the rollout
    finally:  # on an error, stop the other episodes before it propagates
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
    return [trajectory for group in results for _, trajectory in sorted(group, key=lambda x: x[0])]
