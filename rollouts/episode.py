"""One episode as a small state machine: reset, then generate / step the environment, then close.

The schedulers drive it: the async orchestrator runs each episode's loop as its own task, the
lock-step baseline moves all episodes one phase at a time, and ARPO forks an episode after a
tool result into copies that share its prefix. The context grows by appending ids (see
`agent.chat`), so every id a `Turn` records is an id the engine produced or saw. Failures of the
environment end the episode as `failed` with the error recorded; they never propagate.
"""

from __future__ import annotations

import asyncio
import copy
import math
import numbers
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from ..agent.chat import ChatFormatter, Conversation, MismatchPolicy
from ..agent.engines.base import ChatPrompt, Completion, SamplingParams
from ..agent.prompts import observation_text, per_step_messages
from ..envs.base import Env, Observation, Step, Task
from .entropy import first_tokens_entropy
from .trajectory import SampleMode, Trajectory, Turn

# The policy: given the prompt ids and the observation they encode, produce a completion.
Act = Callable[[list[int], Observation, SamplingParams], Awaitable[Completion]]


@dataclass(frozen=True)
class EpisodeSettings:
    mode: SampleMode = "full_trajectory"
    history: int = 2  # per_step: (observation, action) pairs shown
    max_turns: int = 10
    max_tokens_per_turn: int = 256
    max_episode_tokens: int = 4096  # full_trajectory: context length; per_step: tokens generated
    show_admissible: bool = True
    sampling: SamplingParams = field(default_factory=SamplingParams)  # stop sequences live here
    template_mismatch: MismatchPolicy = "keep"  # full_trajectory: see agent.chat.Conversation
    entropy_tokens: int = 20  # ARPO's k, used when sampling asks for top logprobs
    # Seconds one env.reset / env.step may take; a hung environment fails its episode instead
    # of holding a rollout slot for ever (tools have their own, shorter, executor timeout).
    step_timeout: float = 300.0

    def __post_init__(self) -> None:
        if not self.step_timeout > 0:
            raise ValueError(f"rollout.step_timeout={self.step_timeout!r}: must be > 0 seconds")


class Episode:
    """The state of one episode in flight; `fork` copies it to continue independently."""

    def __init__(self, act: Act, env: Env, task: Task, formatter: ChatFormatter,
                 settings: EpisodeSettings, *, uid: str, traj_id: str,
                 seed: int | None = None) -> None:
        self.act, self.env, self.task = act, env, task
        self.formatter, self.settings = formatter, settings
        self.seed = seed
        self.traj = Trajectory(uid=uid, traj_id=traj_id, mode=settings.mode, prompt_ids=[],
                               task_id=task.id, task_kind=task.kind)
        if task.answer is not None:
            self.traj.info["answer"] = task.answer  # the gold answer, for IGPO's scoring pass
        self.ready = False  # reset has run (a fork starts ready)
        self.done = False
        self.obs: Observation | None = None
        self.shown = ""  # the observation as the agent reads it
        self.system = ""
        self.conversation: Conversation | None = None  # full_trajectory context
        self.history: list[tuple[str, str]] = []  # per_step window source
        self.generated = 0
        self.reply_text: str | None = None  # a text-only engine's reply, as it wrote it
        self.started = time.perf_counter()

    @property
    def turn(self) -> int:
        """Index of the next turn to generate."""
        return len(self.traj.turns)

    async def reset(self) -> None:
        """Start the environment and build the first prompt."""
        self.started = time.perf_counter()
        self.ready = True
        try:
            obs = await _bounded(self.env.reset(self.task), self.settings.step_timeout, "reset")
        except Exception as exc:  # a broken environment costs this episode, not the run
            self._fail(_describe_error("reset", exc))
            return
        problem = observation_problem(obs)
        if problem is not None:
            self._fail(f"env.reset returned a malformed observation: {problem}")
            return
        self.obs = obs
        self.traj.initial_observation = self.obs.text
        self.system = getattr(self.env, "system_prompt", "")
        self.shown = self._show(self.obs)
        first = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": self.shown}]
        self.conversation = Conversation(self.formatter, first,
                                         on_mismatch=self.settings.template_mismatch)
        self.traj.prompt_ids = list(self.conversation.ids)
        self.traj.status = "truncated"  # unless the environment says done

    async def generate(self) -> Turn | None:
        """Generate the next response; None when the episode ends instead (budget, empty)."""
        s = self.settings
        if self.done:
            return None
        if self.turn >= s.max_turns:
            self._stop("max_turns")
            return None
        # The ids carry their messages too: a text-only engine (openai) sends those instead.
        if s.mode == "per_step":
            messages = per_step_messages(
                system=self.system, goal=self.obs.info.get("goal"), observation=self.shown,
                history=self.history[-s.history:] if s.history else [], step=self.turn)
            prompt = ChatPrompt(self.formatter.encode(messages), messages)
            room = s.max_episode_tokens - self.generated
        else:
            prompt = ChatPrompt(self.conversation.ids, self.conversation.messages)
            room = s.max_episode_tokens - len(prompt)
        budget = min(s.max_tokens_per_turn, room)
        if budget < 1:
            self._stop("max_episode_tokens")
            return None
        params = replace(s.sampling, max_tokens=budget,
                         seed=None if self.seed is None else self.seed * 1000 + self.turn)
        started = time.perf_counter()
        completion = await self.act(prompt, self.obs, params)
        if not completion.token_ids:
            self._stop("prompt_too_long" if completion.info.get("prompt_too_long") else "empty")
            return None
        self.reply_text = completion.info.get("text")
        whole = completion.info.get("demonstration") or self.reply_text is not None
        if len(completion.token_ids) > budget and not whole:
            # An engine that overran max_tokens must not blow the episode's token budget
            # (an expert's demonstration is kept whole: it is what the model should learn; so
            # is a text engine's reply: the endpoint kept to max_tokens in its own tokens).
            completion = replace(
                completion, token_ids=completion.token_ids[:budget],
                logprobs=completion.logprobs[:budget], finish_reason="length",
                top_logprobs=completion.top_logprobs[:budget] if completion.top_logprobs else None,
                token_versions=completion.token_versions[:budget]
                if completion.token_versions else None)
            self.traj.info["responses_cut"] = self.traj.info.get("responses_cut", 0) + 1
        self.generated += len(completion.token_ids)
        turn = Turn(
            response_ids=list(completion.token_ids),
            response_logprobs=list(completion.logprobs),
            prompt_ids=list(prompt) if s.mode == "per_step" else None,
            anchor=self.obs.anchor,
            finish_reason=completion.finish_reason,
            version=completion.version,
            token_versions=_token_versions(completion),
            prompt_tokens=completion.prompt_tokens or len(prompt),
            gen_seconds=time.perf_counter() - started,
        )
        if completion.top_logprobs:
            turn.entropy = first_tokens_entropy(
                completion.top_logprobs, completion.token_ids, completion.logprobs,
                k=s.entropy_tokens, vocab_size=self.formatter.vocab_size)
        self.traj.turns.append(turn)
        return turn

    async def step_env(self) -> None:
        """Send the last response to the environment and append what comes back."""
        if self.done:
            return
        turn = self.traj.turns[-1]
        text = self.reply_text if self.reply_text is not None else \
            self.formatter.decode(turn.response_ids)
        started = time.perf_counter()
        try:
            step = await _bounded(self.env.step(text), self.settings.step_timeout, "step")
            problem = step_problem(step)
        except Exception as exc:
            problem, error = None, _describe_error("step", exc)
        else:
            error = None if problem is None else f"env.step returned a malformed Step: {problem}"
        turn.env_seconds = time.perf_counter() - started
        if error is not None:
            turn.error = error
            self._fail(error)
            return
        turn.reward = float(step.reward)
        turn.invalid = bool(step.info.get("invalid", False))
        turn.action = str(step.info.get("action", text))
        turn.tool_calls = list(step.info.get("tool_calls", []))
        turn.error = step.info.get("error")
        turn.observation = step.observation.text
        self.traj.outcome_reward += turn.reward
        self.traj.success = bool(step.info.get("success", self.traj.success))
        if step.done:
            self.traj.status = "truncated" if step.info.get("truncated") else "done"
            # The task's own score, when it differs from the reward; whether the episode's tool
            # results held what the answer needed (`ToolEnv`'s evidence check).
            for key in ("score", "evidence_found"):
                if key in step.info:
                    self.traj.info[key] = float(step.info[key])
            self.done = True
            return
        self.history.append((self.obs.text, turn.action))
        self.obs = step.observation
        self.shown = self._show(self.obs)
        if self.settings.mode == "full_trajectory":
            # Tool results go back in the template's own tool-message format where it has one.
            messages = self.formatter.observation_messages(
                self.obs.role, self.shown, step.info.get("tool_calls"))
            turn.observation_ids = self.conversation.add_turn(turn.response_ids, messages)

    def fork(self, traj_id: str, *, seed: int | None) -> Episode:
        """A copy that shares this episode's turns so far and continues on its own.

        The copy records `parent_id` and `branch_turn` (turns before it are shared, as the very
        same `Turn` objects: nothing is generated again); the environment is copied with its
        `fork()` when it has one, else with `copy.deepcopy`.
        """
        if self.done:
            raise ValueError(f"fork of finished episode {self.traj.traj_id}")
        twin = object.__new__(Episode)
        twin.__dict__.update(self.__dict__)
        fork = getattr(self.env, "fork", None)
        twin.env = fork() if callable(fork) else copy.deepcopy(self.env)
        twin.seed = seed
        twin.history = list(self.history)
        twin.conversation = self.conversation.fork() if self.conversation else None
        twin.traj = replace(self.traj, traj_id=traj_id, turns=list(self.traj.turns),
                            parent_id=self.traj.traj_id, branch_turn=self.turn,
                            info=dict(self.traj.info))
        return twin

    async def close(self) -> Trajectory:
        """Close the environment and return the finished trajectory."""
        self.done = True
        conversation = self.conversation
        if conversation is not None and conversation.rewrite is not None:
            self.traj.info["template_rewrite"] = conversation.rewrite.turn
        if conversation is not None and conversation.retokenized is not None:
            self.traj.info["retokenized"] = conversation.retokenized.turn
        self.traj.wall_seconds = time.perf_counter() - self.started
        try:
            await self.env.close()
        except Exception as exc:
            self.traj.info["close_error"] = f"{type(exc).__name__}: {exc}"
        return self.traj

    def _show(self, obs: Observation) -> str:
        # Valid UTF-8 whatever the environment sent: a tokenizer refuses lone surrogates.
        text = observation_text(obs.text, obs.admissible_actions,
                                show_admissible=self.settings.show_admissible)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: a tokenizer refuses them
            text = text.encode("utf-8", "replace").decode("utf-8")
        return text

    def _stop(self, reason: str) -> None:
        self.traj.info["stop"] = reason
        self.done = True

    def _fail(self, error: str) -> None:
        self.traj.status = "failed"
        self.traj.info["error"] = error
        self.done = True


def _token_versions(completion: Completion) -> list[int] | None:
    """Per-token versions of a completion whose weights changed while it was generated."""
    versions = completion.token_versions
    if versions is None or len(set(versions)) <= 1:
        return None
    if len(versions) != len(completion.token_ids):
        raise ValueError(f"engine returned {len(versions)} token versions for "
                         f"{len(completion.token_ids)} tokens")
    return list(versions)


class StepTimeout(Exception):
    """An env.reset or env.step that overran `EpisodeSettings.step_timeout`."""


async def _bounded(awaitable: Awaitable, seconds: float, what: str):
    """Await `awaitable` for at most `seconds`; past that, cancel it and raise StepTimeout.

    Unlike `asyncio.wait_for`, an environment that swallows the cancellation cannot hang the
    episode: it gets one second to clean up and is then left behind.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except BaseException:  # the episode itself was cancelled: take the step down with it
        task.cancel()
        raise
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.wait({task}, timeout=1.0)
    raise StepTimeout(f"env.{what} did not return within rollout.step_timeout={seconds:g}s")


def _describe_error(what: str, exc: Exception) -> str:
    if isinstance(exc, StepTimeout):
        return str(exc)
    return f"env.{what} raised {type(exc).__name__}: {exc}"


def observation_problem(obs: object) -> str | None:
    """What is wrong with an environment's observation, or None if it is well formed."""
    if not isinstance(obs, Observation):
        return f"expected an Observation, got {type(obs).__name__}"
    if not isinstance(obs.text, str):
        return f"observation.text is {type(obs.text).__name__}, not str"
    if obs.role not in ("user", "tool"):
        return f"observation.role={obs.role!r}; allowed are 'user', 'tool'"
    actions = obs.admissible_actions
    if actions is not None and not (isinstance(actions, list)
                                     and all(isinstance(a, str) for a in actions)):
        return "observation.admissible_actions must be a list of str or None"
    if not isinstance(obs.info, dict):
        return f"observation.info is {type(obs.info).__name__}, not dict"
    return None


def step_problem(step: object) -> str | None:
    """What is wrong with an environment's `Step`, or None if it is well formed."""
    if not isinstance(step, Step):
        return f"expected a Step, got {type(step).__name__}"
    problem = observation_problem(step.observation)
    if problem is not None:
        return problem
    if isinstance(step.reward, bool) or not isinstance(step.reward, numbers.Real):
        return f"reward is {type(step.reward).__name__} {step.reward!r}, not a number"
    if not math.isfinite(step.reward):  # a NaN reward would poison every advantage of its group
        return f"reward is {step.reward!r}, not finite"
    if step.done not in (True, False):  # bool, numpy bool, 0/1
        return f"done is {type(step.done).__name__} {step.done!r}, not bool"
    if not isinstance(step.info, dict):
        return f"info is {type(step.info).__name__}, not dict"
    return None


async def run_episode(act: Act, env: Env, task: Task, formatter: ChatFormatter,
                      settings: EpisodeSettings, *, uid: str, traj_id: str,
                      seed: int | None = None) -> Trajectory:
    """Play `task` in `env` with the policy `act` to the end; return the trajectory."""
    episode = Episode(act, env, task, formatter, settings, uid=uid, traj_id=traj_id, seed=seed)
    await episode.reset()
    while await episode.generate() is not None:
        await episode.step_env()
    return await episode.close()

