"""IGPO advantages computed by hand (semantics of the IGPO reference, revised 2026-02)."""

from __future__ import annotations

import numpy as np
import pytest
from turnwise.credit import igpo_advantages

EPS = 1e-6
# Group g: trajectory 1 has 3 turns, gold-answer log-probs before them -3, -2, -0.5, outcome 1;
# trajectory 2 has 2 turns, log-probs -3, -3.5, outcome 0.
CASE = {"groups": ["g", "g"], "answer_logprobs": [[-3.0, -2.0, -0.5], [-3.0, -3.5]],
            "outcome_rewards": [1.0, 0.0]}


def test_log_prob_diff_separate_pools_gamma_one():
    out = igpo_advantages(**CASE)
    # IG (log_prob_diff): t1: -2 - -3 = 1, -0.5 - -2 = 1.5; t2: -3.5 - -3 = -0.5
    # IG pool 1, 1.5, -0.5: mean 2/3; population var ((1/3)^2 + (5/6)^2 + (7/6)^2) / 3 = 0.722222
    s = np.sqrt(0.722222222 + 1e-8) + EPS  # 0.849838
    n1, n2, n3 = (1 - 2 / 3) / s, (1.5 - 2 / 3) / s, (-0.5 - 2 / 3) / s  # .392232, .980581, -1.372813
    # outcome pool 1, 0: mean .5, population var .25 -> +-.5 / (sqrt(.25 + 1e-8) + eps) = +-.999998
    o = 0.5 / (np.sqrt(0.25 + 1e-8) + EPS)
    # gamma 1: A_t = n_t + A_{t+1}
    assert out[0] == pytest.approx([n1 + n2 + o, n2 + o, o])
    assert out[1] == pytest.approx([n3 - o, -o])
    assert out[0] == pytest.approx([2.372811, 1.980579, 0.999998], abs=1e-5)


def test_joint_pool():
    out = igpo_advantages(**CASE, pool="joint")
    # one pool 1, 1.5, -0.5, 1 (outcome), 0 (outcome): mean .6, population var 2.7 / 5 = .54
    s = np.sqrt(0.54 + 1e-8) + EPS  # 0.734848
    assert out[0] == pytest.approx([(0.4 + 0.9 + 0.4) / s, (0.9 + 0.4) / s, 0.4 / s])
    assert out[1] == pytest.approx([(-1.1 - 0.6) / s, -0.6 / s])


def test_prob_diff_uses_probabilities():
    out = igpo_advantages(**CASE, ig="prob_diff", gamma=0.0)
    # probabilities e^-3 = .049787, e^-2 = .135335, e^-.5 = .606531, e^-3.5 = .030197
    gains = np.array([0.135335283 - 0.049787068, 0.606530660 - 0.135335283,
                      0.030197383 - 0.049787068])  # .085548, .471195, -.019590
    mean = gains.mean()
    s = np.sqrt(((gains - mean) ** 2).mean() + 1e-8) + EPS
    o = 0.5 / (np.sqrt(0.25 + 1e-8) + EPS)
    # gamma 0: each turn keeps its own normalised reward
    assert out[0] == pytest.approx([(gains[0] - mean) / s, (gains[1] - mean) / s, o], rel=1e-6)
    assert out[1] == pytest.approx([(gains[2] - mean) / s, -o], rel=1e-6)


def test_ig_std_floor_keeps_tiny_gains_small():
    # Two searches read the same passage: gains 10.00 and 10.02 (std .01). The reference divides
    # by .01 and each gain becomes +-1, as large as the outcome's +-1.
    case = {"groups": ["g", "g"], "answer_logprobs": [[-12.0, -2.0], [-12.0, -1.98]],
            "outcome_rewards": [1.0, 0.0]}
    o = 0.5 / (np.sqrt(0.25 + 1e-8) + EPS)  # outcome pool 1, 0 -> +-.999998
    plain = igpo_advantages(**case)
    s = np.sqrt(0.0001 + 1e-8) + EPS  # population std of 10, 10.02 -> .01
    assert plain[0] == pytest.approx([-0.01 / s + o, o])  # -1 + 1: the solved search gets 0
    assert plain[1] == pytest.approx([0.01 / s - o, -o])  # the wording decides +-1
    floored = igpo_advantages(**case, ig_std_floor=1.0)
    # The gain pool is divided by max(.01, 1) = 1: -.01 and +.01; the outcome pool is unchanged.
    assert floored[0] == pytest.approx([-0.01 / (1 + EPS) + o, o])
    assert floored[1] == pytest.approx([0.01 / (1 + EPS) - o, -o])
    # A pool whose std is above the floor is normalised as before.
    assert np.concatenate(igpo_advantages(**CASE, ig_std_floor=0.5)) == pytest.approx(
        np.concatenate(igpo_advantages(**CASE)))  # the CASE's gain pool has std .85
    # Joint pool: the floor applies to it (it holds gains); a pool of outcomes only never.
    joint = igpo_advantages(**case, pool="joint", ig_std_floor=100.0)
    values = np.array([10.0, 10.02, 1.0, 0.0])  # mean 5.255, std 4.76 < 100 -> / 100
    assert joint[1][1] == pytest.approx((0.0 - values.mean()) / (100 + EPS))
    alone = igpo_advantages(groups=["h", "h"], answer_logprobs=[[-1.0], [-1.0]],
                            outcome_rewards=[1.0, 0.0], ig_std_floor=100.0)
    assert np.concatenate(alone) == pytest.approx([o, -o])


def test_discounting_backwards():
    out = igpo_advantages(**CASE, gamma=0.5)
    # t1: A2 = .999998, A1 = .980581 + .5 * .999998 = 1.480580, A0 = .392232 + .5 * 1.480580
    assert out[0] == pytest.approx([1.132522, 1.480580, 0.999998], abs=1e-5)
    # t2: A1 = -.999998, A0 = -1.372813 - .5 * .999998 = -1.872812
    assert out[1] == pytest.approx([-1.872812, -0.999998], abs=1e-5)


def test_singleton_pools_and_all_equal_groups():
    out = igpo_advantages(groups=["a", "b", "c", "c"],
                          answer_logprobs=[[-1.0], [-2.0, -1.0], [-2.0, -1.0], [-2.0, -1.0]],
                          outcome_rewards=[0.7, 1.0, 1.0, 1.0])
    # a: one turn, outcome pool of one -> std 1 and mean = the value itself -> 0
    # b: IG pool {1} and outcome pool {1} are singletons -> 0, 0
    # c: IG pool {1, 1}, outcome pool {1, 1}: every value equals its mean -> 0
    assert [list(v) for v in out] == [[0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]


def test_groups_are_normalised_apart():
    out = igpo_advantages(groups=["g", "g", "h", "h"], answer_logprobs=[[-1.0]] * 4,
                          outcome_rewards=[1.0, 0.0, 5.0, 3.0])
    # g: 1, 0 -> +-.5 / (.5 + eps); h: 5, 3 -> mean 4, var 1 -> +-1 / (1 + eps)
    assert np.concatenate(out) == pytest.approx([0.5 / (0.5 + EPS), -0.5 / (0.5 + EPS),
                                                 1 / (1 + EPS), -1 / (1 + EPS)], rel=1e-6)


@pytest.mark.parametrize("bad, match", [({"ig": "diff"}, "ig="), ({"pool": "both"}, "pool="),
                                        ({"gamma": 2.0}, "gamma"),
                                        ({"ig_std_floor": -1.0}, "ig_std_floor")])
def test_bad_options_are_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        igpo_advantages(**CASE, **bad)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="one entry per trajectory"):
        igpo_advantages(groups=["g"], answer_logprobs=[[-1.0], [-1.0]], outcome_rewards=[1, 0])
    with pytest.raises(ValueError, match="no turns"):
        igpo_advantages(groups=["g"], answer_logprobs=[[]], outcome_rewards=[1])
    with pytest.raises(ValueError, match="non-finite"):
        igpo_advantages(groups=["g"], answer_logprobs=[[-np.inf, -1.0]], outcome_rewards=[1])
