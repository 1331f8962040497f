"""What the DeepSpeed workers and the torch-backend reference share: configs, a batch, a prompt."""

from __future__ import annotations

import torch
from turnwise.rollouts.batch import RolloutBatch
from turnwise.trainer.config import Config


def ds_config(model: str, stage: int, backend: str = "deepspeed") -> Config:
    """ZeRO-2: seq-mean-token-mean, packed. ZeRO-3: token-mean, padded with shared prefixes
    (groups of rows that fit one micro-batch), KL to the reference, optimizer offload. Two PPO
    epochs of one mini-batch: two optimizer steps."""
    three = stage == 3
    data = {
        "model": {"name": model},
        "train": {"backend": backend, "lr": 1e-3, "ppo_epochs": 2, "minibatches": 1,
                  "micro_batch_tokens": 128 if three else 64, "packing": not three,
                  "share_prefix": three, "grad_clip": 1.0},
        "loss": {"agg": "token-mean" if three else "seq-mean-token-mean", "clip_low": 0.2,
                 "clip_high": 0.28},
        "kl": {"coef": 0.1 if three else 0.0, "estimator": "k3"},
    }
    if backend == "deepspeed":
        data["deepspeed"] = {"zero_stage": stage, "offload_optimizer": three}
    return Config.model_validate(data)


def make_batch(lengths, *, vocab=700, seed=0, response=4, shared=False) -> RolloutBatch:
    """Right-padded rows of random ids; the last `response` tokens of each row are trained on.
    Rows 2k and 2k + 1 form a group; with `shared`, they start with the same prompt (all but the
    response of the group's shorter row), as the completions of one prompt do."""
    g = torch.Generator().manual_seed(seed)
    rows, width = len(lengths), max(lengths)
    lens = torch.tensor(lengths)
    positions = torch.arange(width).unsqueeze(0)
    attention = (positions < lens.unsqueeze(1)).long()
    loss_mask = (attention.bool() & (positions >= (lens - response).unsqueeze(1))).float()
    ids = torch.randint(0, vocab, (rows, width), generator=g) * attention
    groups = torch.arange(rows) // 2
    if shared:
        for first in range(0, rows - 1, 2):
            prompt = min(lengths[first], lengths[first + 1]) - response
            ids[first + 1, :prompt] = ids[first, :prompt]
    return RolloutBatch(
        input_ids=ids, attention_mask=attention, loss_mask=loss_mask,
        old_logprobs=(-6.0 + 0.3 * torch.randn(rows, width, generator=g)) * loss_mask,
        advantages=torch.randn(rows, width, generator=g).sign() * loss_mask,
        turn_index=torch.where(loss_mask > 0, 0, -1), row_traj=torch.arange(rows),
        row_group=groups, row_version=torch.zeros(rows, dtype=torch.long))


def parity_batch() -> RolloutBatch:
    return make_batch([30, 24, 25, 40, 18, 20, 33, 22], response=6, seed=1, shared=True)


def prompt_ids() -> list[int]:
    return [5, 17, 42, 99, 7]
