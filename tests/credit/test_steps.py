"""Reward shaping, DAPO dynamic sampling, and their recipe keys."""

from __future__ import annotations

import asyncio

import pytest
from credit_helpers import traj, turn
from turnwise import credit
from turnwise.trainer.config import Config, CreditConfig
from turnwise.trainer.credit_steps import check_credit, dynamic_sampling
from turnwise.trainer.recipe import RecipeError, load_recipe


def test_overlong_penalty_is_dapos_soft_punishment():
    # max 100, buffer 20: free up to 80, then -(L - 80) / 20, down to -1 at 100, clamped beyond
    out = credit.overlong_penalty([10, 80, 90, 100, 120], max_tokens=100, buffer=20)
    assert out == pytest.approx([0, 0, -0.5, -1, -1])
    half = credit.overlong_penalty([90, 95], max_tokens=100, buffer=20, factor=0.5)
    assert half == pytest.approx([-0.25, -0.375])  # -(10/20)*.5, -(15/20)*.5
    with pytest.raises(ValueError, match="buffer"):
        credit.overlong_penalty([1], max_tokens=10, buffer=11)


def test_shaping_steps_return_copies_and_compose():
    # 3 turns of 30 tokens = 90 response tokens; turns 0 and 2 invalid; the last earns 1
    original = traj("g", "a", [turn(30, invalid=True), turn(30), turn(30, reward=1.0, invalid=True)])
    over = credit.apply_overlong_penalty([original], max_tokens=100, buffer=20)[0]
    # overlong: -.5 on the outcome and on the last turn
    assert over.outcome_reward == pytest.approx(0.5) and over.turns[-1].reward == pytest.approx(0.5)
    both = credit.apply_invalid_penalty([over], penalty=0.1)[0]
    # invalid: -.1 on turns 0 and 2, -.2 on the outcome: 0.5 - 0.2 = 0.3
    assert both.outcome_reward == pytest.approx(0.3)
    assert [t.reward for t in both.turns] == pytest.approx([-0.1, 0.0, 0.4])
    assert both.outcome_reward == pytest.approx(sum(t.reward for t in both.turns))
    assert both.info["shaping"] == pytest.approx({"overlong": -0.5, "invalid": -0.2})
    # the environment's rewards stay on the original for metrics
    assert original.outcome_reward == 1.0 and original.turns[-1].reward == 1.0
    assert "shaping" not in original.info
    short = traj("g", "b", [turn(5)])
    assert credit.apply_overlong_penalty([short], max_tokens=100, buffer=20)[0] is short


def test_varied_groups_keep_mask():
    # a: equal -> drop; b: differs -> keep; c: a single row -> keep (verl's DAPO recipe); d: equal
    keep = credit.varied_groups([1, 1, 0, 1, 5, 2, 2, 2], list("aabbcddd"))
    assert keep.tolist() == [False, False, True, True, True, False, False, False]


def _group(uid: str, rewards: list[float]):
    return [traj(uid, f"{uid}/{i}", [turn()], outcome=r) for i, r in enumerate(rewards)]


def test_flat_group_fraction_by_hand():
    # a all equal (flat), b differs, c a single episode (kept, as dynamic sampling keeps it), d flat
    trajs = _group("a", [1, 1]) + _group("b", [0, 1]) + _group("c", [5]) + _group("d", [2, 2, 2])
    assert credit.flat_group_fraction(trajs) == 2 / 4
    assert credit.flat_group_fraction([]) == 0.0


def test_dynamic_sampling_rerolls_until_enough_groups():
    first = _group("a", [1, 1]) + _group("b", [0, 1])
    rolls = {1: _group("c", [0, 2]) + _group("d", [1, 0]) + _group("e", [3, 3])}

    async def reroll(k):
        return rolls[k]

    kept, played, metrics = asyncio.run(dynamic_sampling(first, reroll, want=2, max_rolls=3))
    # roll 0 keeps b; roll 1 keeps c and d; trimmed to the first 2 groups: b, c
    assert [t.uid for t in kept] == ["b", "b", "c", "c"]
    assert len(played) == 10
    assert metrics == {"dynamic_sampling/rolls": 2.0, "dynamic_sampling/dropped_groups": 2.0,
                       "dynamic_sampling/kept_groups": 2.0}


def test_dynamic_sampling_stops_at_the_limit():
    async def reroll(k):
        return _group(f"r{k}", [0, 0])

    kept, _, metrics = asyncio.run(dynamic_sampling(_group("b", [0, 1]), reroll, want=3, max_rolls=2))
    assert {t.uid for t in kept} == {"b"} and metrics["dynamic_sampling/rolls"] == 2.0
    with pytest.raises(RuntimeError, match="max_rolls"):
        asyncio.run(dynamic_sampling(_group("a", [1, 1]), reroll, want=1, max_rolls=2))


def test_credit_keys_in_recipes():
    cfg = Config.model_validate({"credit": {
        "estimator": "grpo", "invalid_penalty": 0.1, "dynamic_sampling": {"max_rolls": 4},
        "overlong": {"max_tokens": 512, "buffer": 128, "factor": 0.5}}})
    assert cfg.credit.dynamic_sampling.max_rolls == 4 and cfg.credit.overlong.buffer == 128
    with pytest.raises(ValueError, match="buffer"):
        CreditConfig(overlong={"max_tokens": 10, "buffer": 20})
    with pytest.raises(ValueError, match="extra"):
        CreditConfig(dynamic_sampling={"max_roll": 2})
    with pytest.raises(RecipeError, match="credit.penalty"):
        load_recipe("household_grpo", ["credit.penalty=0.1"])
    # GiGPO penalises invalid steps itself; a second penalty from the generic step is refused
    with pytest.raises(ValueError, match="credit.options.invalid_penalty"):
        check_credit(CreditConfig(estimator="gigpo", invalid_penalty=0.1))
    check_credit(CreditConfig(estimator="gigpo", options={"invalid_penalty": 0.2}))


def test_prepare_chains_the_configured_shaping_steps():
    from turnwise.trainer.credit_steps import prepare

    trajs = [traj("g", "a", [turn(30, invalid=True), turn(30, reward=1.0)]),
             traj("g", "b", [turn(5), turn(5)])]
    cfg = CreditConfig(invalid_penalty=0.25, overlong={"max_tokens": 60, "buffer": 20})
    shaped, metrics = prepare(trajs, cfg, model=None, tokenizer=None, temperature=1.0)
    # a: 60 tokens -> overlong -(60 - 40) / 20 = -1; one invalid turn -> -.25: 1 - 1 - .25
    assert shaped[0].outcome_reward == pytest.approx(-0.25)
    assert shaped[1] is trajs[1] and metrics == {}  # b: 10 tokens, valid: untouched
    advantages = credit.compute("grpo", shaped, {})
    # GRPO on -0.25 and 0: -+0.25 / (sqrt(2 * .125^2) + 1e-6) = -+0.707104
    assert advantages[0] == pytest.approx([-0.707104] * 2, abs=1e-5)
