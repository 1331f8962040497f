"""IGPO (Wang et al., Ant Group 2025): information gain about the gold answer as turn rewards.

Before every turn the policy's mean log-prob of the gold answer is measured (the scoring pass in
`trainer.igpo_scoring`). A turn that is not the last earns the gain it caused; the last turn
earns the outcome reward. Rewards are normalised within each prompt group and then summed
backwards over turns. Defaults follow the reference's training script (revised 2026-02):
`log_prob_diff`, `separate` pools, gamma 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .registry import register
from .stats import as_float_array, factorize, group_mean_std

IG_KINDS = ("log_prob_diff", "prob_diff")
POOLS = ("separate", "joint")


def igpo_advantages(*, groups, answer_logprobs, outcome_rewards, ig: str = "log_prob_diff",
                    pool: str = "separate", gamma: float = 1.0, ig_std_floor: float = 0.0,
                    eps: float = 1e-6) -> list[np.ndarray]:
    """One array per trajectory, one advantage per turn.

    `answer_logprobs[i][t]` is trajectory i's mean gold-answer log-prob before its turn t (entry
    0: the bare prompt), so trajectory i has `len(answer_logprobs[i])` turns. Turn t < T-1 gets
    IG_t = lp[t+1] - lp[t] (`prob_diff`: exp(lp[t+1]) - exp(lp[t])), turn T-1 the outcome reward.
    Each pool of a group is normalised as (r - mu) / (sqrt(var + 1e-8) + eps), population var;
    a pool of one value has std 1. `ig_std_floor` > 0 (not in the reference) divides a pool
    holding gains by at least that std, so gains that differ by far less (the same passage read
    after differently worded queries) are not stretched to the outcome's scale. Then
    A_t = n_t + gamma * A_{t+1}.
    """
    if ig not in IG_KINDS:
        raise ValueError(f"igpo: ig={ig!r}: allowed are {list(IG_KINDS)}")
    if pool not in POOLS:
        raise ValueError(f"igpo: pool={pool!r}: allowed are {list(POOLS)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"igpo: gamma={gamma!r}: must be in [0, 1]")
    if not ig_std_floor >= 0.0:
        raise ValueError(f"igpo: ig_std_floor={ig_std_floor!r}: must be >= 0")
    outcomes = as_float_array(outcome_rewards, "outcome_rewards")
    group_ids, n_groups = factorize(groups, "groups")
    logprobs = [as_float_array(lp, f"answer_logprobs[{i}]") for i, lp in enumerate(answer_logprobs)]
    if not (len(group_ids) == len(logprobs) == len(outcomes)):
        raise ValueError(f"igpo: groups ({len(group_ids)}), answer_logprobs ({len(logprobs)}) and "
                         f"outcome_rewards ({len(outcomes)}) need one entry per trajectory")
    if not logprobs:
        return []
    empty = [i for i, lp in enumerate(logprobs) if len(lp) == 0]
    if empty:
        raise ValueError(f"igpo: trajectories {empty[:8]} have no turns (empty answer_logprobs)")

    # Flat table of turn rewards: the information gains, then each trajectory's outcome.
    gains = [np.diff(np.exp(lp) if ig == "prob_diff" else lp) for lp in logprobs]
    counts = np.array([len(g) for g in gains])
    values = np.concatenate(gains + [outcomes])
    owner = np.concatenate([np.repeat(np.arange(len(logprobs)), counts), np.arange(len(logprobs))])
    is_outcome = np.arange(len(values)) >= counts.sum()
    pools = group_ids[owner] * 2 + (is_outcome if pool == "separate" else 0)
    mean, std, _ = group_mean_std(values, pools, 2 * n_groups, ddof=0, singleton_mean_zero=False,
                                  var_eps=1e-8)
    holds_gains = np.zeros(2 * n_groups, dtype=bool)
    holds_gains[pools[~is_outcome]] = True
    std = np.where(holds_gains, np.maximum(std, ig_std_floor), std)
    normed = (values - mean[pools]) / (std[pools] + eps)

    # A_t = n_t + gamma * A_{t+1}, backwards over a [trajectory, turn] table padded with zeros.
    lengths = counts + 1
    table = np.zeros((len(logprobs), int(lengths.max()) + 1))
    turn_index = np.concatenate([np.arange(c) for c in counts] + [counts])
    table[owner, turn_index] = normed
    for t in range(table.shape[1] - 2, -1, -1):
        table[:, t] += gamma * table[:, t + 1]
    return [table[i, :lengths[i]].copy() for i in range(len(logprobs))]


@register("igpo", needs=("answer_logprobs",))
def igpo(trajectories: Sequence, *, ig: str = "log_prob_diff", pool: str = "separate",
         gamma: float = 1.0, ig_std_floor: float = 0.0, eps: float = 1e-6) -> list[np.ndarray]:
    """IGPO from `Trajectory.answer_logprob_prompt` and each turn's `answer_logprob`."""
    logprobs = []
    for t in trajectories:
        before = [t.answer_logprob_prompt] + [turn.answer_logprob for turn in t.turns[:-1]]
        if any(v is None for v in before):
            raise ValueError(f"igpo: trajectory {t.traj_id} lacks gold-answer log-probs; run the "
                             f"scoring pass (trainer.igpo_scoring) before credit assignment")
        logprobs.append(before)
    return igpo_advantages(groups=[t.uid for t in trajectories], answer_logprobs=logprobs,
                           outcome_rewards=[t.outcome_reward for t in trajectories], ig=ig,
                           pool=pool, gamma=gamma, ig_std_floor=ig_std_floor, eps=eps)
