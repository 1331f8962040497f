"""Policy losses (a registry), KL estimators, aggregation, and the RL and SFT objectives."""

from . import policy as _policy  # noqa: F401  (registers ppo_clip and gspo)
from .aggregate import AGGREGATIONS, aggregate
from .kl import KL_ESTIMATORS, kl_estimate
from .correction import (
    Correction,
    correction_weights,
    importance_weights,
    loglinear_alpha,
    loglinear_proximal,
    over_name,
)
from .objective import RLObjective, Totals, sft_objective
from .policy import clipped_surrogate, gspo, ppo_clip
from .registry import get_policy_loss, policy_loss_names, register_policy_loss

__all__ = [
    "AGGREGATIONS", "KL_ESTIMATORS", "Correction", "RLObjective", "Totals", "aggregate",
    "clipped_surrogate", "correction_weights", "get_policy_loss", "gspo", "importance_weights",
    "kl_estimate", "loglinear_alpha", "loglinear_proximal", "over_name",
    "policy_loss_names", "ppo_clip", "register_policy_loss", "sft_objective",
]
