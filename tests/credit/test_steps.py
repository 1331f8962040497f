"""Reward shaping, DAPO dynamic sampling (the rollout stage's group filter), their recipe keys."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
import torch
from credit_helpers import traj, turn
from turnwise import credit
from turnwise.rollouts.batch import build_batch
from turnwise.rollouts.producer import GroupProducer
from turnwise.trainer.config import Config, CreditConfig, KLConfig
from turnwise.trainer.credit_stage import CreditStage, check_credit
from turnwise.trainer.recipe import RecipeError, load_recipe
from turnwise.trainer.rollout_stage import StepPolicy, take_step


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


class ScriptedOrchestrator:
    """Plays group g as `groups[g]` (rewards per episode): the producer's view of the real one."""

    def __init__(self, groups: dict[int, list[float]]) -> None:
        self.groups, self.engine = groups, SimpleNamespace(version=0)
        self.played: list[int] = []

    async def rollout(self, tasks, *, group_size, tag, seed=None, settings=None, branch=True,
                      progress=None):
        index = int(tag[1:])
        self.played.append(index)
        assert len(tasks) == 1 and group_size == len(self.groups[index])
        return _group(tag, self.groups[index])


class IndexSource:
    def task(self, index):
        return index

    def seed(self, index):
        return None


def _take(groups: dict[int, list[float]], *, want: int, max_rolls: int | None):
    orchestrator = ScriptedOrchestrator(groups)

    async def go():
        producer = GroupProducer(orchestrator, IndexSource(), group_size=2, lookahead=0)
        try:
            return await take_step(producer, StepPolicy(groups=want, max_staleness=0,
                                                        max_rolls=max_rolls), version=0)
        finally:
            await producer.close()

    return asyncio.run(go()), orchestrator.played


def test_dynamic_sampling_replaces_flat_groups_until_enough_are_kept():
    # group 0 flat, 1 varied, 2 varied, 3 flat: two wanted, so 0 is replaced by 2
    taken, played = _take({0: [1, 1], 1: [0, 1], 2: [0, 2], 3: [3, 3]}, want=2, max_rolls=3)
    assert [g.index for g in taken.kept] == [1, 2] and played == [0, 1, 2]
    assert len(taken.played()) == 6
    assert taken.metrics["dynamic_sampling/rolls"] == 1.5  # 3 groups examined for 2
    assert taken.metrics["dynamic_sampling/dropped_groups"] == 1.0
    assert taken.metrics["dynamic_sampling/kept_groups"] == 2.0


def test_dynamic_sampling_stops_at_the_limit():
    # 2 wanted, at most 2 x 2 examined: only group 1 carries signal
    taken, played = _take({0: [0, 0], 1: [0, 1], 2: [0, 0], 3: [0, 0], 4: [0, 1]},
                          want=2, max_rolls=2)
    assert [g.index for g in taken.kept] == [1] and played == [0, 1, 2, 3]
    assert taken.metrics["dynamic_sampling/rolls"] == 2.0
    with pytest.raises(RuntimeError, match="max_rolls"):
        _take({0: [1, 1], 1: [1, 1]}, want=1, max_rolls=2)


def test_without_dynamic_sampling_flat_groups_are_trained_on():
    taken, played = _take({0: [1, 1], 1: [0, 1]}, want=2, max_rolls=None)
    assert [g.index for g in taken.kept] == [0, 1] and played == [0, 1]
    assert "dynamic_sampling/rolls" not in taken.metrics


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


def test_the_credit_stage_chains_the_configured_shaping_steps():
    trajs = [traj("g", "a", [turn(30, invalid=True), turn(30, reward=1.0)]),
             traj("g", "b", [turn(5), turn(5)])]
    cfg = CreditConfig(invalid_penalty=0.25, overlong={"max_tokens": 60, "buffer": 20})
    stage = CreditStage(cfg, KLConfig(), backend=None, tokenizer=None, pad_id=0,
                        temperature=1.0, proximal="rollout", correction=None)
    out = stage(trajs)
    # a: 60 tokens -> overlong -(60 - 40) / 20 = -1; one invalid turn -> -.25: 1 - 1 - .25
    assert out.trajectories[0].outcome_reward == pytest.approx(-0.25)
    assert out.trajectories[1] is trajs[1]  # b: 10 tokens, valid: untouched
    # GRPO on -0.25 and 0: -+0.25 / (sqrt(2 * .125^2) + 1e-6) = -+0.707104
    assert out.per_turn[0] == pytest.approx([-0.707104] * 2, abs=1e-5)
    assert out.metrics == {"credit/flat_groups": 0.0}
    # every response token of a carries a's advantage; prompts carry none
    assert out.batch.advantages[0][out.batch.loss_mask[0] > 0].tolist() == pytest.approx(
        [-0.707104] * 60, abs=1e-5)


@pytest.mark.parametrize("mode", ["full_trajectory", "per_step"])
def test_loglinear_credit_gives_each_token_its_alpha_without_a_forward_pass(mode):
    """Trainer at version 3. a: turn 0 by version 3, turn 1 by version 1 (alpha 2/3); b: one
    turn whose weights changed mid-generation, tokens of versions 2, 2, 3 (1/2, 1/2, 0)."""
    first, second = turn(2, obs=1, prompt=[1] * 3), turn(2, prompt=[1] * 6)
    mixed = turn(3, prompt=[1] * 3)
    first.version, second.version = 3, 1
    mixed.version, mixed.token_versions = 2, [2, 2, 3]
    trajs = [traj("g", "a", [first, second], mode=mode, outcome=1.0),
             traj("g", "b", [mixed], mode=mode, outcome=0.0)]
    stage = CreditStage(CreditConfig(), KLConfig(), backend=None, tokenizer=None, pad_id=0,
                        temperature=1.0, proximal="loglinear", correction=None)
    out = stage(trajs, version=3)  # backend None: any forward pass would fail
    batch = out.batch
    alphas = [batch.prox_alpha[r][batch.loss_mask[r] > 0].tolist() for r in range(batch.num_rows)]
    expected = {"full_trajectory": [[0.0, 0.0, 2 / 3, 2 / 3], [0.5, 0.5, 0.0]],
                "per_step": [[0.0, 0.0], [2 / 3, 2 / 3], [0.5, 0.5, 0.0]]}[mode]
    assert alphas == [pytest.approx(a) for a in expected]
    assert float(batch.prox_alpha[batch.loss_mask == 0].abs().sum()) == 0.0
    assert out.metrics["offpolicy/alpha_mean"] == pytest.approx((4 / 3 + 1) / 7)
    assert torch.equal(batch.old_logprobs, build_batch(trajs).old_logprobs)  # behaviour kept
