"""Playing agent programs: groups of `ProgramSuite` episodes through the gateway.

`ProgramOrchestrator` is the orchestrator of program suites: the same `rollout` and
`demonstrations` as `Orchestrator`, so the producer, evaluation and the SFT cold start drive it
unchanged. Each episode opens a gateway session (its Trajectory), hands the program an
`openai.AsyncOpenAI` client whose API key is the session's, and scores the trajectory with what
the program returns. A program that raises is a failed episode (`info["error"]`) and the
rollout goes on; a program stopped by the gateway's budgets (max_turns, max_episode_tokens) is
truncated; an engine failure is raised, as the orchestrator raises it.
"""

from __future__ import annotations

import asyncio
import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..agent.chat import ChatFormatter
from ..agent.engines.base import ChatPrompt, Completion, InferenceEngine, SamplingParams
from ..envs.base import Task
from ..envs.program import ProgramSuite
from .clock import GenerationClock
from .episode import EpisodeSettings
from .gateway import Gateway, Policy
from .progress import RolloutProgress, make_progress
from .trajectory import Trajectory

# Ends of a session that truncate its episode rather than fail it.
TRUNCATING = ("max_turns", "max_episode_tokens", "prompt_too_long", "empty")


@dataclass
class ProgramOrchestrator:
    """Plays groups of a program suite's episodes with an engine; see the module docstring."""

    engine: InferenceEngine | None  # None: demonstrations only
    suite: ProgramSuite
    formatter: ChatFormatter  # its tokenizer renders the programs' requests
    settings: EpisodeSettings
    max_concurrency: int = 64  # programs in flight
    quiet: bool = False
    progress: Callable[[str], RolloutProgress] | None = None
    last: dict[str, float] = field(default_factory=dict)  # accounting of the latest rollout
    clock: GenerationClock = field(default_factory=lambda: GenerationClock())

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"rollout.max_concurrency={self.max_concurrency}: must be >= 1")
        self.gateway = Gateway(self.formatter.tokenizer)
        self._serving = 0  # rollouts in flight; the gateway listens while there are any
        self._lock: asyncio.Lock | None = None
        self._slots: asyncio.Semaphore | None = None
        self._http: Any = None  # one HTTP client for every program's OpenAI client

    async def rollout(self, tasks: Sequence[Task], *, group_size: int, tag: str,
                      seed: int | None = None, settings: EpisodeSettings | None = None,
                      branch: bool = True, progress: RolloutProgress | None = None,
                      ) -> list[Trajectory]:
        """`group_size` program runs of every task, grouped task by task (see
        `Orchestrator.rollout`; programs do not branch, so `branch` changes nothing)."""
        if self.engine is None:
            raise ValueError("ProgramOrchestrator.engine is None: it can play demonstrations "
                             "only; give it an inference engine to roll out a policy")

        def policy_for(_task: Task, traj_id: str) -> Policy:
            async def act(prompt: ChatPrompt, params: SamplingParams) -> Completion:
                with self.clock.generating():
                    return await self.engine.generate(prompt, params, session=traj_id)

            return act

        return await self._play(tasks, group_size, tag, seed, settings or self.settings,
                                policy_for, progress)

    async def demonstrations(self, tasks: Sequence[Task], *, tag: str,
                             settings: EpisodeSettings | None = None) -> list[Trajectory]:
        """One run per task with the suite's expert as the policy, its replies tokenised."""
        expert = self.suite.expert
        if expert is None:
            raise ValueError(f"sft.episodes is set but suite {self.suite.name!r} has no expert "
                             "to demonstrate with; give ProgramSuite an `expert` or set "
                             "sft.episodes=0")
        tokenizer, eos = self.formatter.tokenizer, self.formatter.eos_id

        def policy_for(task: Task, _traj_id: str) -> Policy:
            async def act(prompt: ChatPrompt, params: SamplingParams) -> Completion:
                text = expert(task, prompt.messages)
                ids = list(tokenizer.encode(text, add_special_tokens=False)) + [eos]
                return Completion(token_ids=ids, logprobs=[0.0] * len(ids),
                                  finish_reason="stop", info={"demonstration": True})

            return act

        return await self._play(tasks, 1, tag, None, settings or self.settings, policy_for, None)

    # ----------------------------------------------------------------------------- internals

    async def _play(self, tasks, group_size, tag, seed, settings, policy_for,
                    progress) -> list[Trajectory]:
        if group_size < 1:
            raise ValueError(f"rollout.group_size={group_size}: must be >= 1")
        display = progress or (self.progress(tag) if self.progress
                               else make_progress(tag, quiet=self.quiet))
        started = time.perf_counter()
        await self._serve()
        try:
            runs = [asyncio.ensure_future(self._episode(
                task, settings, policy_for(task, f"{tag}/{i}/{j}"), display, uid=f"{tag}/{i}",
                traj_id=f"{tag}/{i}/{j}",
                seed=None if seed is None else seed + i * group_size + j))
                for i, task in enumerate(tasks) for j in range(group_size)]
            display.add_episodes(len(runs))
            try:
                trajectories = list(await asyncio.gather(*runs))
            except BaseException:  # an engine failure stops the others before it propagates
                for run in runs:
                    run.cancel()
                await asyncio.gather(*runs, return_exceptions=True)
                raise
        finally:
            await self._unserve()
            if progress is None:
                display.close()
        self.last = _accounting(trajectories, time.perf_counter() - started)
        return trajectories

    async def _episode(self, task: Task, settings: EpisodeSettings, policy: Policy,
                       display: RolloutProgress, *, uid: str, traj_id: str,
                       seed: int | None) -> Trajectory:
        import openai

        async with self._slots:
            display.episode_started()
            started = time.perf_counter()
            traj = Trajectory(uid=uid, traj_id=traj_id, mode=settings.mode, prompt_ids=[],
                              task_id=task.id, task_kind=task.kind)
            if task.answer is not None:
                traj.info["answer"] = task.answer  # the gold answer, for IGPO's scoring pass
            session = self.gateway.open(
                prefix="tw-" + traj_id.replace("/", "-"), policy=policy, settings=settings,
                trajectory=traj, seed=seed,
                on_turn=lambda turn: display.generated(len(turn.response_ids)))
            client = openai.AsyncOpenAI(base_url=self.gateway.url, api_key=session.key,
                                        http_client=self._http, max_retries=0,
                                        timeout=self.suite.timeout)
            try:
                outcome = await asyncio.wait_for(self.suite.program(task, client),
                                                 self.suite.timeout)
            except asyncio.TimeoutError:
                outcome = TimeoutError(f"no return within {self.suite.timeout:g}s")
            except Exception as exc:  # noqa: BLE001 - a program's failure is its episode's
                outcome = exc
            finally:
                self.gateway.close_session(session.key)
            if session.crash is not None:
                raise session.crash
            score(traj, outcome, self.suite.success_threshold)
            traj.wall_seconds = time.perf_counter() - started
            display.episode_finished(traj)
            return traj

    async def _serve(self) -> None:
        import openai

        if self._lock is None:
            self._lock = asyncio.Lock()
            self._slots = asyncio.Semaphore(self.max_concurrency)
        async with self._lock:
            if self._serving == 0:
                await self.gateway.start()
                # One pooled client for all programs: an AsyncOpenAI of its own costs ~80 ms of
                # CPU to build; aiohttp's pool, unlike httpx's, stays cheap with many connections.
                self._http = openai.DefaultAioHttpClient(timeout=self.suite.timeout)
            self._serving += 1

    async def _unserve(self) -> None:
        async with self._lock:
            self._serving -= 1
            if self._serving == 0:
                await self._http.aclose()
                await self.gateway.close()


def score(traj: Trajectory, outcome: Any, threshold: float) -> None:
    """Give `traj` the program's outcome: a reward, per-turn rewards, or the exception it
    raised; set its status (failed, truncated by a gateway budget, or done)."""
    stop = traj.info.get("stop")
    if traj.status == "failed":
        return
    if isinstance(outcome, BaseException):
        if stop in TRUNCATING:  # the gateway refused a request past a budget; the program gave up
            traj.status = "truncated"
            traj.info["program_error"] = _describe(outcome)
            return
        _fail(traj, f"the program raised {_describe(outcome)}")
        return
    rewards = _rewards(outcome, len(traj.turns))
    if isinstance(rewards, str):
        _fail(traj, rewards)
        return
    for turn, reward in zip(traj.turns, rewards):
        turn.reward = reward
    traj.outcome_reward = float(outcome) if not isinstance(outcome, Sequence) else sum(rewards)
    traj.success = traj.outcome_reward >= threshold
    traj.status = "truncated" if stop in TRUNCATING else "done"


def _rewards(outcome: Any, turns: int) -> list[float] | str:
    """Per-turn rewards from a program's return value, or why it is not one."""
    if isinstance(outcome, numbers.Real) and not isinstance(outcome, bool):
        if not math.isfinite(outcome):
            return f"the program returned reward {outcome!r}, not finite"
        return [0.0] * (turns - 1) + [float(outcome)] if turns else []
    if isinstance(outcome, Sequence) and not isinstance(outcome, str):
        values = list(outcome)
        if len(values) != turns:
            return (f"the program returned {len(values)} per-turn rewards for {turns} model "
                    "calls; give one per call, or one number for the episode")
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                   and math.isfinite(v) for v in values):
            return f"the program returned per-turn rewards {values!r}: each must be a finite number"
        return [float(v) for v in values]
    return (f"the program returned {type(outcome).__name__} {outcome!r}; expected a reward (a "
            "number) or a list of per-turn rewards")


def _fail(traj: Trajectory, error: str) -> None:
    traj.status = "failed"
    traj.info["error"] = error


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _accounting(trajectories: list[Trajectory], wall: float) -> dict[str, float]:
    """What `Orchestrator.last` records, for the same consumers."""
    tokens = sum(t.num_response_tokens() for t in trajectories)
    statuses = {s: float(sum(t.status == s for t in trajectories))
                for s in ("done", "truncated", "failed")}
    return {"wall_seconds": wall, "episodes": float(len(trajectories)),
            "episodes_started": float(len(trajectories)),
            **{f"status_{s}": n for s, n in statuses.items()},
            "turns": float(sum(len(t.turns) for t in trajectories)),
            "response_tokens": float(tokens), "tokens_per_second": tokens / max(wall, 1e-9)}
