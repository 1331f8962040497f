"""The trainer's side of the rollout stage: which task each group plays, and taking one step's
groups from the producer (`rollouts.producer`), dropping those a step must not train on.

Groups are numbered; step by step, this rank plays its share of `tasks_per_iteration` tasks
drawn with the run's seed (group g: slot g // share, position g % share), so the synchronous
loop plays exactly the tasks and seeds it always has, and a resumed run replays the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import credit
from ..envs.base import EnvSuite, Task
from ..rollouts.producer import Group, GroupProducer
from ..rollouts.trajectory import Trajectory
from .dist import World


class SuiteSource:
    """`GroupSource` over a suite's split: slots of `tasks_per_step` tasks, this rank's share."""

    def __init__(self, suite: EnvSuite, split: str, *, tasks_per_step: int, world: World,
                 seed: int, group_size: int, seeded: bool) -> None:
        self.suite, self.split, self.world = suite, split, world
        self.tasks_per_step, self.seed_base, self.group_size = tasks_per_step, seed, group_size
        self.seeded = seeded
        self.share = len(world.shard(range(tasks_per_step)))
        self._slot: tuple[int, list[Task]] | None = None

    def task(self, index: int) -> Task:
        slot, position = divmod(index, self.share)
        if self._slot is None or self._slot[0] != slot:
            drawn = self.suite.tasks(self.split, self.tasks_per_step,
                                     self.seed_base * 100_003 + slot)
            self._slot = (slot, self.world.shard(drawn))
        return self._slot[1][position]

    def seed(self, index: int) -> int | None:
        """Per-request sampling seeds when the run is deterministic (distinct per rank)."""
        if not self.seeded:
            return None
        slot, position = divmod(index, self.share)
        base = ((self.seed_base * 100_003 + slot) * 1024 + self.world.rank) * 100_000
        return base + position * self.group_size


@dataclass(frozen=True)
class StepPolicy:
    """Which finished groups a step trains on."""

    groups: int  # groups one step trains on (this rank's share)
    max_staleness: int
    stale_groups: str = "drop"  # drop | correct
    max_rolls: int | None = None  # DAPO dynamic sampling: examine at most max_rolls x groups


@dataclass
class Taken:
    """One step's groups: those to train on, and every one examined (for the metrics)."""

    kept: list[Group] = field(default_factory=list)
    examined: list[Group] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def trajectories(self) -> list[Trajectory]:
        return [t for g in self.kept for t in g.trajectories if trainable(t)]

    def played(self) -> list[Trajectory]:
        return [t for g in self.examined for t in g.trajectories]


def trainable(trajectory: Trajectory) -> bool:
    """An episode that produced at least one turn and did not fail."""
    return bool(trajectory.turns) and trajectory.status != "failed"


async def take_step(producer: GroupProducer, policy: StepPolicy, *, version: int) -> Taken:
    """Ask for a step's groups and take finished ones until enough are kept (or, with dynamic
    sampling, `max_rolls` x groups were examined). Discarded groups are replaced while allowed:
    stale ones always, flat or failed ones under dynamic sampling."""
    producer.request(policy.groups)
    limit = policy.groups * (policy.max_rolls or 1)
    out, asked = Taken(), policy.groups
    counts = {"stale_dropped": 0, "stale_kept": 0, "flat": 0, "failed": 0}
    while len(out.kept) < policy.groups and len(out.examined) < asked:
        group = await producer.take()
        out.examined.append(group)
        producer.consumed(group)
        verdict = _verdict(group, policy, version)
        counts[verdict] = counts.get(verdict, 0) + 1
        if verdict in ("keep", "stale_kept"):
            out.kept.append(group)
        elif verdict == "stale_dropped" or (
                policy.max_rolls and asked - counts["stale_dropped"] < limit):
            producer.request(1)  # stale ones are always replaced; they do not count as rolls
            asked += 1
    if policy.max_rolls and not out.kept:
        raise RuntimeError(
            f"credit.dynamic_sampling: every one of {len(out.examined)} groups had equal rewards "
            f"or failed; raise credit.dynamic_sampling.max_rolls (now {policy.max_rolls}) or "
            f"warm the policy up first (sft)")
    out.metrics = _metrics(out, counts, policy, version)
    return out


def _verdict(group: Group, policy: StepPolicy, version: int) -> str:
    usable = [t for t in group.trajectories if trainable(t)]
    if not usable:
        return "failed"
    if group.age(version) > policy.max_staleness:
        return "stale_kept" if policy.stale_groups == "correct" else "stale_dropped"
    if policy.max_rolls and not credit.keep_varied_groups(usable)[0]:
        return "flat"
    return "keep"


def _metrics(taken: Taken, counts: dict[str, int], policy: StepPolicy,
             version: int) -> dict[str, float]:
    ages = [g.age(version) for g in taken.kept]
    out = {"async/staleness_mean": sum(ages) / len(ages) if ages else 0.0,
           "async/staleness_max": float(max(ages, default=0)),
           "async/stale_dropped": float(counts["stale_dropped"]),
           "async/stale_kept": float(counts["stale_kept"])}
    if policy.max_rolls:
        out.update({"dynamic_sampling/rolls": len(taken.examined) / policy.groups,
                    "dynamic_sampling/dropped_groups": float(counts["flat"]),
                    "dynamic_sampling/kept_groups": float(len(taken.kept))})
    return out
