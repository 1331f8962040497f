"""The inference-engine contract: token ids in, token ids and their logprobs out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one completion. `top_k=0` and `top_p=1.0` switch those filters off."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()  # the completion ends with the token that completes one
    stop_token_ids: tuple[int, ...] = ()  # ...or with one of these tokens (included)
    ignore_eos: bool = False  # generate max_tokens whatever comes (benchmarks)
    # The `top_logprobs` most likely tokens at each of the first `top_logprobs_tokens`
    # positions (0: every position); ARPO measures entropy on them.
    top_logprobs: int = 0
    top_logprobs_tokens: int = 0
    seed: int | None = None  # same seed, same prompt, same weights: same tokens

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens={self.max_tokens}: must be >= 1")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature}: must be >= 0 (0 is greedy)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p}: must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError(f"top_k={self.top_k}: must be >= 0 (0 is off)")
        if self.top_logprobs < 0 or self.top_logprobs_tokens < 0:
            raise ValueError(f"top_logprobs={self.top_logprobs}, top_logprobs_tokens="
                             f"{self.top_logprobs_tokens}: must be >= 0")
        if any(not s for s in self.stop):
            raise ValueError(f"stop={self.stop!r}: stop strings must be non-empty")

    def wants_top_logprobs(self, position: int) -> bool:
        """Whether generated position `position` (0-based) reports top logprobs."""
        return self.top_logprobs > 0 and (
            self.top_logprobs_tokens == 0 or position < self.top_logprobs_tokens)


@dataclass
class Completion:
    """One generated continuation, exactly as the engine produced it.

    `logprobs[i]` is the log-probability of `token_ids[i]` under the policy at the sampling
    temperature (before top-p/top-k filtering), which is what the trainer recomputes.
    `top_logprobs[i]` maps token id -> logprob (same distribution) for the most likely tokens
    at step i. `version` is the policy version that started the completion: the oldest one
    that contributed to it if weights changed while it was generated. `token_versions[i]` is the
    version whose weights sampled `token_ids[i]` (None: every token came from `version`).
    """

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: FinishReason
    version: int = 0
    token_versions: list[int] | None = None
    top_logprobs: list[dict[int, float]] | None = None
    stop_reason: str | int | None = None  # the stop string or token that ended it
    prompt_tokens: int = 0
    gen_seconds: float = 0.0
    info: dict = field(default_factory=dict)


class ChatPrompt(list):
    """Prompt token ids that also carry the chat messages they render.

    Every engine reads the ids; a text-only engine (`openai`, for evaluation) sends the
    messages instead, since a chat endpoint takes messages, not ids. `rollouts.Episode` builds
    its prompts this way; an id list that is not a ChatPrompt has no messages.
    """

    def __init__(self, ids: Iterable[int], messages: list[dict]) -> None:
        super().__init__(ids)
        self.messages = [dict(m) for m in messages]  # a snapshot: the conversation goes on


@runtime_checkable
class InferenceEngine(Protocol):
    """What the rollout side needs from a model server; `hf`, `vllm` and `server` implement it."""

    version: int

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *,
                       session: str | None = None) -> Completion:
        """Sample one continuation of `prompt_ids`. `session` names the episode it belongs to:
        an engine with several servers sends a session's requests to one server (its prefix
        cache holds the episode so far); engines with one model ignore it."""

    def load_weights(self, named_tensors: Iterable[tuple[str, object]], version: int) -> None:
        """Replace the served weights in place (no restart) and serve as policy `version`."""

    async def sleep(self) -> None:
        """Stop serving and free accelerator memory for a colocated trainer; in-flight work ends
        first."""

    async def wake(self) -> None:
        """Serve again, with the same weights as before sleep."""

    async def close(self) -> None: ...
