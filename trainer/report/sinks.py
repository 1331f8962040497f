"""Where metric records go: metrics.jsonl always, tensorboard and wandb when enabled.

Every sink receives the same record (one dict per call, with an `iteration` key) and keeps the
metric names as they are, so a curve has one name everywhere.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Protocol


class MetricSink(Protocol):
    def log(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """One JSON object per line; non-finite numbers become null."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def log(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({k: jsonable(v) for k, v in record.items()}) + "\n")

    def close(self) -> None:
        pass


class TensorboardSink:
    """Scalars under their metric names, at step = iteration; flushed after every record.
    `purge_from`: an earlier attempt of the run left steps from this one on in `folder` (a
    resumed or restarted run writes them again); TensorBoard hides those old steps."""

    def __init__(self, folder: Path, *, purge_from: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise RuntimeError(f"log.tensorboard=true needs the tensorboard package ({exc}); "
                               "install it or set log.tensorboard=false") from exc

        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_from)

    def log(self, record: dict[str, Any]) -> None:
        step = int(record.get("iteration", 0))
        for key, value in numeric(record).items():
            if key != "iteration":
                self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def numeric(record: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of `record` (strings, None, NaN and lists are left out)."""
    out = {}
    for key, value in record.items():
        if hasattr(value, "item") and callable(value.item):
            value = value.item()
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[key] = float(value)
    return out


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types; numpy scalars unwrapped, NaN and inf as None."""
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (list, dict)):
        try:
            value = value.item()
        except (TypeError, ValueError):  # a multi-element array: fall through to str
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)
