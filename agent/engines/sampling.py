"""Choosing the next token for a batch of rows, each with its own `SamplingParams`.

Logprobs are those of the tempered distribution before top-k / top-p filtering (what the
trainer recomputes); filters only decide which token is drawn. Greedy rows (temperature 0)
report logprobs at temperature 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import SamplingParams


def tempered_logprobs(logits: torch.Tensor, params: Sequence[SamplingParams]) -> torch.Tensor:
    """log_softmax(logits / T) row by row (T = 1 for greedy rows)."""
    temps = torch.tensor([p.temperature or 1.0 for p in params], device=logits.device)
    return torch.log_softmax(logits / temps.unsqueeze(-1), dim=-1)


def choose(logprobs: torch.Tensor, params: Sequence[SamplingParams],
           generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """One token id per row, drawn as each row's params say."""
    if all(_plain(p, g) for p, g in zip(params, generators)):  # the common case: one draw
        return torch.multinomial(logprobs.exp(), 1).squeeze(-1)
    return torch.stack([_choose_row(logprobs[i], p, g)
                        for i, (p, g) in enumerate(zip(params, generators))])


def top_logprobs(logprobs: torch.Tensor, n: int) -> dict[int, float]:
    """The `n` most likely tokens of one row and their logprobs."""
    values, indices = logprobs.topk(n)
    return dict(zip(indices.tolist(), values.tolist()))


def _plain(params: SamplingParams, generator: torch.Generator | None) -> bool:
    return (generator is None and params.temperature > 0 and params.top_k == 0
            and params.top_p == 1.0)


def _choose_row(logprobs: torch.Tensor, params: SamplingParams,
                generator: torch.Generator | None) -> torch.Tensor:
    if params.temperature == 0:
        return logprobs.argmax()
    scores = logprobs
    if params.top_k and params.top_k < scores.shape[-1]:
        kth = scores.topk(params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = scores.sort(descending=True)
        probs = sorted_scores.softmax(-1)
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        drop = probs.cumsum(-1) - probs >= params.top_p
        scores = scores.scatter(-1, order, sorted_scores.masked_fill(drop, float("-inf")))
    return torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(-1)
