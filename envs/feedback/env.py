"""`FeedbackEnv`: the wrapped environment of one episode, and the reward of an attempt."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import NamedTuple

from ..base import Env, Observation, Step, Task
from .critics import Critic, CritiqueRequest
from .stats import FeedbackStats

KINDS = ("try_again", "critique")
# UFO's unary feedback: the paper's example is "Let's try again".
TRY_AGAIN = "Let's try again."


@dataclass(frozen=True)
class FeedbackSettings:
    """How feedback turns run (`env.options` of the `feedback` suite).

    kind: `try_again` or `critique`. max_attempts: answers one episode may give. decay: the
    reward of the answer given at attempt t is multiplied by decay ** (t - 1) (UFO's reference
    halves it per attempt: 0.5). text: the try_again feedback. repeat_penalty: UFO's lambda,
    lambda * (1 - distinct answers / answers) off the final reward (0: off).
    """

    kind: str = "try_again"
    max_attempts: int = 3
    decay: float = 0.5
    text: str = TRY_AGAIN
    repeat_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"env.options.kind={self.kind!r}: allowed are {list(KINDS)}")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) \
                or self.max_attempts < 1:
            raise ValueError(f"env.options.max_attempts={self.max_attempts!r}: allowed is an "
                             "integer >= 1")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"env.options.decay={self.decay!r}: allowed is 0 < decay <= 1")
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"env.options.text={self.text!r}: allowed is a non-empty string")
        if self.kind == "critique" and self.text != TRY_AGAIN:
            raise ValueError(f"env.options.text={self.text!r} is set with kind='critique', whose "
                             "feedback the critic writes; text applies to kind 'try_again'")
        if not self.repeat_penalty >= 0.0:
            raise ValueError(f"env.options.repeat_penalty={self.repeat_penalty!r}: allowed is "
                             ">= 0")


class FeedbackMark(NamedTuple):
    """The anchor of a feedback observation: the state "attempt `attempt` begins". It is
    recorded as the anchor of the turn that starts that attempt, so credit assignment can find
    attempt boundaries and the score of the answer that was judged wrong."""

    attempt: int  # the attempt the next response begins (2, 3, ...)
    score: float  # the task score of the previous answer (the suite's score, else its reward)
    feedback: str  # the feedback shown


def attempt_reward(reward: float, attempt: int, *, decay: float, answers: list[str],
                   repeat_penalty: float) -> float:
    """decay ** (attempt - 1) * reward, minus repeat_penalty * (1 - distinct / all answers)."""
    distinct = len(set(answers)) / len(answers) if answers else 1.0
    return decay ** (attempt - 1) * reward - repeat_penalty * (1.0 - distinct)


def normalize(answer: str) -> str:
    """An answer for the repetition count: lower case, no white space (UFO's reference)."""
    return re.sub(r"\s+", "", answer.strip().lower())


class FeedbackEnv:
    """One episode of `inner` where a wrong final answer brings feedback instead of the end.

    `inner` must report its final answer as `info["answer"]` on the step that ends it, and
    accept further steps after that one (`ToolEnv` does: a final answer changes no state).
    """

    def __init__(self, inner: Env, settings: FeedbackSettings, *, critic: Critic | None,
                 stats: FeedbackStats) -> None:
        if (critic is None) != (settings.kind == "try_again"):
            raise ValueError(f"FeedbackEnv kind={settings.kind!r}: a critic is needed by kind "
                             "'critique' and only by it")
        self.inner, self.settings, self.critic, self.stats = inner, settings, critic, stats
        self.system_prompt = getattr(inner, "system_prompt", "")
        self.task: Task | None = None
        self.question = ""
        self.answers: list[str] = []  # normalised, one per attempt
        self.reasons: list[str] = []  # why each feedback was given
        self.solved_at: int | None = None
        self.recorded = False

    async def reset(self, task: Task) -> Observation:
        obs = await self.inner.reset(task)
        self.task, self.question = task, obs.text
        self.answers, self.reasons, self.solved_at, self.recorded = [], [], None, False
        return obs

    async def step(self, action_text: str) -> Step:
        if self.task is None:
            raise RuntimeError("FeedbackEnv.step before reset")
        step = await self.inner.step(action_text)
        if not step.done:
            return step
        if "answer" not in step.info:
            raise ValueError(f"feedback: {type(self.inner).__name__} ended the episode without "
                             "info['answer']; feedback turns wrap environments that report their "
                             "final answer (ToolEnv: search_qa, math_code, a user's ToolEnv)")
        answer = str(step.info["answer"])
        self.answers.append(normalize(answer))
        attempt = len(self.answers)
        success = bool(step.info.get("success", False))
        score = float(step.info.get("score", step.reward))
        if success or attempt >= self.settings.max_attempts:
            return self._finish(step, attempt, success, score)
        text, reason = await self._feedback(action_text, answer, step, attempt)
        self.reasons.append(reason)
        info = {**step.info, "success": False, "attempt": attempt, "feedback": reason}
        for key in ("score", "evidence_found"):  # they describe the end of an episode
            info.pop(key, None)
        mark = FeedbackMark(attempt + 1, score, text)
        return Step(Observation(text, anchor=mark, role="user"), reward=0.0, done=False,
                    info=info)

    def fork(self) -> FeedbackEnv:
        """A copy at this point of the episode (ARPO branches); the inner environment is
        copied with its own `fork` when it has one."""
        twin = copy.copy(self)
        fork = getattr(self.inner, "fork", None)
        twin.inner = fork() if callable(fork) else copy.deepcopy(self.inner)
        twin.answers, twin.reasons = list(self.answers), list(self.reasons)
        return twin

    async def close(self) -> None:
        if self.task is not None and not self.recorded:  # cut short before a final answer
            self._record()
        await self.inner.close()

    async def _feedback(self, response: str, answer: str, step: Step,
                        attempt: int) -> tuple[str, str]:
        if self.critic is None:
            return self.settings.text, "try_again"
        request = CritiqueRequest(task=self.task, question=self.question, response=response,
                                  answer=answer, info=dict(step.info), attempt=attempt)
        return await self.critic.critique(request)

    def _finish(self, step: Step, attempt: int, success: bool, score: float) -> Step:
        s = self.settings
        self.solved_at = attempt if success else None
        reward = attempt_reward(step.reward, attempt, decay=s.decay, answers=self.answers,
                                repeat_penalty=s.repeat_penalty)
        self._record()
        info = {**step.info, "success": success, "score": score, "attempts": attempt}
        return Step(step.observation, reward=reward, done=True, info=info)

    def _record(self) -> None:
        self.recorded = True
        self.stats.add(attempts=len(self.answers), solved_at=self.solved_at,
                       repeats=len(self.answers) - len(set(self.answers)), reasons=self.reasons)
