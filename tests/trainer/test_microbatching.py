"""Token-budget micro-batches, padding-free packing, and accumulation equal to one big batch."""

from __future__ import annotations

import pytest
import torch
from trainer_parity import make_batch
from turnwise.trainer.backends.torch_backend import TorchBackend
from turnwise.trainer.config import LossConfig, TrainConfig
from turnwise.trainer.logprobs import token_logprobs
from turnwise.trainer.losses import AGGREGATIONS
from turnwise.trainer.microbatch import micro_batches


def test_micro_batches_follow_the_token_budget():
    batch = make_batch([5, 3, 8, 2], response=1)
    # Padded: [5, 3] costs 2 x 5 = 10; adding 8 would cost 3 x 8 = 24; [8, 2] would cost 16.
    padded = micro_batches(batch, 10, packed=False)
    assert [m.row_lengths().tolist() for m in padded] == [[5, 3], [8], [2]]
    # Packed: 5 + 3 = 8 (+8 = 16 > 10); 8 + 2 = 10.
    packed = micro_batches(batch, 10, packed=True)
    assert [m.row_lengths().tolist() for m in packed] == [[5, 3], [8, 2]]
    # A row longer than the budget is a micro-batch of its own.
    assert [m.num_rows for m in micro_batches(batch, 4, packed=True)] == [1, 1, 1, 1]


def test_micro_batches_by_length_pad_less_and_keep_every_row():
    batch = make_batch([8, 2, 8, 2, 8, 2], response=1)
    # Consecutive: [8, 2] x 3 (a third row would cost 3 x 8 = 24 > 16): 3 x 16 = 48 padded
    # tokens. Longest first: [8, 8] (16), [8, 2] (16), [2, 2] (2 x 2 = 4): 36.
    ordered = micro_batches(batch, 16, packed=False, by_length=True)
    assert [m.row_lengths().tolist() for m in ordered] == [[8, 8], [8, 2], [2, 2]]
    assert [m.input_ids.shape[1] for m in ordered] == [8, 8, 2]
    padded = lambda ms: sum(m.input_ids.numel() for m in ms)
    assert padded(ordered) == 36 < padded(micro_batches(batch, 16, packed=False)) == 48
    # Every row once, its tokens intact.
    rows = sorted(tuple(r[:n].tolist()) for m in ordered
                  for r, n in zip(m.input_ids, m.row_lengths()))
    assert rows == sorted(tuple(r[:n].tolist())
                          for r, n in zip(batch.input_ids, batch.row_lengths()))
    # Packed micro-batches have no padding to save: the order stays.
    assert [m.row_lengths().tolist() for m in micro_batches(batch, 16, packed=True, by_length=True)] \
        == [m.row_lengths().tolist() for m in micro_batches(batch, 16, packed=True)]


def test_packed_logprobs_equal_padded(tiny_model):
    batch = make_batch([9, 4, 13, 1, 7], response=3)
    with torch.no_grad():
        padded, ent_padded = token_logprobs(tiny_model, batch.input_ids, batch.attention_mask,
                                            temperature=0.7, with_entropy=True)
        packed, ent_packed = token_logprobs(tiny_model, batch.input_ids, batch.attention_mask,
                                            temperature=0.7, with_entropy=True, packed=True)
    mask = batch.attention_mask.bool()
    assert torch.allclose(packed[mask], padded[mask], atol=1e-5)
    assert torch.allclose(ent_packed[mask], ent_padded[mask], atol=1e-5)
    assert (packed[~mask] == 0).all() and (packed[:, 0] == 0).all()
    # Each row alone, unpadded, gives the same numbers: padding leaks nothing either way.
    alone, _ = token_logprobs(tiny_model, batch.input_ids[2:3, :13],
                              batch.attention_mask[2:3, :13], temperature=0.7)
    assert torch.allclose(alone[0], packed[2, :13], atol=1e-5)


@pytest.mark.parametrize("packed", [False, True])
def test_scoring_only_needed_tokens_changes_nothing_they_get(tiny_model, packed):
    # The 1-token row is trained on its first token, which has no prediction: it stays 0, and
    # in the packed layout its neighbour's last hidden state must not be used for it.
    batch = make_batch([9, 4, 13, 1, 7], response=3)
    full, ent_full = token_logprobs(tiny_model, batch.input_ids, batch.attention_mask,
                                    temperature=0.7, with_entropy=True, packed=packed)
    full_grad = torch.autograd.grad((full * batch.advantages).sum(), tiny_model.lm_head.weight)[0]
    part, ent_part = token_logprobs(tiny_model, batch.input_ids, batch.attention_mask,
                                    temperature=0.7, with_entropy=True, packed=packed,
                                    needed=batch.loss_mask)
    part_grad = torch.autograd.grad((part * batch.advantages).sum(), tiny_model.lm_head.weight)[0]
    mask = batch.loss_mask.bool()
    assert torch.allclose(part[mask], full[mask], atol=1e-5)
    assert torch.allclose(ent_part[mask], ent_full[mask], atol=1e-5)
    assert (part[~mask] == 0).all() and (ent_part[~mask] == 0).all() and part[3, 0] == 0
    assert torch.allclose(part_grad, full_grad, atol=1e-5)


def _gradients(model, batch, *, agg, budget, packed):
    """Summed gradients of one optimizer step's worth of micro-batches (the step is skipped)."""
    train = TrainConfig(lr=1e-3, micro_batch_tokens=budget, packing=packed)
    backend = TorchBackend(model, train, LossConfig(agg=agg, clip_low=0.1, clip_high=0.1))
    grads = {}

    def capture() -> float:
        grads.update({n: p.grad.clone() for n, p in model.named_parameters()})
        return 0.0

    backend.step = capture
    sums, _ = backend.fit(batch, backend.objective)
    return grads, sums


@pytest.mark.parametrize("agg", AGGREGATIONS)
def test_accumulated_gradient_equals_one_big_batch(tiny_model, agg):
    batch = make_batch([24, 15, 30, 40, 20, 11], response=5)
    whole, whole_sums = _gradients(tiny_model, batch, agg=agg, budget=10_000, packed=False)
    for packed in (False, True):
        split, sums = _gradients(tiny_model, batch, agg=agg, budget=64, packed=packed)
        assert sums["micro_batches"] >= 3  # the budget really split the batch
        assert sums["pg_loss"] == pytest.approx(whole_sums["pg_loss"], rel=1e-5)
        for name, grad in whole.items():
            assert torch.allclose(split[name], grad, atol=1e-6, rtol=1e-4), (agg, packed, name)
    assert any(g.abs().sum() > 0 for g in whole.values())
