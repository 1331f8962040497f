"""PNG plots of metrics.jsonl, written into the run folder's plots/ (matplotlib, no display).

One file per topic; a panel shows every listed metric the run logged, against the iteration.
A file whose metrics are all absent is not written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMING = ["time/generation", "time/tools", "time/credit", "time/update", "time/sync",
          "time/sample"]


@dataclass(frozen=True)
class Panel:
    title: str
    keys: list[str] | Callable[[set[str]], list[str]]  # names, or a choice among logged names
    stacked: bool = False  # stacked bars (parts of one total) instead of lines

    def select(self, logged: set[str]) -> list[str]:
        keys = self.keys(logged) if callable(self.keys) else self.keys
        return [k for k in keys if k in logged]


def _train_keys(test: Callable[[str], bool]) -> Callable[[set[str]], list[str]]:
    # train/loss and train/kl repeat train/pg_loss and train/approx_kl: drawn once.
    return lambda logged: sorted(k for k in logged if k.startswith("train/")
                                 and k not in ("train/loss", "train/kl") and test(k[6:]))


PLOTS: dict[str, list[Panel]] = {
    "reward_success": [Panel("reward", ["rollout/reward", "eval/reward"]),
                       Panel("success", ["rollout/success", "eval/success"])],
    "loss": [Panel("loss terms", _train_keys(lambda name: name.endswith("loss")))],
    "kl": [Panel("KL", _train_keys(lambda name: "kl" in name and not name.endswith("loss")))],
    "entropy": [Panel("entropy (nats / token)", ["train/entropy"])],
    "clipfrac": [Panel("clip fraction",
                       ["train/clipfrac", "train/clipfrac_low", "train/clipfrac_high"])],
    "response_length": [Panel("tokens per episode", ["rollout/response_tokens",
                                                     "eval/response_tokens"]),
                        Panel("tokens per turn", ["rollout/turn_tokens", "eval/turn_tokens"])],
    "tools": [Panel("tool calls per episode", ["rollout/tool_calls", "eval/tool_calls"]),
              Panel("tool error rate", ["rollout/tool_error_rate", "eval/tool_error_rate"])],
    "turns": [Panel("turns per episode", ["rollout/turns", "eval/turns"])],
    "timing": [Panel("seconds per iteration", TIMING, stacked=True)],
}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl (a half-written last line is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(iterations, values) of `key`, skipping records without it or with null."""
    xs, ys = [], []
    for r in records:
        value = r.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and "iteration" in r:
            xs.append(r["iteration"])
            ys.append(value)
    return xs, ys


def write_plots(run_dir: str | Path) -> list[Path]:
    """Draw PLOTS from run_dir/metrics.jsonl into run_dir/plots/; returns the paths written."""
    run_dir = Path(run_dir)
    records = read_metrics(run_dir / "metrics.jsonl")
    logged = {k for r in records for k, v in r.items() if v is not None}
    folder = run_dir / "plots"
    folder.mkdir(exist_ok=True)
    written = []
    for name, panels in PLOTS.items():
        path = folder / f"{name}.png"
        fig = draw(panels, records, logged)
        if fig is None:
            path.unlink(missing_ok=True)
            continue
        fig.savefig(path, dpi=80)
        written.append(path)
    return written


# Layout in inches, so tick labels and legends keep their room whatever the panel count. A
# fixed layout: matplotlib's "constrained" layout and loc="best" cost seconds per file.
PANEL_WIDTH, AXES_HEIGHT, TOP, LEFT, RIGHT, GAP = 5.0, 2.2, 0.35, 0.75, 0.15, 0.85
XLABEL, LEGEND_ROW, LEGEND_COLUMNS = 0.5, 0.2, 2


def draw(panels: list[Panel], records: list[dict[str, Any]], logged: set[str]):
    """One figure of the panels whose metrics were logged (None: none was), each legend below
    its axes where it covers no data."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    chosen = [(p, keys) for p in panels if (keys := p.select(logged))]
    if not chosen:
        return None
    rows = max(-(-len(keys) // LEGEND_COLUMNS) for _, keys in chosen)
    bottom = XLABEL + 0.15 + rows * LEGEND_ROW
    width = len(chosen) * PANEL_WIDTH
    height = TOP + AXES_HEIGHT + bottom
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=LEFT / width, right=1 - RIGHT / width, bottom=bottom / height,
                        top=1 - TOP / height, wspace=GAP / (PANEL_WIDTH - GAP))
    FigureCanvasAgg(fig)
    for i, (panel, keys) in enumerate(chosen):
        ax = fig.add_subplot(1, len(chosen), i + 1)
        (_stacked if panel.stacked else _lines)(ax, records, keys)
        ax.set_title(panel.title)
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", ncol=LEGEND_COLUMNS, frameon=False,
                  bbox_to_anchor=(0.5, -XLABEL / AXES_HEIGHT), borderaxespad=0.0)
    return fig


def _lines(ax, records, keys) -> None:
    for key in keys:
        xs, ys = series(records, key)
        evaluation = key.startswith("eval/")
        ax.plot(xs, ys, "s--" if evaluation else "o-", markersize=3, linewidth=1.2, label=key)


def _stacked(ax, records, keys) -> None:
    rows = [r for r in records if any(isinstance(r.get(k), (int, float)) for k in keys)]
    xs = [r["iteration"] for r in rows]
    bottom = [0.0] * len(rows)
    for key in keys:
        heights = [float(r.get(key) or 0.0) for r in rows]
        ax.bar(xs, heights, bottom=bottom, label=key, width=0.8)
        bottom = [b + h for b, h in zip(bottom, heights)]
