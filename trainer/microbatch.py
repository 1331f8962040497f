"""Splitting a mini-batch into micro-batches by a token budget, not a row count."""

from __future__ import annotations

import torch

from ..rollouts.batch import RolloutBatch


def micro_batches(batch: RolloutBatch, token_budget: int, *, packed: bool,
                  by_length: bool = False) -> list[RolloutBatch]:
    """Row slices that each fit `token_budget` tokens of model input.

    Packed, a slice costs the sum of its row lengths; padded, rows x its longest row. A row
    longer than the budget is a micro-batch of its own (rows are never split). Slices are
    consecutive rows, or with `by_length` (padded only) rows taken longest first, so rows of
    similar length share a slice and little padding is computed: for callers that sum over
    the slices (a gradient) and never map results back to rows.
    """
    lengths = batch.row_lengths()
    order = torch.argsort(lengths, descending=True, stable=True) if by_length and not packed \
        else torch.arange(len(lengths))
    lengths = lengths[order].tolist()
    slices: list[RolloutBatch] = []
    start, longest, total = 0, 0, 0
    for i, length in enumerate(lengths):
        widest, summed = max(longest, length), total + length
        cost = summed if packed else widest * (i - start + 1)
        if i > start and cost > token_budget:
            slices.append(batch.select(order[start:i]))
            start, widest, summed = i, length, length
        longest, total = widest, summed
    if lengths:
        slices.append(batch.select(order[start:]))
    return slices


def padding_micro_batch(like: RolloutBatch) -> RolloutBatch:
    """One two-token row with an all-zero loss mask.

    Under DeepSpeed every rank must run the same number of forward/backward passes (ZeRO-3
    gathers parameters collectively in each one); a rank with fewer micro-batches runs these.
    """
    return RolloutBatch(
        input_ids=like.input_ids[:1, :1].new_zeros((1, 2)),
        attention_mask=like.attention_mask.new_ones((1, 2)),
        loss_mask=like.loss_mask.new_zeros((1, 2)),
        old_logprobs=like.old_logprobs.new_zeros((1, 2)),
        advantages=like.advantages.new_zeros((1, 2)),
        turn_index=like.turn_index.new_full((1, 2), -1),
        row_traj=like.row_traj.new_zeros(1),
        row_group=like.row_group.new_zeros(1),
        row_version=like.row_version.new_zeros(1),
        ref_logprobs=None if like.ref_logprobs is None else like.ref_logprobs.new_zeros((1, 2)),
        prox_alpha=None if like.prox_alpha is None else like.prox_alpha.new_zeros((1, 2)),
    )


def rows_with_tokens(batch: RolloutBatch) -> float:
    """Rows that have at least one loss-mask token (what seq-mean aggregations divide by)."""
    return float((batch.loss_mask.sum(-1) > 0).sum())

