"""Per-token log-probabilities and entropies of a causal LM, padded or packed without padding."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .shared_prefix import plan, shared_prefix_forward


def token_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    entropy_grad: bool = False,
    packed: bool = False,
    needed: torch.Tensor | None = None,
    groups: torch.Tensor | None = None,
    always_share: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`out[b, j]` = log p(input_ids[b, j] | input_ids[b, :j]) at `temperature`; `out[:, 0]` = 0.

    Right-padded rows; positions restart at 0 in every row. With `packed`, the rows are laid end
    to end in one sequence whose position ids restart at each row (transformers then attends
    block-diagonally), so no compute goes to padding; the result has the padded layout either way.
    With `with_entropy`, also the entropy of the predictive distribution at each position
    (differentiable only with `entropy_grad`, since keeping its graph costs a [T, V] tensor).
    With `needed` ([B, L], e.g. the loss mask), only the tokens it marks are scored (the others
    come back 0): the LM head and the softmax over the vocabulary run on those positions alone.
    With `needed` and `groups` ([B], rows that may start alike), each group's common prefix is
    run once and shared as a KV cache (trainer/shared_prefix.py) where that saves enough, or
    (`always_share`, for ZeRO-3) in every call.
    """
    if groups is not None and needed is not None and not packed:
        sharing = plan(input_ids, attention_mask, needed, groups, always=always_share)
        if sharing is not None:
            logits, targets, keep = shared_prefix_forward(model, input_ids, attention_mask, needed,
                                                          *sharing, _head_only_at)
            picked, entropy = _score(logits, targets, temperature, with_entropy, entropy_grad)
            width = input_ids.shape[1]
            return (_unkeep(picked, keep)[:, :width],
                    None if entropy is None else _unkeep(entropy, keep)[:, :width])
    if packed:
        return _packed(model, input_ids, attention_mask, temperature, with_entropy, entropy_grad,
                       needed)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    if needed is not None:
        # The hidden state at j predicts token j + 1: keep j where token j + 1 is needed.
        keep = F.pad(needed[:, 1:].bool(), (0, 1))
        with _head_only_at(model, keep):
            logits = model(input_ids=input_ids, attention_mask=attention_mask,
                           position_ids=positions, use_cache=False).logits[0]
        picked, entropy = _score(logits, input_ids[:, 1:][keep[:, :-1]], temperature,
                                 with_entropy, entropy_grad)
        return _unkeep(picked, keep), None if entropy is None else _unkeep(entropy, keep)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                   use_cache=False).logits[:, :-1]
    picked, entropy = _score(logits, input_ids[:, 1:], temperature, with_entropy, entropy_grad)
    zeros = picked.new_zeros((picked.shape[0], 1))
    logprobs = torch.cat([zeros, picked], dim=1)
    if entropy is not None:
        entropy = torch.cat([zeros, entropy], dim=1)
    return logprobs, entropy


def _packed(model, input_ids, attention_mask, temperature, with_entropy, entropy_grad, needed):
    valid = attention_mask.bool()
    lengths = attention_mask.sum(-1)
    flat = input_ids[valid]  # row-major: each row's tokens stay contiguous and in order
    starts = torch.cumsum(lengths, 0) - lengths
    positions = torch.arange(flat.numel(), device=flat.device) - torch.repeat_interleave(starts, lengths)
    first = positions[1:] == 0  # the first token of a row has no prediction inside its row
    # No attention mask: transformers reads the position-id resets as sequence boundaries.
    inputs = {"input_ids": flat.unsqueeze(0), "position_ids": positions.unsqueeze(0),
              "use_cache": False}
    if needed is not None:
        keep = F.pad(needed[valid][1:].bool() & ~first, (0, 1)).unsqueeze(0)
        with _head_only_at(model, keep):
            logits = model(**inputs).logits[0]
        picked, entropy = _score(logits, flat[1:][keep[0, :-1]], temperature, with_entropy,
                                 entropy_grad)
        picked = _unkeep(picked, keep)[0]
        entropy = None if entropy is None else _unkeep(entropy, keep)[0]
    else:
        logits = model(**inputs).logits[0, :-1]
        picked, entropy = _score(logits, flat[1:], temperature, with_entropy, entropy_grad)
        picked = torch.cat([picked.new_zeros(1), picked.masked_fill(first, 0.0)])
        if entropy is not None:
            entropy = torch.cat([entropy.new_zeros(1), entropy.masked_fill(first, 0.0)])
    logprobs = torch.zeros(input_ids.shape, dtype=picked.dtype, device=picked.device)
    logprobs = logprobs.masked_scatter(valid, picked)
    if entropy is not None:
        entropy = torch.zeros_like(logprobs).masked_scatter(valid, entropy)
    return logprobs, entropy


@contextlib.contextmanager
def _head_only_at(model: torch.nn.Module, keep: torch.Tensor) -> Iterator[None]:
    """Inside, the LM head sees only the hidden states where `keep` ([B, L]) is true, as one
    [1, N, H] row, so the model returns logits [1, N, V]; what the model does after its head
    (soft-capping, scaling) still applies."""
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output embeddings (LM head) to score with")

    def select(_module, args):
        return (args[0][keep].unsqueeze(0), *args[1:])

    handle = head.register_forward_pre_hook(select)
    try:
        yield
    finally:
        handle.remove()


def _unkeep(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Scores of the kept positions ([N]) back to [B, L]: the score predicted at j is token
    j + 1's, so it lands one place to the right; 0 elsewhere."""
    return values.new_zeros(keep.shape).masked_scatter(F.pad(keep[:, :-1], (1, 0)), values)


def _score(logits: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool,
           entropy_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(target) under softmax(logits / T), and optionally the entropy, in float32."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logz = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logz
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            probs = torch.softmax(logits, dim=-1)
            entropy = logz - (probs * logits).sum(-1)
    return picked, entropy


def packing_error(model: torch.nn.Module, *, vocab_size: int, device: torch.device) -> float:
    """Largest |packed - padded| logprob on two short random rows (0 where packing works)."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab_size, (2, 6), generator=generator).to(device)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2], device=device)
    with torch.no_grad():
        padded, _ = token_logprobs(model, ids, mask)
        packed, _ = token_logprobs(model, ids, mask, packed=True)
    return float(((padded - packed).abs() * mask).max())
