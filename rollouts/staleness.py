"""Policy versions on samples: which trajectories are too old to train on.

Each completion carries the version of the policy that generated it (the engine's version when
the request started); a trajectory is as old as its oldest turn. With `max_staleness` s, the
trainer at version v keeps trajectories of version >= v - s; s = 0 is strictly on-policy.
"""

from __future__ import annotations

from collections.abc import Sequence

from .trajectory import Trajectory


def split_stale(trajectories: Sequence[Trajectory], *, current_version: int,
                max_staleness: int) -> tuple[list[Trajectory], list[Trajectory]]:
    """(fresh, stale): stale ones come from a policy more than `max_staleness` versions old."""
    if max_staleness < 0:
        raise ValueError(f"rollout.max_staleness={max_staleness}: must be >= 0")
    fresh, stale = [], []
    for trajectory in trajectories:
        age = current_version - trajectory.version
        (stale if age > max_staleness else fresh).append(trajectory)
    return fresh, stale
