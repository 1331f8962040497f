"""Supervised fine-tuning on demonstrations: the same trajectories and loss masks as RL.

It runs through the training backend (torch or DeepSpeed, LoRA or not) as a phase of its own:
fresh optimizer moments at the SFT learning rate, then fresh ones again for RL.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Protocol

import torch

from ..rollouts.batch import build_batch
from ..rollouts.trajectory import Trajectory
from .losses import sft_objective
from .update import LRSchedule


class SFTProgress(Protocol):
    """What SFT reports as it goes (trainer.report.progress.SFTBar shows it)."""

    def start(self, steps: int) -> None: ...

    def step(self, loss: float, tokens: float) -> None: ...

    def close(self) -> None: ...


def sft(backend, demos: Sequence[Trajectory], *, epochs: int, lr: float, rows_per_step: int,
        pad_id: int, seed: int = 0, lr_schedule: str = "constant",
        progress: SFTProgress | None = None) -> dict[str, float]:
    """Maximise the log-likelihood of the demonstrations' response tokens; returns metrics.
    `lr_schedule` (constant, cosine, linear) runs over all of SFT's optimizer steps; `progress`
    hears of each step's loss and tokens (summed over ranks).

    Under DeepSpeed each rank passes its own demonstrations; every rank takes the same number of
    steps (the longest rank's), shorter ranks contributing no tokens to the extra ones.
    """
    started = time.perf_counter()
    batch = build_batch(demos, pad_id=pad_id)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = backend.world.max(math.ceil(batch.num_rows / rows_per_step))
    backend.begin_phase(LRSchedule(lr, total=epochs * steps_per_epoch, kind=lr_schedule))
    if progress is not None:
        progress.start(epochs * steps_per_epoch)
    first = last = float("nan")
    for _ in range(epochs):
        order = torch.randperm(batch.num_rows, generator=generator)
        for step in range(steps_per_epoch):
            rows = order[step * rows_per_step:(step + 1) * rows_per_step]
            result = backend.fit(batch.select(rows), sft_objective)
            tokens = 0.0
            if result is not None:
                sums, _norm = result
                nll, tokens = backend.world.sum([sums["nll"], sums["tokens"]])
                last = nll / max(tokens, 1.0)
                if math.isnan(first):
                    first = last
            if progress is not None:
                progress.step(last, tokens)
    if progress is not None:
        progress.close()
    tokens, rows = backend.world.sum([float(batch.loss_mask.sum()), float(batch.num_rows)])
    seconds = time.perf_counter() - started
    return {"sft/loss_first": first, "sft/loss_last": last, "sft/rows": rows, "sft/tokens": tokens,
            "sft/steps": float(epochs * steps_per_epoch), "time/sft": seconds,
            "perf/sft_tokens_per_s": epochs * tokens / max(seconds, 1e-9)}
