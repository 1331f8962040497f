"""Critique-GRPO (Zhang et al. 2025): initial responses and critique-guided refinements trained
together, for episodes played with feedback turns (`envs.feedback`, kind critique).

An episode's turns split into attempts at the turns that follow a feedback observation (their
anchor is a `FeedbackMark`, which also carries the score of the answer judged wrong). Attempt 1
is the initial response; later attempts are refinements. Per prompt group, the `refinements`
best refinements (highest score, the first on ties: the reference picks a correct one when there
is one, else the best) join all initial responses in one group, and each gets
A = score - mean(group) (the reference trains without the std: `norm: mean`; `mean_std`
divides by the sample std + eps). Refinements not selected get 0. Scores are the task's own
(the suite's score, else its reward), not the decayed episode reward.

Where this differs from the reference: the refinement is trained where it was generated, after
the critique, so it is on-policy and PPO's ratio applies to it. The reference moves it to the
bare question, where it is off-policy and weighted by the shaping f(p) = p / (p + 0.1) instead
of a ratio; that needs rows the credit stage would have to build (docs/feedback.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..envs.feedback.env import FeedbackMark
from ..rollouts.trajectory import Trajectory
from .registry import register
from .stats import as_float_array, factorize, group_mean_std

NORMS = ("mean", "mean_std")


def critique_grpo_advantages(scores, groups, refinement, *, refinements: int = 1,
                             norm: str = "mean", eps: float = 1e-6
                             ) -> tuple[np.ndarray, np.ndarray]:
    """One row per attempt: (advantage, trained) per row.

    `refinement[i]` marks rows that are refinements. Per group, every initial row and the
    `refinements` highest-scoring refinement rows (earliest first on ties) form the group that
    is normalised; the other refinement rows get advantage 0 and trained False. A group of one
    row has mean 0 and std 1, as in GRPO.
    """
    if norm not in NORMS:
        raise ValueError(f"critique_grpo: norm={norm!r}: allowed are {list(NORMS)}")
    if isinstance(refinements, bool) or not isinstance(refinements, int) or refinements < 0:
        raise ValueError(f"critique_grpo: refinements={refinements!r}: allowed is an integer "
                         ">= 0 (refinements per group trained with the initial responses)")
    scores = as_float_array(scores, "scores")
    ids, count = factorize(groups, "groups")
    refinement = np.asarray(refinement, dtype=bool)
    if not (scores.shape == ids.shape == refinement.shape):
        raise ValueError(f"critique_grpo: scores {scores.shape}, groups {ids.shape} and "
                         f"refinement {refinement.shape} must be equal 1-D shapes")
    trained = ~refinement
    for group in range(count):
        candidates = np.flatnonzero(refinement & (ids == group))
        best = candidates[np.argsort(-scores[candidates], kind="stable")][:refinements]
        trained[best] = True
    members = np.flatnonzero(trained)
    mean, std, _ = group_mean_std(scores[members], ids[members], count, ddof=1,
                                  singleton_mean_zero=True)
    advantages = np.zeros_like(scores)
    centred = scores[members] - mean[ids[members]]
    advantages[members] = centred if norm == "mean" else centred / (std[ids[members]] + eps)
    return advantages, trained


def attempts(traj: Trajectory) -> list[tuple[int, int, float]]:
    """(first turn, end turn, score) of each attempt of `traj`; an episode cut off before its
    last answer scores that attempt by its reward so far (0)."""
    starts = [0] + [i for i, turn in enumerate(traj.turns) if isinstance(turn.anchor, FeedbackMark)]
    scores = [traj.turns[i].anchor.score for i in starts[1:]]
    scores.append(float(traj.info.get("score", traj.outcome_reward)))
    return list(zip(starts, starts[1:] + [len(traj.turns)], scores))


@register("critique_grpo")
def critique_grpo(trajectories: Sequence[Trajectory], *, refinements: int = 1,
                  norm: str = "mean", eps: float = 1e-6) -> list[np.ndarray]:
    """Critique-GRPO over feedback-turn episodes; every turn of an attempt gets its advantage."""
    for traj in trajectories:
        _check_unshaped(traj)
    rows = [(i, start, end, score, n > 0) for i, traj in enumerate(trajectories)
            for n, (start, end, score) in enumerate(attempts(traj))]
    advantages, _ = critique_grpo_advantages(
        [r[3] for r in rows], [trajectories[r[0]].uid for r in rows], [r[4] for r in rows],
        refinements=refinements, norm=norm, eps=eps)
    out = [np.zeros(len(t.turns)) for t in trajectories]
    for (i, start, end, _score, _ref), value in zip(rows, advantages):
        out[i][start:end] = value
    return out


def _check_unshaped(traj: Trajectory) -> None:
    # Attempts are valued by their scores; a penalty shaped into turn rewards would be dropped.
    shaped = "shaping" in traj.info or any(t.reward != 0.0 for t in traj.turns[:-1])
    if shaped:
        raise ValueError(f"critique_grpo: trajectory {traj.traj_id} has shaped turn rewards "
                         f"({traj.info.get('shaping', 'a reward before the last turn')}); it "
                         "values attempts by their task scores, so credit.invalid_penalty, "
                         "credit.overlong and kl.target='reward' are not supported with it; "
                         "allowed: 0, null and 'loss'")
