"""Critique-GRPO's advantages, computed by hand, on arrays and on feedback-turn trajectories."""

from __future__ import annotations

import math

import numpy as np
import pytest
from credit_helpers import traj, turn
from turnwise import credit
from turnwise.credit.critique_grpo import attempts, critique_grpo_advantages
from turnwise.envs.feedback import FeedbackMark


def test_initial_responses_and_the_best_refinement_form_one_group():
    # Group g: initial scores 1, 0, 0; refinements 0 (row 3) and 1 (row 4). The best refinement
    # (row 4) joins: {1, 0, 0, 1}, mean 0.5, so A = +0.5, -0.5, -0.5, +0.5; row 3 is not trained.
    # Group h: initial 0.4 and 0.8, no refinement: mean 0.6, A = -0.2, +0.2.
    adv, trained = critique_grpo_advantages(
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.4, 0.8], ["g", "g", "g", "g", "g", "h", "h"],
        [False, False, False, True, True, False, False])
    np.testing.assert_allclose(adv, [0.5, -0.5, -0.5, 0.0, 0.5, -0.2, 0.2])
    assert trained.tolist() == [True, True, True, False, True, True, True]


def test_mean_std_divides_by_the_sample_std_of_the_mixed_group():
    # {1, 0, 0, 1}: sample variance (4 x 0.25) / 3 = 1/3, std 0.5773503;
    # 0.5 / (0.5773503 + 1e-6) = 0.8660239.
    adv, _ = critique_grpo_advantages([1.0, 0.0, 0.0, 0.0, 1.0], ["g"] * 5,
                                      [False, False, False, True, True], norm="mean_std")
    np.testing.assert_allclose(adv, [0.8660239, -0.8660239, -0.8660239, 0.0, 0.8660239],
                               atol=1e-7)


def test_ties_keep_the_first_refinement_and_more_can_be_selected():
    # Refinements 0.5 (row 1) and 0.5 (row 2): row 1 wins the tie. Group {0, 0.5}: A = -0.25, 0.25.
    adv, trained = critique_grpo_advantages([0.0, 0.5, 0.5], ["g"] * 3, [False, True, True])
    np.testing.assert_allclose(adv, [-0.25, 0.25, 0.0])
    # Both selected: {0, 0.5, 0.5}, mean 1/3: A = -1/3, 1/6, 1/6.
    adv, trained = critique_grpo_advantages([0.0, 0.5, 0.5], ["g"] * 3, [False, True, True],
                                            refinements=2)
    np.testing.assert_allclose(adv, [-1 / 3, 1 / 6, 1 / 6])
    # None selected: plain GRPO without std over the initial responses; a lone row gets its score.
    adv, trained = critique_grpo_advantages([0.0, 0.5, 0.5], ["g"] * 3, [False, True, True],
                                            refinements=0)
    np.testing.assert_allclose(adv, [0.0, 0.0, 0.0])
    assert trained.tolist() == [True, False, False]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"norm": "std"}, r"norm='std': allowed are \['mean', 'mean_std'\]"),
    ({"refinements": -1}, r"refinements=-1: allowed is an integer >= 0"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        critique_grpo_advantages([1.0], ["g"], [False], **kwargs)


def critiqued(uid, traj_id, first_score, final_score, *, refined=True, extra_turn=False):
    """An episode: attempt 1 (a search, then an answer), then after a critique a refinement
    (one answer, or a search and an answer)."""
    turns = [turn(), turn()]
    if refined:
        turns.append(turn(anchor=FeedbackMark(2, first_score, "critique")))
        if extra_turn:
            turns.append(turn())
    episode = traj(uid, traj_id, turns, outcome=final_score)
    episode.turns[-1].reward = final_score
    episode.info["score"] = final_score if refined else first_score
    return episode


def test_the_estimator_splits_episodes_at_the_feedback_marks():
    episodes = [critiqued("q", "a", 1.0, 1.0, refined=False),  # solved at once
                critiqued("q", "b", 0.0, 1.0, extra_turn=True),  # refined right, 2 turns
                critiqued("q", "c", 0.0, 0.0),  # refined wrong: not selected
                critiqued("r", "d", 0.0, 0.0)]  # alone in its group
    assert attempts(episodes[1]) == [(0, 2, 0.0), (2, 4, 1.0)]
    advantages = credit.compute("critique_grpo", episodes, {})
    # Group q: initial 1, 0, 0 and b's refinement 1: mean 0.5.
    np.testing.assert_allclose(advantages[0], [0.5, 0.5])
    np.testing.assert_allclose(advantages[1], [-0.5, -0.5, 0.5, 0.5])
    np.testing.assert_allclose(advantages[2], [-0.5, -0.5, 0.0])
    # Group r: initial 0 and its refinement 0: mean 0, A = 0 everywhere.
    np.testing.assert_allclose(advantages[3], [0.0, 0.0, 0.0])


def test_an_episode_cut_short_scores_its_last_attempt_by_its_reward_so_far():
    cut = traj("q", "a", [turn(), turn(anchor=FeedbackMark(2, 0.25, "critique"))], outcome=0.0)
    assert attempts(cut) == [(0, 1, 0.25), (1, 2, 0.0)]


def test_shaped_rewards_are_refused_not_dropped():
    shaped = critiqued("q", "a", 0.0, 1.0)
    shaped.info["shaping"] = {"invalid": -0.1}
    with pytest.raises(ValueError, match=r"credit.invalid_penalty, credit.overlong and "
                                         r"kl.target='reward' are not supported"):
        credit.compute("critique_grpo", [shaped], {})
    kl = critiqued("q", "b", 0.0, 1.0)
    kl.turns[0].reward = -0.01
    with pytest.raises(ValueError, match="a reward before the last turn"):
        credit.compute("critique_grpo", [kl], {})


def test_unknown_estimator_options_are_refused():
    with pytest.raises(ValueError, match=r"\['refine'\] are not options of estimator "
                                         r"'critique_grpo'; did you mean \['refinements'\]"):
        credit.check_options("critique_grpo", {"refine": 1})
    assert math.isclose(credit.compute("critique_grpo", [critiqued("q", "a", 1.0, 1.0,
                                                                   refined=False)], {})[0][0], 1.0)
