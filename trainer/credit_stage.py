"""The credit stage: from the groups a step trains on to the batch with per-token advantages.

One owner, one order: reward shaping, scoring passes (IGPO's answer log-probs), the batch, the
trainer's log-probs (proximal, reference), KL as a reward penalty, the estimator, per-token
assignment, and the importance correction between the engine's and the trainer's policy.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

from .. import credit
from ..rollouts.batch import RolloutBatch, build_batch, token_versions
from ..rollouts.trajectory import Trajectory
from .config import CreditConfig, KLConfig
from .igpo_scoring import score_answer_logprobs
from .losses import Correction, importance_weights, loglinear_alpha
from .reference import kl_penalised, masked_mean_abs_diff


@dataclass
class Credited:
    """What the update needs and what the run log shows of it."""

    trajectories: list[Trajectory]  # shaped copies (the rewards the estimator saw)
    batch: RolloutBatch
    per_turn: list[np.ndarray]
    metrics: dict[str, float]


def check_credit(cfg: CreditConfig) -> None:
    """Fail at start on estimator options it does not take, or on a penalty applied twice."""
    credit.check_options(cfg.estimator, cfg.options)
    own = inspect.signature(credit.get(cfg.estimator)).parameters
    if cfg.invalid_penalty and "invalid_penalty" in own:
        raise ValueError(
            f"credit.invalid_penalty={cfg.invalid_penalty} with estimator {cfg.estimator!r}, which "
            f"penalises invalid turns itself: set credit.options.invalid_penalty instead")


class CreditStage:
    """Built once per run; called once per step on the trajectories it trains on."""

    def __init__(self, cfg: CreditConfig, kl: KLConfig, *, backend, tokenizer, pad_id: int,
                 temperature: float, proximal: str, correction: Correction | None) -> None:
        """`proximal` is `train.old_logprobs`: `rollout` (the engine's log-probs), `recompute`
        (a forward pass of the trainer) or `loglinear` (interpolated in the loss)."""
        check_credit(cfg)
        self.cfg, self.kl = cfg, kl
        self.backend, self.tokenizer, self.pad_id = backend, tokenizer, pad_id
        self.temperature = temperature
        self.proximal, self.correction = proximal, correction

    def __call__(self, trajectories: list[Trajectory], version: int = 0) -> Credited:
        """`version`: the trainer's weights version, which the update starts from."""
        shaped = self._shaped(trajectories)
        # Groups whose episodes all scored alike give GRPO-style estimators no outcome signal.
        metrics = {"credit/flat_groups": credit.flat_group_fraction(shaped)}
        metrics.update(self._scoring_passes(shaped))
        batch = build_batch(shaped, pad_id=self.pad_id)
        behaviour = batch.old_logprobs  # the engine's, token for token
        if self.kl.coef:
            batch.ref_logprobs = self.backend.forward_logprobs(batch, reference=True)
        if self.proximal == "recompute":  # the trainer's weights before this update
            batch.old_logprobs = self.backend.forward_logprobs(batch)
            metrics["train/rollout_logprob_diff"] = masked_mean_abs_diff(
                batch.old_logprobs, behaviour, batch.loss_mask)
        elif self.proximal == "loglinear":  # no pass: the loss interpolates, and corrects
            alpha = loglinear_alpha(token_versions(batch, shaped), version) * batch.loss_mask
            batch.prox_alpha = alpha
            metrics["offpolicy/alpha_mean"] = float(alpha.sum() / batch.loss_mask.sum().clamp(min=1))
        if self.kl.coef and self.kl.target == "reward":
            shaped, metrics["train/ref_kl"] = kl_penalised(shaped, batch, self.kl)
        per_turn = credit.compute(self.cfg.estimator, shaped, self.cfg.options)
        credit.assign_advantages(batch, per_turn)
        if self.correction is not None and self.proximal == "recompute":
            weights, stats = importance_weights(batch.old_logprobs, behaviour, batch.loss_mask,
                                                self.correction)
            batch.advantages = batch.advantages * weights
            metrics.update({f"offpolicy/{k}": v for k, v in stats.items()})
        return Credited(shaped, batch, per_turn, metrics)

    def _shaped(self, trajectories: list[Trajectory]) -> list[Trajectory]:
        cfg = self.cfg
        out = trajectories
        if cfg.overlong is not None:
            out = credit.apply_overlong_penalty(out, max_tokens=cfg.overlong.max_tokens,
                                                buffer=cfg.overlong.buffer,
                                                factor=cfg.overlong.factor)
        if cfg.invalid_penalty:
            out = credit.apply_invalid_penalty(out, penalty=cfg.invalid_penalty)
        return out

    def _scoring_passes(self, trajectories: list[Trajectory]) -> dict[str, float]:
        if "answer_logprobs" not in credit.needs(self.cfg.estimator):
            return {}
        probe = self.cfg.answer_probe
        return score_answer_logprobs(
            self.backend.model, self.tokenizer, trajectories, lead_in=probe.lead_in,
            open_tag=probe.open_tag, close_tag=probe.close_tag, temperature=self.temperature,
            token_budget=probe.token_budget)
