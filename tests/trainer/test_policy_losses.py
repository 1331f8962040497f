"""Policy losses, KL estimators, aggregation, entropy bonus and importance corrections against
hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from turnwise.rollouts.batch import RolloutBatch
from turnwise.trainer.losses import (
    RLObjective,
    Totals,
    aggregate,
    get_policy_loss,
    gspo,
    kl_estimate,
    policy_loss_names,
    ppo_clip,
)
from turnwise.trainer.losses.correction import Correction, importance_weights, loglinear_alpha


def _tokens(ratios, advantages):
    """One row: old logprob -1 everywhere, new logprob -1 + ln(ratio), as leaf tensors."""
    old = torch.full((1, len(ratios)), -1.0)
    logp = (old + torch.log(torch.tensor([ratios]))).requires_grad_(True)
    return logp, old, torch.tensor([advantages]), torch.ones(1, len(ratios))


def test_ppo_clip_by_hand():
    # clip_low 0.2, clip_high 0.28, dual_clip 3:
    # t0 r=1.5, A=+1: max(-1.5, -1.28) = -1.28 (clipped high: no gradient)
    # t1 r=0.5, A=+1: max(-0.5, -0.8)  = -0.5  (below 1-low but A>0: not clipped; grad -A r = -0.5)
    # t2 r=0.5, A=-1: max(0.5, 0.8)    = 0.8   (clipped low: no gradient)
    # t3 r=4.0, A=-1: max(4.0, 1.28) = 4.0, dual cap -A*3 = 3.0 -> 3.0 (no gradient)
    # t4 r=1.0, A=+2: -2.0 (grad -A r = -2)
    logp, old, adv, mask = _tokens([1.5, 0.5, 0.5, 4.0, 1.0], [1.0, 1.0, -1.0, -1.0, 2.0])
    loss, stats = ppo_clip(logp, old, adv, mask, clip_low=0.2, clip_high=0.28, dual_clip=3.0)
    assert torch.allclose(loss, torch.tensor([[-1.28, -0.5, 0.8, 3.0, -2.0]]), atol=1e-6)
    loss.sum().backward()
    assert torch.allclose(logp.grad, torch.tensor([[0.0, -0.5, 0.0, 0.0, -2.0]]), atol=1e-6)
    assert stats["clipfrac_high"].tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0]]
    assert stats["clipfrac_low"].tolist() == [[0.0, 0.0, 1.0, 0.0, 0.0]]
    assert stats["dual_clipfrac"].tolist() == [[0.0, 0.0, 0.0, 1.0, 0.0]]
    # approx_kl = (r - 1) - ln r: 0.5 - 0.405465, -0.5 + 0.693147 (twice), 3 - 1.386294, 0
    expected = [0.094535, 0.193147, 0.193147, 1.613706, 0.0]
    assert torch.allclose(stats["approx_kl"], torch.tensor([expected]), atol=1e-5)


def test_ppo_clip_without_dual_clip_keeps_large_negative_losses():
    # r=4, A=-1: max(4.0, 1.28) = 4.0 and nothing caps it.
    logp, old, adv, mask = _tokens([4.0], [-1.0])
    loss, stats = ppo_clip(logp, old, adv, mask, clip_low=0.2, clip_high=0.28, dual_clip=None)
    assert loss.item() == pytest.approx(4.0)
    assert "dual_clipfrac" not in stats


def test_gspo_uses_one_ratio_per_row():
    # Row 0: log-ratios 0.2, -0.1 -> mean 0.05 -> s = e^0.05 = 1.051271 > 1 + 0.04: clipped to
    #        1.04 for A=+1 -> loss -1.04 on both tokens, no gradient.
    # Row 1: log-ratios 0.02, 0.0 -> mean 0.01 -> s = e^0.01 = 1.010050 inside [0.97, 1.04]:
    #        loss -1.010050 on both; d loss / d logp_t = -A * s = -1.010050 for each token
    #        (token-level PPO would give -e^0.02 = -1.020201 and -1.0).
    old = torch.full((2, 2), -1.0)
    logp = (old + torch.tensor([[0.2, -0.1], [0.02, 0.0]])).requires_grad_(True)
    adv, mask = torch.ones(2, 2), torch.ones(2, 2)
    loss, stats = gspo(logp, old, adv, mask, clip_low=0.03, clip_high=0.04, dual_clip=None)
    assert torch.allclose(loss, torch.tensor([[-1.04, -1.04], [-1.010050, -1.010050]]), atol=1e-6)
    loss.sum().backward()
    assert torch.allclose(logp.grad, torch.tensor([[0.0, 0.0], [-1.010050, -1.010050]]), atol=1e-6)
    assert stats["clipfrac_high"].tolist() == [[1.0, 1.0], [0.0, 0.0]]


def test_gspo_ignores_masked_tokens_in_the_row_ratio():
    # Log-ratios 0.1 and 5.0 with the second masked: s = e^0.1 = 1.105171; A = -1, clip_low 0.2:
    # max(1.105171, 1.105171) = 1.105171.
    old = torch.zeros(1, 2)
    logp = torch.tensor([[0.1, 5.0]])
    loss, _ = gspo(logp, old, -torch.ones(1, 2), torch.tensor([[1.0, 0.0]]), clip_low=0.2,
                   clip_high=0.2, dual_clip=None)
    assert loss[0, 0].item() == pytest.approx(math.exp(0.1), abs=1e-6)


def test_registry_names_and_unknown_loss():
    assert {"ppo_clip", "gspo"} <= set(policy_loss_names())
    assert get_policy_loss("gspo") is gspo
    with pytest.raises(ValueError, match=r"loss.policy='ppo2'.*allowed are \['gspo', 'ppo_clip'"):
        get_policy_loss("ppo2")


def test_kl_estimators_by_hand():
    # logp = -1.0, ref = -1.5, d = ref - logp = -0.5:
    # k1 = logp - ref = 0.5; k2 = 0.5 * 0.25 = 0.125; k3 = e^-0.5 - (-0.5) - 1 = 0.106531
    logp, ref = torch.tensor([-1.0]), torch.tensor([-1.5])
    assert kl_estimate(logp, ref, "k1").item() == pytest.approx(0.5)
    assert kl_estimate(logp, ref, "k2").item() == pytest.approx(0.125)
    assert kl_estimate(logp, ref, "k3").item() == pytest.approx(0.106531, abs=1e-6)
    assert kl_estimate(logp, ref, "low_var_kl").item() == pytest.approx(0.106531, abs=1e-6)
    # d = 30 is clamped to 20 and e^20 - 21 to 10.
    assert kl_estimate(torch.tensor([-30.0]), torch.tensor([0.0]), "k3").item() == 10.0
    with pytest.raises(ValueError, match="kl.estimator='k4'"):
        kl_estimate(logp, ref, "k4")


def test_aggregations_by_hand():
    # Rows [1, 2, 3] and [4, (0), (0)] with the last two tokens of row 1 masked:
    # token-mean = (1+2+3+4)/4 = 2.5; seq-mean-token-sum = (6 + 4)/2 = 5;
    # seq-mean-token-mean = (6/3 + 4/1)/2 = 3.
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    totals = {"total_tokens": 4.0, "total_rows": 2.0}
    assert aggregate(values, mask, "token-mean", **totals).item() == pytest.approx(2.5)
    assert aggregate(values, mask, "seq-mean-token-sum", **totals).item() == pytest.approx(5.0)
    assert aggregate(values, mask, "seq-mean-token-mean", **totals).item() == pytest.approx(3.0)
    # Mini-batch totals, not the micro-batch's own: row 1 alone in a batch of 4 tokens, 2 rows.
    assert aggregate(values[1:], mask[1:], "token-mean", **totals).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="loss.agg='sum'"):
        aggregate(values, mask, "sum", **totals)


def _micro(logp_old, adv, mask, ref=None) -> RolloutBatch:
    b, n = adv.shape
    return RolloutBatch(input_ids=torch.zeros(b, n, dtype=torch.long),
                        attention_mask=torch.ones(b, n, dtype=torch.long), loss_mask=mask,
                        old_logprobs=logp_old, advantages=adv,
                        turn_index=torch.zeros(b, n, dtype=torch.long),
                        row_traj=torch.arange(b), row_group=torch.zeros(b, dtype=torch.long),
                        row_version=torch.zeros(b, dtype=torch.long), ref_logprobs=ref)


def test_objective_adds_kl_term_and_entropy_bonus():
    # Two on-policy tokens (r = 1): pg = -A = [-1, +2]. Reference logprobs 0.5 lower, so
    # d = ref - logp = -0.5 and k3 = 0.106531 per token. Entropies [2, 4].
    # total per token = pg + 0.1 * k3 - 0.01 * H = [-1.009347, 1.970653]; token-mean = 0.480653.
    old = torch.tensor([[-1.0, -2.0]])
    logp = old.clone().requires_grad_(True)
    entropy = torch.tensor([[2.0, 4.0]], requires_grad=True)
    micro = _micro(old, torch.tensor([[1.0, -2.0]]), torch.ones(1, 2), ref=old - 0.5)
    objective = RLObjective(dual_clip=None, entropy_coef=0.01, kl_coef=0.1, kl_estimator="k3")
    loss, stats = objective(logp, entropy, micro, Totals(tokens=2.0, rows=1.0))
    assert loss.item() == pytest.approx((-1.009347 + 1.970653) / 2, abs=1e-6)
    loss.backward()
    assert torch.allclose(entropy.grad, torch.tensor([[-0.005, -0.005]]))  # -coef / tokens
    assert torch.allclose(stats["ref_kl"], torch.tensor([[0.106531, 0.106531]]), atol=1e-6)
    assert objective.needs_entropy_grad


# Two rows; proximal - behaviour per token (off the mask: anything, it must not count).
_GAP = torch.tensor([[math.log(3.0), math.log(0.5), 7.0],
                     [math.log(1.2), math.log(1.5), -4.0]])
_MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])


def _weights(mode, level, cap=2.0):
    return importance_weights(_GAP, torch.zeros(2, 3), _MASK, Correction(mode, level, cap))


def test_token_level_importance_weights_by_hand():
    # w = pi_prox / pi_behav per token: 3, 0.5 | 1.2, 1.5; 3 passes the cap of 2
    truncated, stats = _weights("truncate", "token")
    assert torch.allclose(truncated, torch.tensor([[2.0, 0.5, 0.0], [1.2, 1.5, 0.0]]))
    assert stats == pytest.approx({"weight_mean": (2 + 0.5 + 1.2 + 1.5) / 4,
                                   "truncated_frac": 1 / 4})
    masked, stats = _weights("mask", "token")  # AReaL: a weight past the cap drops the token
    assert torch.allclose(masked, torch.tensor([[0.0, 0.5, 0.0], [1.2, 1.5, 0.0]]))
    assert stats == pytest.approx({"weight_mean": (0.5 + 1.2 + 1.5) / 4, "masked_frac": 1 / 4})


def test_sequence_level_importance_weights_by_hand():
    # row weights: 3 x 0.5 = 1.5 (under the cap), 1.2 x 1.5 = 1.8; with cap 1.6 the second passes
    truncated, stats = _weights("truncate", "sequence", cap=1.6)
    assert torch.allclose(truncated, torch.tensor([[1.5, 1.5, 0.0], [1.6, 1.6, 0.0]]))
    assert stats == pytest.approx({"weight_mean": (1.5 * 2 + 1.6 * 2) / 4, "truncated_frac": 0.5})
    masked, stats = _weights("mask", "sequence", cap=1.6)
    assert torch.allclose(masked, torch.tensor([[1.5, 1.5, 0.0], [0.0, 0.0, 0.0]]))
    assert stats["masked_frac"] == 0.5


def test_corrections_refuse_what_they_cannot_mean():
    with pytest.raises(ValueError, match="cap=1.0: must be > 1"):
        Correction("mask", "token", 1.0)
    with pytest.raises(ValueError, match="allowed are"):
        Correction("clip", "token", 2.0)


def test_loglinear_alpha_by_hand():
    # W = 3: a token of version 3 is on-policy (0); of version 2, half way (1 / 2); of 0, 3 / 4
    assert loglinear_alpha(torch.tensor([3, 2, 0]), 3).tolist() == [0.0, 0.5, 0.75]
    with pytest.raises(ValueError, match="version 4 in an update of version 3"):
        loglinear_alpha(torch.tensor([4]), 3)


def test_loglinear_objective_by_hand():
    # Behaviour [-1, -2]; the policy now [-0.9, -1.9]; alpha [0, 0.5]; A = 1; clip 0.2.
    # Token 0: prox = behaviour = -1, r = e^0.1 = 1.105171 (unclipped), w = 1.
    # Token 1: prox = -2 + 0.5 * 0.1 = -1.95, r = e^0.05 = 1.051271, w = e^0.05 = 1.051271,
    #   loss = -w * r = -e^0.1 = -1.105171.
    # token-mean = -1.105171; d/dlogp = -w * r / 2 = -0.552585 each (prox has no gradient).
    behaviour = torch.tensor([[-1.0, -2.0]])
    logp = torch.tensor([[-0.9, -1.9]], requires_grad=True)
    micro = _micro(behaviour, torch.ones(1, 2), torch.ones(1, 2))
    micro.prox_alpha = torch.tensor([[0.0, 0.5]])
    objective = RLObjective(dual_clip=None, correction=Correction("truncate", "token", 2.0))
    loss, stats = objective(logp, None, micro, Totals(tokens=2.0, rows=1.0))
    assert loss.item() == pytest.approx(-1.105171, abs=1e-5)
    loss.backward()
    assert logp.grad.tolist()[0] == pytest.approx([-0.552585] * 2, abs=1e-5)
    assert stats["offpolicy/weight_mean"].tolist()[0] == pytest.approx([1.0, 1.051271], abs=1e-5)
    assert stats["offpolicy/truncated_frac"].tolist() == [[0.0, 0.0]]
    assert stats["logprob_diff"].tolist()[0] == pytest.approx([0.1, 0.1], abs=1e-6)  # vs behaviour
    # A cap of 1.03 truncates token 1's weight: loss -(1.105171 + 1.03 * 1.051271) / 2
    capped = RLObjective(dual_clip=None, correction=Correction("truncate", "token", 1.03))
    loss, stats = capped(logp.detach(), None, micro, Totals(tokens=2.0, rows=1.0))
    assert loss.item() == pytest.approx(-(1.105171 + 1.03 * 1.051271) / 2, abs=1e-5)
    assert stats["offpolicy/truncated_frac"].tolist() == [[0.0, 1.0]]
    # Without alpha the batch's old log-probs are the proximal ones: no weights formed here
    micro.prox_alpha = None
    _, stats = objective(logp.detach(), None, micro, Totals(tokens=2.0, rows=1.0))
    assert "offpolicy/weight_mean" not in stats


def test_tis_on_advantages_equals_weighting_the_clipped_loss():
    # The loop folds TIS into the advantages; verl multiplies the (dual-)clipped loss. Same thing
    # because the weight is positive: here for clipped, unclipped and dual-clipped tokens.
    logp, old, adv, mask = _tokens([1.5, 0.9, 4.0, 0.5], [1.0, -1.0, -1.0, -1.0])
    w = torch.tensor([[2.0, 0.5, 1.3, 0.7]])
    kw = {"clip_low": 0.2, "clip_high": 0.28, "dual_clip": 3.0}
    weighted_loss = ppo_clip(logp, old, adv, mask, **kw)[0] * w
    folded = ppo_clip(logp, old, adv * w, mask, **kw)[0]
    assert torch.allclose(weighted_loss, folded, atol=1e-6)


def test_bias_corrected_kl_by_hand():
    # logp -1.0, ref -1.2, old -1.1: d = ref - logp = -0.2, k3 = e^-0.2 + 0.2 - 1 = 0.018731,
    # r = pi / pi_old = e^0.1 = 1.105171, so the term is r * k3 = 0.020701. Its gradient in logp
    # is r * (k3 + 1 - e^d) = r * (logp - ref) = 1.105171 * 0.2 = 0.221034 (the unbiased
    # reverse-KL gradient), where plain k3's is 1 - e^d = 0.181269.
    for corrected, value, grad in ((True, 0.020701, 0.221034), (False, 0.018731, 0.181269)):
        logp = torch.tensor([[-1.0]], requires_grad=True)
        micro = _micro(torch.tensor([[-1.1]]), torch.zeros(1, 1), torch.ones(1, 1),
                       ref=torch.tensor([[-1.2]]))
        objective = RLObjective(dual_clip=None, kl_coef=1.0, kl_estimator="k3",
                                kl_bias_correction=corrected)
        loss, stats = objective(logp, None, micro, Totals(tokens=1.0, rows=1.0))
        loss.backward()
        assert stats["ref_kl"].item() == pytest.approx(value, abs=1e-6)
        assert logp.grad.item() == pytest.approx(grad, abs=1e-6)


def test_rows_without_loss_tokens_do_not_count_in_sequence_means():
    # Row 0: [1, 3] trained; row 1: nothing trained (cut before it generated); row 2: [5].
    # seq-mean-token-mean = (2 + 5) / 2 rows with tokens = 3.5 (not / 3);
    # seq-mean-token-sum = (4 + 5) / 2 = 4.5; token-mean = 9 / 3 = 3.
    from turnwise.trainer.microbatch import rows_with_tokens

    values = torch.tensor([[1.0, 3.0], [7.0, 7.0], [5.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    rows = rows_with_tokens(_micro(torch.zeros(3, 2), torch.zeros(3, 2), mask))
    assert rows == 2.0
    totals = {"total_tokens": 3.0, "total_rows": rows}
    assert aggregate(values, mask, "seq-mean-token-mean", **totals).item() == pytest.approx(3.5)
    assert aggregate(values, mask, "seq-mean-token-sum", **totals).item() == pytest.approx(4.5)
    assert aggregate(values, mask, "token-mean", **totals).item() == pytest.approx(3.0)
