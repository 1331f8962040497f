"""The reference policy for KL: which weights it is, and KL as a penalty on turn rewards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..rollouts.batch import RolloutBatch
from ..rollouts.trajectory import Trajectory
from .config import KLConfig
from .losses import kl_estimate


def attach_reference(backend, model_path: str, run_dir: str | Path, *, lora: bool,
                     sft_done: bool) -> str:
    """Freeze the reference policy on `backend`; returns a description for the log.

    It is the policy as RL starts: the model as loaded, or, when SFT has just run
    (`sft_done`), its SFT'd self, exported once to `RUN/reference` so a resumed run finds the
    same weights. With LoRA it is the base model with the adapters switched off, which costs
    no memory (and is the pre-SFT base).
    """
    if lora:
        backend.attach_reference(None)
        return "the base model with LoRA adapters disabled"
    snapshot = Path(run_dir) / "reference"
    if sft_done and not (snapshot / "config.json").exists():
        backend.save_pretrained(str(snapshot))
    path = str(snapshot) if (snapshot / "config.json").exists() else model_path
    backend.attach_reference(path)
    return path


def kl_penalised(trajectories: Sequence[Trajectory], batch: RolloutBatch,
                 cfg: KLConfig) -> tuple[list[Trajectory], float]:
    """Copies of `trajectories` whose turn rewards lose `coef` x the KL of that turn's tokens.

    The KL of a turn is the sum over its response tokens of the estimator at the rollout
    (old) logprobs; `outcome_reward` loses the episode's total, so it stays the sum of the turn
    rewards. Returns the copies and the mean per-token KL.
    """
    if batch.ref_logprobs is None:
        raise ValueError("kl.target='reward' needs batch.ref_logprobs")
    kl = kl_estimate(batch.old_logprobs, batch.ref_logprobs, cfg.estimator)
    on = batch.loss_mask > 0
    owners = batch.row_traj.unsqueeze(-1).expand_as(batch.turn_index)[on].numpy()
    turns = batch.turn_index[on].numpy()
    values = kl[on].double().numpy()
    widest = max((len(t.turns) for t in trajectories), default=0)
    per_turn = np.zeros((len(trajectories), max(widest, 1)))
    np.add.at(per_turn, (owners, turns), values)
    penalised = []
    for i, traj in enumerate(trajectories):
        cost = cfg.coef * per_turn[i, :len(traj.turns)]
        new_turns = [replace(turn, reward=turn.reward - float(c)) for turn, c in zip(traj.turns, cost)]
        penalised.append(replace(traj, turns=new_turns,
                                 outcome_reward=traj.outcome_reward - float(cost.sum())))
    mean = float(values.mean()) if len(values) else 0.0
    return penalised, mean


def masked_mean_abs_diff(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean |a - b| over the mask (rollout vs trainer logprobs)."""
    return float(((a - b).abs() * mask).sum() / mask.sum().clamp(min=1.0))
