"""The training bar (iteration i/N, the phase running and for how long, time left) and one
summary line per iteration, and SFT's bar. Quiet runs show none; without a terminal only the
lines print.

The rollout bar (rollouts/) nests under this one while episodes run (rich >= 14.1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

# (label, metric, format) of the summary line, in order; absent metrics are left out.
SUMMARY: list[tuple[str, str, str]] = [
    ("reward", "rollout/reward", "{:.3f}"), ("success", "rollout/success", "{:.3f}"),
    ("loss", "train/loss", "{:+.4f}"), ("kl", "train/kl", "{:.1e}"),
    ("ent", "train/entropy", "{:.3f}"), ("clip", "train/clipfrac", "{:.3f}"),
    ("tok/turn", "rollout/turn_tokens", "{:.1f}"), ("turns", "rollout/turns", "{:.1f}"),
    ("tools", "rollout/tool_calls", "{:.1f}"), ("tool_err", "rollout/tool_error_rate", "{:.2f}"),
    ("eval", "eval/success", "{:.3f}"),
]
TIMES: list[tuple[str, str]] = [("gen", "time/generation"), ("tools", "time/tools"),
                                ("credit", "time/credit"), ("update", "time/update"),
                                ("sync", "time/sync"), ("sample", "time/sample")]


def summary_line(metrics: dict[str, Any], iterations: int) -> str:
    """`iter 3/10  reward 1.000  success 0.250 ...  |  gen 2.1s ... = 4.0s` for one iteration."""
    parts = [f"iter {metrics.get('iteration', '?')}/{iterations}"]
    for label, key, fmt in SUMMARY:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            parts.append(f"{label} {fmt.format(value)}")
    # time/tools is environment time; a suite without tools (no tool metrics) says so.
    env = "tools" if "rollout/tool_calls" in metrics else "env"
    times = [f"{env if key == 'time/tools' else label} {metrics[key]:.1f}s"
             for label, key in TIMES if isinstance(metrics.get(key), (int, float))]
    if times:
        total = metrics.get("time/iteration")
        parts.append("| " + " ".join(times) + (f" = {total:.1f}s" if total is not None else ""))
    return "  ".join(parts)


class TrainProgress:
    """What a run shows while it trains; `phase` names what the iteration is doing now."""

    def __init__(self, iterations: int, *, quiet: bool = False, start: int = 0,
                 echo: Callable[[str], Any] = print, console: Any = None) -> None:
        self.iterations, self.quiet, self.echo = iterations, quiet, echo
        self.bar = self.task = self._hook = None
        self.steps = 0
        if quiet:
            return
        console = console or Console()
        if not console.is_terminal:  # log files get the summary lines, not redraws
            return
        self.bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                            _PhaseColumn(), TimeRemainingColumn(), console=console,
                            refresh_per_second=2)
        self.task = self.bar.add_task("train", total=iterations, completed=start, phase="start",
                                      since=time.perf_counter(), steps=0)
        self.bar.start()

    def watch(self, backend: Any) -> None:
        """Count the backend's optimizer steps, shown while the update runs (torch optimizers)."""
        optimizer = getattr(backend, "optimizer", None)
        if self.bar is not None and hasattr(optimizer, "register_step_post_hook"):
            self._hook = optimizer.register_step_post_hook(lambda *_: self._stepped())

    def _stepped(self) -> None:
        self.steps += 1
        self.bar.update(self.task, steps=self.steps)

    def phase(self, name: str) -> None:
        """The iteration moved on to `name` (rollout, credit, update, sync, eval)."""
        self.steps = 0
        if self.bar is not None:
            self.bar.update(self.task, phase=name, since=time.perf_counter(), steps=0)

    def iteration_done(self, metrics: dict[str, Any]) -> None:
        """Advance the bar and print the iteration's summary line."""
        if self.bar is not None:
            self.bar.update(self.task, advance=1, phase="", since=time.perf_counter())
        if not self.quiet:
            self.echo(summary_line(metrics, self.iterations))

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class SFTBar:
    """SFT's progress: a bar (steps, loss, tokens/s, time left) on a terminal, else a line at
    every tenth of the steps (log files)."""

    def __init__(self, *, echo: Callable[[str], Any] = print, console: Any = None) -> None:
        self.echo, self.console = echo, console or Console()
        self.bar = self.task = None
        self.total = self.done = 0
        self.tokens = 0.0
        self.started = time.perf_counter()

    def start(self, steps: int) -> None:
        self.total, self.started = steps, time.perf_counter()
        if self.console.is_terminal:
            self.bar = Progress(TextColumn("sft"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]:.3f}"),
                                TextColumn("{task.fields[rate]:.0f} tok/s"),
                                TimeRemainingColumn(), console=self.console, refresh_per_second=2)
            self.task = self.bar.add_task("sft", total=steps, loss=float("nan"), rate=0.0)
            self.bar.start()

    def step(self, loss: float, tokens: float) -> None:
        self.done += 1
        self.tokens += tokens
        rate = self.tokens / max(time.perf_counter() - self.started, 1e-9)
        if self.bar is not None:
            self.bar.update(self.task, advance=1, loss=loss, rate=rate)
        elif self.done * 10 // self.total > (self.done - 1) * 10 // self.total:  # each tenth
            elapsed = time.perf_counter() - self.started
            left = elapsed / self.done * (self.total - self.done)
            self.echo(f"sft: step {self.done}/{self.total}  loss {loss:.3f}  {rate:.0f} tok/s  "
                      f"{_clock(elapsed)} elapsed, {_clock(left)} left")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class _PhaseColumn(ProgressColumn):
    """The running phase and its seconds so far, redrawn live."""

    def render(self, task) -> Text:
        phase = task.fields.get("phase", "")
        if not phase:
            return Text("")
        text = f"{phase} {time.perf_counter() - task.fields['since']:.0f}s"
        if phase == "update" and task.fields.get("steps"):
            text += f" \u00b7 step {task.fields['steps']}"  # optimizer steps so far
        return Text(text, style="cyan")
