"""Importance correction between the policy that generated the tokens and the one trained on them.

Three policies meet in an off-policy update (decoupled PPO, Hilton et al. 2022; AReaL):
behaviour (the engine's weights when it sampled, maybe several versions old, maybe other
kernels), proximal (the trainer's weights before this update, recomputed with
`train.old_logprobs: recompute`) and the one being optimised. PPO clips the ratio to the
proximal policy; the gap from behaviour to proximal is corrected by the weight
w = pi_prox / pi_behav, per token or per row (the product over the row's loss tokens):

- `truncate`: min(w, cap) (truncated IS; verl's TIS),
- `mask`: w where w <= cap, else 0 (AReaL's behaviour-weight cap drops such tokens).

The weight is positive and constant in the update, so multiplying a token's advantage by it is
the same as multiplying its clipped loss (dual clip included).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MODES = ("truncate", "mask")
LEVELS = ("token", "sequence")
_MAX_LOG_WEIGHT = 20.0  # exp() past this overflows float32 long before it means anything


@dataclass(frozen=True)
class Correction:
    """How behaviour -> proximal importance weights are formed (`loss.is_correction`)."""

    mode: str = "mask"
    level: str = "token"
    cap: float = 2.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"loss.is_correction.mode={self.mode!r}: allowed are {list(MODES)}")
        if self.level not in LEVELS:
            raise ValueError(f"loss.is_correction.level={self.level!r}: allowed are {list(LEVELS)}")
        if not self.cap > 1.0:
            raise ValueError(f"loss.is_correction.cap={self.cap}: must be > 1 (a weight of 1 is "
                             f"on-policy)")


def importance_weights(proximal: torch.Tensor, behaviour: torch.Tensor, mask: torch.Tensor,
                       correction: Correction) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token weights [B, L] (0 off the mask) and their statistics over the loss tokens:
    `weight_mean`, and `truncated_frac` or `masked_frac` (tokens whose weight passed the cap)."""
    log_w = (proximal - behaviour) * mask
    if correction.level == "sequence":
        log_w = log_w.sum(-1, keepdim=True).expand_as(mask)
    raw = torch.exp(log_w.clamp(max=_MAX_LOG_WEIGHT))
    over = (raw > correction.cap) & (mask > 0)
    if correction.mode == "truncate":
        weights = raw.clamp(max=correction.cap)
    else:
        weights = torch.where(over, torch.zeros_like(raw), raw)
    weights = weights * mask
    tokens = float(mask.sum().clamp(min=1.0))
    name = "truncated_frac" if correction.mode == "truncate" else "masked_frac"
    return weights, {"weight_mean": float(weights.sum()) / tokens,
                     name: float(over.sum()) / tokens}
