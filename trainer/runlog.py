"""The run folder: resolved config, metrics (metrics.jsonl, tensorboard, wandb), sampled
trajectories, plots, summary.

    RUN_DIR/config.yaml                  the resolved recipe
    RUN_DIR/metrics.jsonl                one record per iteration (names: docs/metrics.md)
    RUN_DIR/trajectories/iter_NNNNN.jsonl  sampled whole groups, token by token (report/samples.py)
    RUN_DIR/plots/*.png                  drawn from metrics.jsonl (report/plots.py)
    RUN_DIR/tensorboard/, RUN_DIR/wandb/ the same metrics for those tools
    RUN_DIR/summary.json                 evaluation before and after
    RUN_DIR/viewer.html                  written by `turnwise view RUN_DIR`
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..rollouts.batch import RolloutBatch
from ..rollouts.trajectory import Trajectory
from .config import LogConfig
from .report.plots import write_plots
from .report.samples import TokenText, pick_groups, rows_of, sample_records
from .report.sinks import JsonlSink, MetricSink, TensorboardSink, jsonable
from .report.wandb_sink import WandbSink, resolve_mode


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


class RunLog:
    """Writes everything a run leaves behind into one folder."""

    def __init__(self, log: LogConfig, *, name: str, resolved: dict[str, Any],
                 warn: Callable[[str], Any] = _stderr, purge_from: int | None = None) -> None:
        """A run folder under `log.dir`, named `log.run_name` or `name` and the time; `resolved`
        is the resolved recipe, written as config.yaml. `purge_from`: the first iteration an
        earlier attempt of this run logged and this one logs again (`superseded_from`)."""
        name = log.run_name or f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.settings, self.warn = log, warn
        self.dir = Path(log.dir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        self.metrics_path = self.dir / "metrics.jsonl"
        self.sinks: list[MetricSink] = [JsonlSink(self.metrics_path)]
        if log.tensorboard:
            self.sinks.append(TensorboardSink(self.dir / "tensorboard", purge_from=purge_from))
        mode = resolve_mode(log.wandb)
        if mode != "disabled":
            try:
                self.sinks.append(WandbSink(log.wandb, mode, self.dir, name, resolved, warn))
            except Exception as exc:  # noqa: BLE001 - metrics.jsonl has it all; wandb is optional
                warn(f"wandb: could not start ({type(exc).__name__}: {exc}); "
                     "continuing without it (set log.wandb.mode=disabled to silence this)")
        self._token_text: TokenText | None = None
        self._sample_seconds: float | None = None

    def log(self, metrics: dict[str, Any]) -> None:
        """One record to every sink, under the same names (plus time/sample after a save)."""
        if self._sample_seconds is not None:
            metrics = {**metrics, "time/sample": self._sample_seconds}
            self._sample_seconds = None
        for sink in self.sinks:
            sink.log(metrics)

    def save_trajectories(self, iteration: int, trajectories: Sequence[Trajectory],
                          per_turn: Sequence[np.ndarray], batch: RolloutBatch, backend: Any,
                          tokenizer: Any) -> None:
        """Save whole groups of this iteration's batch, with the trainer's log-probs of them
        (skipped when `backend` is None).

        Call it before the update: the trainer log-probs must come from the policy that the
        rollout log-probs came from, so that their difference shows engine/trainer mismatch.
        """
        limit = self.settings.save_trajectories
        if limit <= 0 or iteration % self.settings.save_every:
            return
        started = time.perf_counter()
        if self._token_text is None or self._token_text.tokenizer is not tokenizer:
            self._token_text = TokenText(tokenizer)
        chosen = pick_groups(trajectories, limit)
        trainer_logprobs = None
        if self.settings.trainer_logprobs and backend is not None:
            trainer_logprobs = backend.forward_logprobs(batch.select(rows_of(batch, chosen)))
        records = sample_records(iteration, trajectories, per_turn, batch, chosen,
                                 self._token_text, trainer_logprobs)
        folder = self.dir / "trajectories"
        folder.mkdir(exist_ok=True)
        with (folder / f"iter_{iteration:05d}.jsonl").open("w") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")
        self._sample_seconds = time.perf_counter() - started

    def plot(self, iteration: int | None = None) -> None:
        """Redraw the plots: every `log.plot_every` iterations, or now when `iteration` is None."""
        every = self.settings.plot_every
        if iteration is None or (every and iteration % every == 0):
            write_plots(self.dir)

    def write_summary(self, summary: dict[str, Any]) -> None:
        (self.dir / "summary.json").write_text(
            json.dumps({k: jsonable(v) for k, v in summary.items()}, indent=2))

    def close(self) -> None:
        """Final plots; flush and close every sink."""
        self.plot()
        for sink in self.sinks:
            sink.close()
