"""Critics: who writes the feedback after a wrong answer in `kind: critique`.

`RuleCritic` states the verifier's reason: the answer's format is wrong, the episode never
retrieved the evidence (search), or the value is wrong; with `reveal_answer` it also gives the
gold answer (Critique-GRPO's critique with ground truth). A model critic (`kind: model`) asks
a language model served by any engine kind; it lives with the engine factory in
`trainer/critic.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..base import Task
from ..math_code.answers import extract_boxed, parse_number

# (the final answer) -> what is wrong with its form, or None.
FormatCheck = Callable[[str], "str | None"]
CRITIC_KINDS = ("rule", "model")


@dataclass(frozen=True)
class CritiqueRequest:
    """A wrong answer to critique: the task, the question as first shown, the whole response
    that gave the answer, the answer as the environment read it, its step info (`success`,
    `score`, `evidence_found`, ...), and which attempt it was (1, 2, ...)."""

    task: Task
    question: str
    response: str
    answer: str
    info: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1


class Critic(Protocol):
    """Writes the feedback to a wrong answer: (text, reason), reason naming why for metrics."""

    async def critique(self, request: CritiqueRequest) -> tuple[str, str]: ...


def blank_answer(answer: str) -> str | None:
    """An empty answer is the one format error every suite shares."""
    return "Your answer is empty." if not answer.strip() else None


def boxed_answer(answer: str) -> str | None:
    """math_code's verifier reads the last \\boxed{} value as a number."""
    boxed = extract_boxed(answer)
    if boxed is None:
        return "Your answer has no value in \\boxed{}: write it as \\boxed{value}."
    if parse_number(boxed) is None:
        return f"The boxed value {boxed!r} is not a number."
    return blank_answer(answer)


# Suites whose verifier has a format of its own; any other suite gets `blank_answer`.
FORMAT_CHECKS: dict[str, FormatCheck] = {"math_code": boxed_answer}


class RuleCritic:
    """The verifier's reason as feedback: format, then missing evidence, then wrong value."""

    def __init__(self, *, format_check: FormatCheck = blank_answer,
                 reveal_answer: bool = False) -> None:
        if not isinstance(reveal_answer, bool):  # a recipe error: ValueError, as make_suite says
            raise ValueError(  # noqa: TRY004
                f"env.options.critic.reveal_answer={reveal_answer!r}: allowed are true, false")
        self.format_check, self.reveal_answer = format_check, reveal_answer

    def verdict(self, request: CritiqueRequest) -> tuple[str, str]:
        """(text, reason) with reason one of format | evidence | wrong_value."""
        problem = self.format_check(request.answer)
        if problem is not None:
            return problem, "format"
        if request.info.get("evidence_found") is False:
            return ("None of the passages you retrieved contains the answer. Search again with "
                    "other words before answering."), "evidence"
        text = f"Your answer {request.answer.strip()} is wrong."
        if self.reveal_answer and request.task.answer is not None:
            text += f" The correct answer is {request.task.answer}."
        return text, "wrong_value"

    async def critique(self, request: CritiqueRequest) -> tuple[str, str]:
        return self.verdict(request)


def make_critic(spec: dict[str, Any] | None, *, suite: str) -> Critic:
    """The critic a recipe's `env.options.critic` describes ({kind: rule} when None) for wrapped
    suite `suite` (which decides the format check)."""
    spec = dict(spec or {"kind": "rule"})
    kind = spec.pop("kind", "rule")
    if kind not in CRITIC_KINDS:
        raise ValueError(f"env.options.critic.kind={kind!r}: allowed are {list(CRITIC_KINDS)}")
    rule = FORMAT_CHECKS.get(suite, blank_answer)
    if kind == "rule":
        unknown = sorted(set(spec) - {"reveal_answer"})
        if unknown:
            raise ValueError(f"env.options.critic: unknown {unknown} for kind 'rule'; allowed "
                             "are ['kind', 'reveal_answer']")
        return RuleCritic(format_check=rule, **spec)
    # A model critic needs an inference engine, which the trainer layer builds from an engine
    # section (trainer/engine_factory); it is imported only when a recipe asks for one.
    from ...trainer.critic import ModelCritic

    return ModelCritic.from_options(spec, verdict=RuleCritic(format_check=rule))
