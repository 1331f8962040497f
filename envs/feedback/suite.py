"""The `feedback` suite: any suite with final answers, played with feedback turns.

    env:
      name: feedback
      options:
        suite: search_qa                       # the wrapped suite
        suite_options: {parser: xml, top_k: 3}  # its own options
        kind: try_again                        # or critique
        max_attempts: 3
        decay: 0.5

Tasks, oracle, tokenizer corpus and tools are the wrapped suite's; the system prompt too, so
SFT demonstrations (the oracle answers right at the first attempt) are the very same.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..base import (
    EnvSuite,
    Task,
    make_suite,
    register_suite,
    suite_tool_metrics,
    suite_tool_schemas,
)
from .critics import Critic, make_critic
from .env import TRY_AGAIN, FeedbackEnv, FeedbackSettings
from .stats import FeedbackStats


class FeedbackSuite:
    """`inner` with feedback turns; `critic` writes the critiques of `kind: critique`."""

    name = "feedback"

    def __init__(self, inner: EnvSuite, settings: FeedbackSettings, *,
                 critic: Critic | None = None) -> None:
        if (critic is None) != (settings.kind == "try_again"):
            raise ValueError(f"feedback kind={settings.kind!r}: a critic is needed by kind "
                             "'critique' and only by it")
        self.inner, self.settings, self.critic = inner, settings, critic
        self.stats = FeedbackStats(settings.max_attempts)

    def make(self) -> FeedbackEnv:
        """A fresh wrapped environment for one episode."""
        return FeedbackEnv(self.inner.make(), self.settings, critic=self.critic, stats=self.stats)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        return self.inner.tasks(split, count, seed)

    def oracle(self, task: Task):
        return self.inner.oracle(task)

    def corpus(self) -> Iterable[str]:
        yield from self.inner.corpus()
        yield self.settings.text

    def tool_schemas(self) -> list[dict[str, Any]] | None:
        return suite_tool_schemas(self.inner)

    def tool_metrics(self, *, reset: bool = False) -> dict[str, float]:
        """The wrapped suite's tool counters and the `feedback/...` per-attempt metrics of the
        episodes since the last reset."""
        return {**suite_tool_metrics(self.inner, reset=reset), **self.stats.summary(reset=reset)}

    async def close(self) -> None:
        """Stop a model critic's engine (a rule critic holds nothing)."""
        close = getattr(self.critic, "close", None)
        if close is not None:
            await close()


@register_suite("feedback")
def feedback_suite(suite: str, suite_options: dict[str, Any] | None = None, *,
                   kind: str = "try_again", max_attempts: int = 3, decay: float = 0.5,
                   text: str = TRY_AGAIN, repeat_penalty: float = 0.0,
                   critic: dict[str, Any] | None = None) -> FeedbackSuite:
    """The registered suite `suite` (with `suite_options`) wrapped with feedback turns; `critic`
    ({kind: rule | model, ...}) applies to kind 'critique' only."""
    if suite == "feedback":
        raise ValueError("env.options.suite='feedback': the wrapped suite must be another one")
    if critic is not None and kind != "critique":
        raise ValueError(f"env.options.critic is set with kind={kind!r}; it applies to kind "
                         "'critique' only")
    settings = FeedbackSettings(kind=kind, max_attempts=max_attempts, decay=decay, text=text,
                                repeat_penalty=repeat_penalty)
    try:
        inner = make_suite(suite, **(suite_options or {}))
    except ValueError as exc:
        raise ValueError(f"env.options.suite={suite!r}: {exc}") from None
    chosen = make_critic(critic, suite=suite) if kind == "critique" else None
    return FeedbackSuite(inner, settings, critic=chosen)
