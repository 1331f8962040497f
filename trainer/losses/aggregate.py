"""Reducing per-token losses to one scalar, so that micro-batches add up to the whole batch."""

from __future__ import annotations

import torch

AGGREGATIONS = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean")


def aggregate(values: torch.Tensor, mask: torch.Tensor, agg: str, *, total_tokens: float,
              total_rows: float) -> torch.Tensor:
    """Reduce per-token `values` [B, L] to a scalar.

    - token-mean: sum over all tokens / total_tokens (DAPO; long answers weigh more)
    - seq-mean-token-sum: per-row sums, averaged over rows (Dr.GRPO-style, no length division)
    - seq-mean-token-mean: per-row means, averaged over rows (original GRPO)

    The totals are those of the whole mini-batch (on every rank), so summing this over
    micro-batches and ranks gives the value and the gradient of one pass over the mini-batch.
    `total_rows` counts only rows with at least one loss token: a row with none (an episode cut
    before it generated anything trainable) neither adds to a sequence mean nor dilutes it.
    """
    if agg == "token-mean":
        return (values * mask).sum() / max(total_tokens, 1.0)
    per_row = (values * mask).sum(-1)
    if agg == "seq-mean-token-mean":
        per_row = per_row / mask.sum(-1).clamp(min=1.0)
    elif agg != "seq-mean-token-sum":
        raise ValueError(f"loss.agg={agg!r}: allowed are {list(AGGREGATIONS)}")
    return per_row.sum() / max(total_rows, 1.0)
