"""Shared prefixes: each group's common prompt runs once, and nothing the update sees changes."""

from __future__ import annotations

import pytest
import torch
from trainer_parity import make_batch
from turnwise.trainer.backends.base import resolve_sharing
from turnwise.trainer.backends.torch_backend import TorchBackend
from turnwise.trainer.config import LossConfig, TrainConfig
from turnwise.trainer.logprobs import token_logprobs
from turnwise.trainer.shared_prefix import plan


def test_the_prefix_ends_before_the_first_scored_prediction():
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 0],
                        [1, 2, 3, 4, 9, 9, 9],
                        [1, 2, 3, 8, 8, 0, 0],
                        [7, 7, 7, 7, 7, 7, 7],
                        [7, 7, 7, 7, 7, 7, 7]])
    mask = (ids != 0).long()
    needed = torch.zeros(ids.shape)
    needed[0, 5:6] = needed[1, 4:] = needed[2, 4:5] = 1  # row 1: scored from token 4
    needed[3, 6] = needed[4, 3] = 1
    prefix, index = plan(ids, mask, needed, torch.tensor([5, 5, 5, 2, 2]))
    # Group 5: rows agree on 3 tokens (row 2 differs at 3); row 1's token 4 is predicted at 3,
    # which must be in the suffix: 3 shared tokens. Group 2: identical rows, but row 4 is scored
    # from token 3, so only tokens 0-1 are shared.
    assert prefix.tolist() == [3, 3, 3, 2, 2]
    assert index.tolist() == [1, 1, 1, 0, 0]


def test_no_sharing_where_it_saves_too_little_or_a_group_has_no_prefix():
    ids = torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7], [9, 8, 7, 6, 5, 4]])
    mask = torch.ones_like(ids)
    needed = torch.zeros(ids.shape)
    needed[:, 5] = 1
    assert plan(ids, mask, needed, torch.tensor([0, 1, 2])) is None  # all alone
    assert plan(ids, mask, needed, torch.tensor([0, 0, 1])) is not None  # 4 of 18 tokens saved
    assert plan(ids, mask, needed, torch.tensor([0, 0, 0])) is None  # row 2 shares nothing
    needed[1, 2] = 1  # then rows 0-1 share 1 token: 1 of 18 saved
    assert plan(ids, mask, needed, torch.tensor([0, 0, 1])) is None
    # ZeRO-3 ranks must all run two passes: then every micro-batch is split, or refused.
    prefix, _ = plan(ids, mask, needed, torch.tensor([0, 0, 1]), always=True)
    assert prefix.tolist() == [1, 1, 4]
    needed[2, 1] = 1
    with pytest.raises(ValueError, match="trained on its second token"):
        plan(ids, mask, needed, torch.tensor([0, 0, 1]), always=True)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_shared_prefix_scores_and_gradients_equal_the_plain_forward(tiny_model, temperature):
    batch = make_batch([30, 24, 25, 40, 18, 20, 33, 22, 9], response=6, seed=3, shared=True)
    batch.row_group[8] = 3  # a third row in group 3 that shares nothing past token 0
    batch.input_ids[8, 0] = batch.input_ids[6, 0]
    args = dict(temperature=temperature, with_entropy=True, entropy_grad=True,
                needed=batch.loss_mask)
    params = [p for p in tiny_model.parameters()]
    runs = []
    for groups in (None, batch.row_group):
        logprobs, entropy = token_logprobs(tiny_model, batch.input_ids, batch.attention_mask,
                                           groups=groups, **args)
        objective = (logprobs * batch.advantages).sum() + 0.1 * entropy.sum()
        runs.append((logprobs, entropy, torch.autograd.grad(objective, params)))
    (plain, plain_ent, plain_grad), (shared, shared_ent, shared_grad) = runs
    assert plan(batch.input_ids, batch.attention_mask, batch.loss_mask, batch.row_group) is not None
    assert torch.allclose(shared, plain, atol=1e-5)
    assert torch.allclose(shared_ent, plain_ent, atol=1e-5)
    assert ((shared != 0) == batch.loss_mask.bool()).all()  # scored exactly where needed
    for a, b in zip(shared_grad, plain_grad):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_an_update_with_shared_prefixes_takes_the_plain_gradient(tiny_path):
    from transformers import AutoModelForCausalLM

    batch = make_batch([30, 24, 25, 40, 18, 20, 33, 22], response=6, seed=1, shared=True)
    results = []
    for share in (False, True):
        model = AutoModelForCausalLM.from_pretrained(tiny_path)
        backend = TorchBackend(model, TrainConfig(lr=1e-3, share_prefix=share), LossConfig())
        assert backend.share_prefix is share
        grads = {}

        def capture() -> float:  # the step itself is Adam's: compare what it is given
            grads.update({n: p.grad.clone() for n, p in model.named_parameters()})
            return 1.0

        backend.step = capture
        results.append((backend.update(batch), grads))
    (plain, plain_grad), (shared, shared_grad) = results
    for key in ("pg_loss", "entropy", "clipfrac", "approx_kl", "rollout_logprob_diff"):
        assert shared[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-7), key
    for name, grad in plain_grad.items():
        assert torch.allclose(shared_grad[name], grad, rtol=1e-4, atol=1e-7), name
    assert any(g.abs().sum() > 0 for g in plain_grad.values())


def test_sharing_is_refused_with_packing_or_checkpointing():
    assert resolve_sharing("auto", packed=False, checkpointing=False) is True
    assert resolve_sharing("auto", packed=True, checkpointing=False) is False
    assert resolve_sharing("auto", packed=False, checkpointing=True) is False
    assert resolve_sharing(False, packed=False, checkpointing=False) is False
    with pytest.raises(ValueError, match=r"train.share_prefix=true cannot be combined with "
                                         r"train.packing=true"):
        resolve_sharing(True, packed=True, checkpointing=False)
    with pytest.raises(ValueError, match=r"train.gradient_checkpointing=true"):
        resolve_sharing(True, packed=False, checkpointing=True)


def test_shared_prefixes_pass_through_lora_adapters(tiny_model):
    from turnwise.trainer.backends.lora import wrap_lora
    from turnwise.trainer.config import LoRAConfig

    model = wrap_lora(tiny_model, LoRAConfig(enabled=True))
    batch = make_batch([30, 24, 25, 40], response=6, seed=2, shared=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    runs = []
    for groups in (None, batch.row_group):
        logprobs, _ = token_logprobs(model, batch.input_ids, batch.attention_mask,
                                     needed=batch.loss_mask, groups=groups)
        runs.append((logprobs, torch.autograd.grad((logprobs * batch.advantages).sum(), trainable)))
    assert torch.allclose(runs[1][0], runs[0][0], atol=1e-5)
    for shared, plain in zip(runs[1][1], runs[0][1]):
        assert torch.allclose(shared, plain, atol=1e-5, rtol=1e-4)
