"""Scoring rows that start alike once: a shared prefix is run once per group, not once per row.

The G completions of a GRPO group repeat one prompt; per-step rows of a task repeat its system
prompt and task. An update only needs logprobs of response tokens, yet a plain forward computes
every prompt token once per row. Here each group's common prefix goes through the model once
(with gradient), its keys and values are handed to every row of the group as a KV cache, and
only the rows' own suffixes are run: the transformer computes exactly the same function, so
logprobs and gradients equal the plain forward's up to float rounding (tested), while the
prefix's compute is paid once per group.

The prefix stops before the first scored token's predecessor, so every scored prediction comes
from the suffix pass. Sharing is verified on the tokens (`row_group` only proposes who may
share); a micro-batch where it would save under `MIN_SAVING` of the tokens is left to the plain
forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..agent.engines.kv import cache_argument, returned_cache

MIN_SAVING = 0.1  # share only if at least this fraction of a micro-batch's tokens is skipped


def plan(input_ids: torch.Tensor, attention_mask: torch.Tensor, needed: torch.Tensor,
         groups: torch.Tensor, *, always: bool = False
         ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(prefix length per row [B], index of the row's sharing group [B]), or None when sharing
    would save too little. Rows of one group share their first `P` tokens, where `P` is their
    common prefix, cut so that no row has a scored token at or before `P`. A row whose group
    shares nothing is a group of its own (its prompt is its prefix).

    With `always`, every micro-batch is split, however little it saves: under ZeRO-3 each
    forward gathers parameters collectively, so all ranks must run the same two passes."""
    lengths = attention_mask.sum(-1)
    width = input_ids.shape[1]
    positions = torch.arange(width, device=input_ids.device).expand_as(input_ids)
    # The prediction of token j comes from position j - 1, which must lie in the suffix.
    first_needed = torch.where(needed.bool(), positions, width).min(-1).values
    limit = torch.minimum(first_needed, lengths) - 1
    distinct, index = torch.unique(groups, return_inverse=True)
    index = index.clone()
    prefix = limit.clone()  # a row alone: its whole prompt is its (unshared) prefix
    alone = len(distinct)
    for g in range(len(distinct)):
        rows = (index == g).nonzero().squeeze(-1)
        if len(rows) > 1:
            same = (input_ids[rows] == input_ids[rows[0]]).long().cumprod(-1).sum(-1)
            shared = int(torch.minimum(same, limit[rows]).min())
            if shared > 0:
                prefix[rows] = shared
                continue
            for row in rows[1:].tolist():  # nothing in common: each row on its own
                index[row], alone = alone, alone + 1
    # A row without a prefix would be all padding in the prefix pass (NaN attention).
    if bool((prefix <= 0).any()):
        if always:
            raise ValueError("train.share_prefix under ZeRO-3: a row is trained on its second "
                             "token, so it has no prompt to split off; set train.share_prefix="
                             "false for such data")
        return None
    index = torch.unique(index, return_inverse=True)[1]
    counts = torch.bincount(index)
    group_prefix = torch.zeros(len(counts), dtype=prefix.dtype, device=prefix.device)
    group_prefix.scatter_reduce_(0, index, prefix, reduce="amax", include_self=False)
    saved = int(((counts - 1) * group_prefix).sum())
    if not always and saved < MIN_SAVING * int(lengths.sum()):
        return None
    return prefix, index


def shared_prefix_forward(model: torch.nn.Module, input_ids: torch.Tensor,
                          attention_mask: torch.Tensor, needed: torch.Tensor,
                          prefix: torch.Tensor, index: torch.Tensor, head_only_at
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The LM head's logits [N, V] at the positions predicting `needed` tokens, the tokens they
    predict [N], and `keep` [B, L + S] (where those positions are, as `_unkeep` wants them, on a
    layout `S` wider than the input so every suffix fits; callers slice it back to L)."""
    device = input_ids.device
    rows = torch.arange(len(prefix), device=device)
    first = torch.zeros(int(index.max()) + 1, dtype=torch.long, device=device)
    first.scatter_reduce_(0, index, rows, reduce="amin", include_self=False)
    group_prefix = prefix[first]
    width = int(group_prefix.max())
    offsets = torch.arange(width, device=device)
    prefix_mask = (offsets < group_prefix.unsqueeze(-1)).long()
    prefix_ids = input_ids[first, :width] * prefix_mask
    nothing = torch.zeros(prefix_ids.shape, dtype=torch.bool, device=device)
    with head_only_at(model, nothing):  # the prefix needs no logits
        out = model(input_ids=prefix_ids, attention_mask=prefix_mask,
                    position_ids=offsets.expand_as(prefix_ids), use_cache=True)
    cache = returned_cache(out)
    cache.reorder_cache(index)  # each row gets its group's keys and values (a gather: grads add up)

    lengths = attention_mask.sum(-1)
    suffix_len = lengths - prefix
    span = int(suffix_len.max())
    steps = torch.arange(span, device=device)
    where = prefix.unsqueeze(-1) + steps  # the suffix's positions in the row
    suffix_mask = steps < suffix_len.unsqueeze(-1)
    clamp = where.clamp(max=input_ids.shape[1] - 1)
    suffix_ids = input_ids.gather(1, clamp) * suffix_mask
    suffix_needed = needed.gather(1, clamp).bool() & suffix_mask
    keep = F.pad(suffix_needed[:, 1:], (0, 1))
    with head_only_at(model, keep):
        logits = model(input_ids=suffix_ids,
                       attention_mask=torch.cat([prefix_mask[index], suffix_mask.long()], dim=1),
                       position_ids=where, use_cache=True, **{cache_argument(model): cache}
                       ).logits[0]
    targets = suffix_ids[:, 1:][keep[:, :-1]]
    # Back to row coordinates: suffix position s of row r is column prefix[r] + s.
    layout = torch.zeros((len(prefix), input_ids.shape[1] + span), dtype=torch.bool, device=device)
    layout.scatter_(1, where, keep)
    return logits, targets, layout
