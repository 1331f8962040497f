"""The full per-micro-batch objectives: RL (policy loss + KL + entropy bonus) and SFT (NLL)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...rollouts.batch import RolloutBatch
from .aggregate import aggregate
from .correction import Correction, correction_weights, loglinear_proximal, over_name
from .kl import kl_estimate
from .registry import get_policy_loss


@dataclass(frozen=True)
class Totals:
    """Loss-mask tokens and rows with at least one such token, over the whole mini-batch."""

    tokens: float
    rows: float


@dataclass(frozen=True)
class RLObjective:
    """What `loss` and `kl` in a recipe ask for; called once per micro-batch."""

    policy: str = "ppo_clip"
    clip_low: float = 0.2
    clip_high: float = 0.2
    dual_clip: float | None = 3.0
    agg: str = "token-mean"
    entropy_coef: float = 0.0
    kl_coef: float = 0.0  # as a loss term; a reward penalty is applied before credit instead
    kl_estimator: str = "low_var_kl"
    kl_bias_correction: bool = False  # the KL term times pi / pi_old (differentiable), as TRL
    # behaviour -> proximal weights formed here when the batch carries `prox_alpha`
    # (train.old_logprobs=loglinear); otherwise the credit stage folded them into the advantages
    correction: Correction | None = None

    @property
    def needs_entropy_grad(self) -> bool:
        return self.entropy_coef != 0.0

    def __call__(self, logprobs: torch.Tensor, entropy: torch.Tensor | None, micro: RolloutBatch,
                 totals: Totals) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar loss to backpropagate and per-token statistics (masked sums by the caller)."""
        mask = micro.loss_mask
        proximal, advantages, stats = self._proximal(logprobs, micro)
        per_token, policy_stats = get_policy_loss(self.policy)(
            logprobs, proximal, advantages, mask, clip_low=self.clip_low,
            clip_high=self.clip_high, dual_clip=self.dual_clip)
        stats.update(policy_stats)
        stats["pg_loss"] = per_token.detach()
        stats["logprob_diff"] = (logprobs.detach() - micro.old_logprobs).abs()
        total = per_token
        if self.kl_coef:
            if micro.ref_logprobs is None:
                raise ValueError("kl.coef > 0 with kl.target='loss' needs batch.ref_logprobs")
            kl = kl_estimate(logprobs, micro.ref_logprobs, self.kl_estimator)
            if self.kl_bias_correction:
                kl = kl * torch.exp((logprobs - proximal).clamp(-20.0, 20.0))
            total = total + self.kl_coef * kl
            stats["ref_kl"] = kl.detach()
        if entropy is not None:
            if self.entropy_coef:
                total = total - self.entropy_coef * entropy
            stats["entropy"] = entropy.detach()
        loss = aggregate(total, mask, self.agg, total_tokens=totals.tokens, total_rows=totals.rows)
        return loss, stats

    def _proximal(self, logprobs: torch.Tensor, micro: RolloutBatch
                  ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The log-probs PPO clips against and the advantages it weighs: the batch's own, or,
        with `prox_alpha`, the log-linear proximal policy and the corrected advantages."""
        if micro.prox_alpha is None:
            return micro.old_logprobs, micro.advantages, {}
        proximal = loglinear_proximal(logprobs, micro.old_logprobs, micro.prox_alpha)
        if self.correction is None:
            return proximal, micro.advantages, {}
        weights, over = correction_weights(proximal, micro.old_logprobs, micro.loss_mask,
                                           self.correction)
        stats = {"offpolicy/weight_mean": weights, f"offpolicy/{over_name(self.correction)}": over}
        return proximal, micro.advantages * weights, stats


@dataclass(frozen=True)
class SFTObjective:
    """Mean negative log-likelihood of the loss-mask tokens (the demonstrations' responses).

    Scored at temperature 1, the model's own distribution: the rollout temperature is how RL
    samples, not what imitation fits (fitting softmax(z / 0.6) would scale every logit by 0.6).
    """

    temperature: float = 1.0

    def __call__(self, logprobs: torch.Tensor, entropy: torch.Tensor | None,
                 micro: RolloutBatch, totals: Totals) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        nll = -logprobs
        loss = aggregate(nll, micro.loss_mask, "token-mean", total_tokens=totals.tokens,
                         total_rows=totals.rows)
        stats = {"nll": nll.detach()}
        if entropy is not None:
            stats["entropy"] = entropy.detach()
        return loss, stats


sft_objective = SFTObjective()
