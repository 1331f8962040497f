"""ARPO's step entropy: how unsure the policy was over the first k tokens of a response.

As the reference rollout (dongguanting/ARPO, `vllm_rollout_with_tools.py`) computes it: for each
of the first k generated tokens take the logprobs the engine returned for that position (the
top-n, plus the sampled token when it fell outside them), pool all of them, sum -p log p over
the pool (a sum over positions, not a mean), and divide by ln |V|. The top-n truncation makes it
an approximation of the true entropy; a response shorter than k uses the tokens it has.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def first_tokens_entropy(
    top_logprobs: Sequence[dict[int, float]],
    token_ids: Sequence[int],
    logprobs: Sequence[float],
    *,
    k: int,
    vocab_size: int,
) -> float:
    """Sum over the first `k` positions of -sum p log p over their returned logprobs, / ln |V|."""
    if k < 1:
        raise ValueError(f"arpo.entropy_tokens={k}: must be >= 1")
    if vocab_size < 2:
        raise ValueError(f"vocab_size={vocab_size}: must be >= 2 to normalise by ln |V|")
    total = 0.0
    for position, top in enumerate(top_logprobs[:k]):
        pool = dict(top)
        if position < len(token_ids):
            pool.setdefault(token_ids[position], logprobs[position])
        total -= sum(math.exp(lp) * lp for lp in pool.values())
    return total / math.log(vocab_size)
