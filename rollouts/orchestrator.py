"""The orchestrator: many episodes at once as asyncio tasks, in groups of n per task.

`schedule="async"` (the default) runs each episode's own loop of generation and environment
steps; episodes never wait for one another, so one episode's tool latency overlaps another's
generation, and a finished episode frees its slot at once. `schedule="lockstep"` reproduces
verl-agent's synchronous loop (generate for every live episode, then step every environment,
repeat) as the baseline `benchmarks/rollout_scheduling.py` measures against. With `arpo` set,
episodes branch at uncertain turns (see `rollouts.arpo`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..agent.chat import ChatFormatter
from ..agent.engines.base import Completion, InferenceEngine, SamplingParams
from ..envs.base import EnvSuite, Observation, Oracle, Task
from .arpo import ArpoSettings, arpo_rollout
from .clock import GenerationClock
from .episode import Act, Episode, EpisodeSettings
from .progress import RolloutProgress, make_progress
from .trajectory import Trajectory

Schedule = Literal["async", "lockstep"]
SCHEDULES: tuple[str, ...] = ("async", "lockstep")


@dataclass
class RunContext:
    """What the episodes of one rollout share: the progress display and the orchestrator's
    episode and tool-call slots (shared by every rollout in flight, so concurrent groups
    together stay within `max_concurrency` and `max_tool_concurrency`)."""

    progress: RolloutProgress
    slots: asyncio.Semaphore
    tool_slots: asyncio.Semaphore
    started: int = 0  # episodes begun; each must come back as a trajectory (see `_measured`)


@dataclass
class Orchestrator:
    """Plays groups of episodes of a suite's tasks with an engine; see the module docstring."""

    engine: InferenceEngine | None  # None: demonstrations only (the oracle needs no engine)
    suite: EnvSuite
    formatter: ChatFormatter
    settings: EpisodeSettings
    max_concurrency: int = 64  # episodes in flight
    max_tool_concurrency: int = 64  # environment steps / tool calls in flight
    schedule: Schedule = "async"
    arpo: ArpoSettings | None = None
    quiet: bool = False  # no progress bar
    # Builds the display for a rollout from its tag (default: `make_progress`, rich or quiet).
    progress: Callable[[str], RolloutProgress] | None = None
    last: dict[str, float] = field(default_factory=dict)  # accounting of the latest rollout
    clock: GenerationClock = field(default_factory=lambda: GenerationClock())

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"rollout.schedule={self.schedule!r}: allowed are {list(SCHEDULES)}")
        for key in ("max_concurrency", "max_tool_concurrency"):
            if getattr(self, key) < 1:
                raise ValueError(f"rollout.{key}={getattr(self, key)}: must be >= 1")
        self._slots: asyncio.Semaphore | None = None
        self._tool_slots: asyncio.Semaphore | None = None
        if self.arpo is not None and self.schedule != "async":
            raise ValueError("ARPO branching runs on schedule='async' only; "
                             f"got rollout.schedule={self.schedule!r}")

    async def rollout(
        self,
        tasks: Sequence[Task],
        *,
        group_size: int,
        tag: str,
        seed: int | None = None,
        settings: EpisodeSettings | None = None,
        branch: bool = True,
        progress: RolloutProgress | None = None,
    ) -> list[Trajectory]:
        """`group_size` episodes of every task; trajectories come back grouped, task by task.

        A group shares its task (so its start state) and its `uid`; each member samples with
        its own seed, derived from `seed`, so members differ but a rerun repeats them. With
        `arpo` set, groups grow by branching unless `branch` is false (evaluation). `progress`
        is a display shared with other rollouts (the caller closes it); default: one of its own.
        """
        settings = settings or self.settings
        if self.engine is None:
            raise ValueError("Orchestrator.engine is None: it can play demonstrations only; "
                             "give it an inference engine to roll out a policy")

        def act_for(session: str) -> Act:
            """The policy of one episode; its requests name it, so a server engine keeps an
            episode's turns (and an ARPO branch's, which shares the act) on one server."""

            async def act(prompt_ids: list[int], obs: Observation,
                          params: SamplingParams) -> Completion:
                with self.clock.generating():
                    return await self.engine.generate(prompt_ids, params, session=session)

            return act

        if self.arpo is not None and branch:
            return await self._measured(tag, lambda ctx: arpo_rollout(
                self, ctx, act_for, tasks, samples=group_size, tag=tag, seed=seed,
                settings=settings), progress)
        return await self._run(tasks, group_size, tag, seed, settings,
                               lambda _task, traj_id: act_for(traj_id), progress)

    async def demonstrations(
        self, tasks: Sequence[Task], *, tag: str, settings: EpisodeSettings | None = None
    ) -> list[Trajectory]:
        """One episode per task played by the suite's oracle, tokenised as model responses."""
        settings = settings or self.settings
        return await self._run(tasks, 1, tag, None, settings,
                               lambda task, _id: oracle_act(self.suite.oracle(task), self.formatter))

    def new_episode(self, act: Act, task: Task, settings: EpisodeSettings, *, uid: str,
                    traj_id: str, seed: int | None) -> Episode:
        """A fresh episode of `task` in a new environment."""
        return Episode(act, self.suite.make(), task, self.formatter, settings, uid=uid,
                       traj_id=traj_id, seed=seed)

    async def drive(self, episode: Episode, ctx: RunContext,
                    after_step: Callable[[Episode], None] | None = None) -> Trajectory:
        """Run one episode to its end; `after_step` sees it after every step that did not end it."""
        progress = ctx.progress
        progress.episode_started()
        ctx.started += 1
        try:
            if not episode.ready:
                await episode.reset()
            while (turn := await episode.generate()) is not None:
                progress.generated(len(turn.response_ids))
                await self._step(episode, ctx)
                if after_step is not None and not episode.done:
                    after_step(episode)
        except BaseException:  # cancelled, or the engine failed: still release the env's resources
            await episode.close()
            raise
        trajectory = await episode.close()
        progress.episode_finished(trajectory)
        return trajectory

    # ----------------------------------------------------------------------------- internals

    async def _run(self, tasks, group_size, tag, seed, settings, make_act,
                   progress=None) -> list[Trajectory]:
        if group_size < 1:
            raise ValueError(f"rollout.group_size={group_size}: must be >= 1")
        episodes = [
            self.new_episode(make_act(task, f"{tag}/{i}/{j}"), task, settings, uid=f"{tag}/{i}",
                             traj_id=f"{tag}/{i}/{j}",
                             seed=None if seed is None else seed + i * group_size + j)
            for i, task in enumerate(tasks) for j in range(group_size)
        ]

        async def run(ctx: RunContext) -> list[Trajectory]:
            ctx.progress.add_episodes(len(episodes))
            if self.schedule == "lockstep":
                return await self._lockstep(episodes, ctx)

            async def one(episode: Episode) -> Trajectory:
                async with ctx.slots:
                    return await self.drive(episode, ctx)

            running = [asyncio.ensure_future(one(e)) for e in episodes]
            try:
                return list(await asyncio.gather(*running))
            except BaseException:  # one episode's error stops the others before it propagates
                for task in running:
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)
                raise

        return await self._measured(tag, run, progress)

    async def _lockstep(self, episodes: list[Episode], ctx: RunContext) -> list[Trajectory]:
        """verl-agent's loop: every live episode generates, then every environment steps."""
        progress = ctx.progress
        out: list[Trajectory] = []
        for start in range(0, len(episodes), self.max_concurrency):
            wave = episodes[start:start + self.max_concurrency]
            for _ in wave:
                progress.episode_started()
            ctx.started += len(wave)
            await asyncio.gather(*(e.reset() for e in wave))
            live = [e for e in wave if not e.done]
            while live:
                turns = await asyncio.gather(*(e.generate() for e in live))
                for turn in turns:
                    if turn is not None:
                        progress.generated(len(turn.response_ids))
                live = [e for e in live if not e.done]
                await asyncio.gather(*(self._step(e, ctx) for e in live))
                live = [e for e in live if not e.done]
            for trajectory in await asyncio.gather(*(e.close() for e in wave)):
                progress.episode_finished(trajectory)
                out.append(trajectory)
        return out

    async def _step(self, episode: Episode, ctx: RunContext) -> None:
        async with ctx.tool_slots:
            ctx.progress.tool_started()
            try:
                await episode.step_env()
            finally:
                ctx.progress.tool_finished()

    async def _measured(self, tag: str, run, progress=None) -> list[Trajectory]:
        """Run `run(ctx)` with the shared slots and a progress display; record its accounting."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrency)
            self._tool_slots = asyncio.Semaphore(self.max_tool_concurrency)
        display = progress or (self.progress(tag) if self.progress
                               else make_progress(tag, quiet=self.quiet))
        ctx = RunContext(display, self._slots, self._tool_slots)
        started = time.perf_counter()
        try:
            trajectories = await run(ctx)
        finally:
            if progress is None:
                ctx.progress.close()
        wall = time.perf_counter() - started
        statuses = {s: sum(t.status == s for t in trajectories)
                    for s in ("done", "truncated", "failed")}
        if sum(statuses.values()) != ctx.started or len(trajectories) != ctx.started:
            # Every episode ends as done, truncated or failed; anything else is lost data.
            raise RuntimeError(f"rollout {tag!r}: {ctx.started} episodes started but "
                               f"{len(trajectories)} came back ({statuses})")
        # ARPO branches share their prefix turns: count each generated turn once.
        turns = {id(turn): turn for t in trajectories for turn in t.turns}.values()
        tokens = sum(len(turn.response_ids) for turn in turns)
        self.last = {
            "wall_seconds": wall,
            "episodes": float(len(trajectories)),
            "episodes_started": float(ctx.started),
            **{f"status_{s}": float(n) for s, n in statuses.items()},
            "turns": float(len(turns)),
            "response_tokens": float(tokens),
            "tokens_per_second": tokens / max(wall, 1e-9),
        }
        return trajectories


def oracle_act(oracle: Oracle, formatter: ChatFormatter) -> Act:
    """A policy that answers with the oracle's text, tokenised and closed the way the template
    closes an assistant turn (eos, or e.g. Cohere 2's end-of-response token and eos)."""

    async def act(prompt_ids: list[int], obs: Observation, params: SamplingParams) -> Completion:
        text = oracle.act(obs)
        ids = list(formatter.tokenizer.encode(text, add_special_tokens=False))
        ids += formatter.closing_ids
        return Completion(token_ids=ids, logprobs=[0.0] * len(ids), finish_reason="stop",
                          info={"demonstration": True})

    return act
