"""The rollout stage: a producer that keeps playing whole groups with the newest weights.

The trainer asks for groups (`request`): one step's worth at the start of each step, and one
more for each group it throws away (stale, all rewards equal) while it may still look for
others. The producer plays up to `lookahead` groups beyond what was asked, so they are ready
when the trainer comes back from its update: `lookahead = k x groups per step` is asynchronous
training with a staleness cap of k policy versions, and `lookahead = 0` plays exactly what was
asked for, which is the synchronous loop. Finished groups wait in the order they finished.

A group's task and sampling seed are functions of its index alone (`GroupSource`), so a resumed
run replays exactly the groups that were started but never trained on, and skips the others.
Episodes in flight simply go on when the engine's weights change (partial rollouts): every
turn records the version that generated it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..envs.base import Task
from .progress import RolloutProgress
from .trajectory import Trajectory


@dataclass
class Group:
    """The episodes of one task, played together; trained on or discarded as a whole."""

    index: int
    trajectories: list[Trajectory]
    started_version: int  # the engine's version when its first episode started

    @property
    def version(self) -> int:
        """The oldest policy version that generated any of its turns."""
        versions = [turn.version for t in self.trajectories for turn in t.turns]
        return min(versions, default=self.started_version)

    def age(self, version: int) -> int:
        """How many versions older than `version` its oldest turn is."""
        return version - self.version


class GroupSource(Protocol):
    """Which task group `index` plays, and with which sampling seed (None: unseeded)."""

    def task(self, index: int) -> Task: ...

    def seed(self, index: int) -> int | None: ...


class GroupProducer:
    """Plays groups ahead of the trainer; see the module docstring."""

    def __init__(self, orchestrator, source: GroupSource, *, group_size: int, lookahead: int,
                 done: Iterable[int] = (), progress: RolloutProgress | None = None) -> None:
        if lookahead < 0:
            raise ValueError(f"lookahead={lookahead}: must be >= 0")
        self.orchestrator, self.source = orchestrator, source
        self.group_size, self.lookahead = group_size, lookahead
        self.progress = progress
        self.done: set[int] = set(done)  # trained on or discarded (a resumed run skips these)
        self.asked = 0  # groups requested by the trainer
        self.started = 0  # groups started by this producer
        self.replayed = 0  # started groups a checkpoint had not seen finish (see `resume`)
        self._next = 0  # the next index to consider
        self._finished: asyncio.Queue[Group | BaseException] = asyncio.Queue()
        self._running: set[asyncio.Task] = set()
        self._in_flight: set[int] = set()

    def request(self, n: int) -> None:
        """The trainer wants `n` more groups; start what the lookahead now allows."""
        self.asked += n
        self._fill()

    async def take(self) -> Group:
        """The next finished group (waits for one); a producer error is raised here."""
        item = await self._finished.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def consumed(self, group: Group) -> None:
        """`group` was trained on or discarded: a resumed run must not play it again."""
        self.done.add(group.index)

    def state(self) -> dict:
        """What a checkpoint keeps: every index below `next` that is not in `done` is replayed."""
        watermark = min([i for i in range(self._next) if i not in self.done], default=self._next)
        return {"next": self._next, "watermark": watermark,
                "done": sorted(i for i in self.done if i >= watermark)}

    @staticmethod
    def resume(state: dict | None) -> tuple[set[int], int]:
        """(done indices, how many started groups are replayed) from a checkpoint's state."""
        if not state:
            return set(), 0
        done = set(range(state["watermark"])) | set(state["done"])
        return done, sum(1 for i in range(state["next"]) if i not in done)

    @property
    def in_flight(self) -> int:
        """Groups started and not finished yet."""
        return len(self._in_flight)

    async def close(self) -> None:
        """Stop every group in flight (their episodes close their environments)."""
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        self._running.clear()

    # ----------------------------------------------------------------------------- internals

    def _fill(self) -> None:
        while self.started < self.asked + self.lookahead:
            while self._next in self.done:
                self._next += 1
            index, self._next = self._next, self._next + 1
            self.started += 1
            self._in_flight.add(index)
            task = asyncio.ensure_future(self._play(index))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _play(self, index: int) -> None:
        version = self.orchestrator.engine.version
        try:
            trajectories = await self.orchestrator.rollout(
                [self.source.task(index)], group_size=self.group_size, tag=f"g{index}",
                seed=self.source.seed(index), progress=self.progress)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug, not an episode's failure: the trainer must see it
            self._finished.put_nowait(exc)
            return
        finally:
            self._in_flight.discard(index)
        self._finished.put_nowait(Group(index, trajectories, version))
