"""The rollout progress bar: episodes done and in flight, environment steps (tool calls, in a
suite with tools) in flight, tokens per second.

The orchestrator talks to it through `RolloutProgress` only, so another display (or none) can
take its place: `make_progress(quiet=True)` gives one that shows nothing.
"""

from __future__ import annotations

import time
from typing import Protocol

from .trajectory import Trajectory


class RolloutProgress(Protocol):
    """What the orchestrator reports while it runs."""

    def add_episodes(self, n: int) -> None:
        """`n` more episodes are expected (ARPO adds its branches as it makes them)."""

    def episode_started(self) -> None: ...

    def episode_finished(self, trajectory: Trajectory) -> None: ...

    def tool_started(self) -> None: ...

    def tool_finished(self) -> None: ...

    def generated(self, tokens: int) -> None:
        """`tokens` response tokens came back from the engine."""

    def close(self) -> None: ...


class NullProgress:
    """Counts like the bar does, shows nothing (quiet runs, tests)."""

    def __init__(self) -> None:
        self.total = self.done = self.in_flight = self.tools = self.tokens = 0
        self.started = time.perf_counter()

    def add_episodes(self, n: int) -> None:
        self.total += n

    def episode_started(self) -> None:
        self.in_flight += 1

    def episode_finished(self, trajectory: Trajectory) -> None:
        self.in_flight -= 1
        self.done += 1

    def tool_started(self) -> None:
        self.tools += 1

    def tool_finished(self) -> None:
        self.tools -= 1

    def generated(self, tokens: int) -> None:
        self.tokens += tokens

    def tokens_per_second(self) -> float:
        return self.tokens / max(time.perf_counter() - self.started, 1e-9)

    def close(self) -> None:
        pass


class RichProgress(NullProgress):
    """A one-line rich bar; redraws at most a few times a second, whatever the event rate."""

    def __init__(self, description: str, console=None, *, steps_label: str = "tools") -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        super().__init__()
        self.steps_label = steps_label
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("in flight {task.fields[in_flight]}"),
            TextColumn(f"{steps_label} {{task.fields[tools]}}"),
            TextColumn("{task.fields[rate]:.0f} tok/s"), TimeElapsedColumn(),
            refresh_per_second=4, console=console,
        )
        self._task = self._bar.add_task(description, total=0, in_flight=0, tools=0, rate=0.0)
        self._bar.start()

    def _refresh(self) -> None:
        self._bar.update(self._task, total=self.total, completed=self.done,
                         in_flight=self.in_flight, tools=self.tools, rate=self.tokens_per_second())

    def add_episodes(self, n: int) -> None:
        super().add_episodes(n)
        self._refresh()

    def episode_started(self) -> None:
        super().episode_started()
        self._refresh()

    def episode_finished(self, trajectory: Trajectory) -> None:
        super().episode_finished(trajectory)
        self._refresh()

    def tool_started(self) -> None:
        super().tool_started()
        self._refresh()

    def tool_finished(self) -> None:
        super().tool_finished()
        self._refresh()

    def generated(self, tokens: int) -> None:
        super().generated(tokens)
        self._refresh()

    def close(self) -> None:
        self._refresh()
        self._bar.stop()


def make_progress(description: str = "rollout", *, quiet: bool = False,
                  tools: bool = True) -> RolloutProgress:
    """A rich bar, or with `quiet` a silent counter with the same interface. The steps in flight
    are tool calls where the suite has `tools`, else environment steps, and say so."""
    if quiet:
        return NullProgress()
    return RichProgress(description, steps_label="tools" if tools else "env steps")
