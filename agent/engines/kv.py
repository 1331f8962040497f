"""The KV cache of the rows the hf engine is decoding, left-padded so rows can join and leave.

Rows of different lengths share one cache tensor per layer, aligned at the right: a row that
joins is left-padded to the batch's width (or the batch to its width), and when rows leave,
columns that are padding for every remaining row are cut so the cache does not keep growing.
"""

from __future__ import annotations

import inspect

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class BatchState:
    """KV cache, attention mask and next-token logits of the rows in flight."""

    cache: Any  # transformers DynamicCache
    mask: torch.Tensor  # [rows, width] long, 0 on left padding
    next_logits: torch.Tensor  # [rows, vocab] float
    last_tokens: torch.Tensor | None = None  # [rows] the tokens sampled last, fed next

    def select(self, keep: list[int]) -> BatchState:
        """The state of rows `keep` only, trimmed of columns that became all padding."""
        index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        self.cache.batch_select_indices(index)
        mask = self.mask.index_select(0, index)
        first = int((mask.cumsum(-1) == 0).sum(-1).min())
        if first:
            mask = mask[:, first:]
            for layer in self.cache.layers:
                layer.keys = layer.keys[..., first:, :]
                layer.values = layer.values[..., first:, :]
        last = self.last_tokens.index_select(0, index) if self.last_tokens is not None else None
        return BatchState(self.cache, mask, self.next_logits.index_select(0, index), last)

    def merge(self, other: BatchState) -> BatchState:
        """Stack `other`'s rows below these, left-padding the narrower cache."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.keys = torch.cat([_left_pad(mine.keys, width), _left_pad(theirs.keys, width)])
            mine.values = torch.cat(
                [_left_pad(mine.values, width), _left_pad(theirs.values, width)])
        mask = torch.cat([_left_pad(self.mask, width, dim=1), _left_pad(other.mask, width, dim=1)])
        logits = torch.cat([self.next_logits, other.next_logits])
        return BatchState(self.cache, mask, logits)


def left_padded(prompts: list[list[int]], pad_id: int, device: torch.device):
    """Ids and attention mask of `prompts`, right-aligned; position ids that skip the padding."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        mask[i, width - len(prompt):] = 1
    ids, mask = ids.to(device), mask.to(device)
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def _left_pad(tensor: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def cache_argument(model: torch.nn.Module) -> str:
    """The forward's name for a KV cache: `cache` from transformers 5.24, `past_key_values`
    before. Wrappers (DeepSpeed's engine, PEFT) are unwrapped to the transformers model."""
    inner = model
    while True:
        if hasattr(inner, "get_base_model"):
            inner = inner.get_base_model()
        elif isinstance(getattr(inner, "module", None), torch.nn.Module):
            inner = inner.module
        else:
            break
    params = inspect.signature(inner.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def returned_cache(out):
    """The KV cache a forward returned, under either name (see `cache_argument`)."""
    return out["cache"] if "cache" in out else out["past_key_values"]
