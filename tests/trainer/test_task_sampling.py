"""Task sampling: each sampler's update rule and probabilities by hand, the outcomes a step feeds
back, `uniform` as the old draw bit for bit, feedback in any order, and exact resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from turnwise.envs.base import Task
from turnwise.envs.math_code import MathCodeTasks
from turnwise.rollouts.producer import Group
from turnwise.rollouts.trajectory import Trajectory, Turn
from turnwise.trainer.config import TaskSamplingConfig
from turnwise.trainer.dist import World
from turnwise.trainer.rollout_stage import SuiteSource, Taken
from turnwise.trainer.task_sampling import (
    SAMPLERS,
    GroupOutcome,
    TaskPool,
    build_task_source,
    group_outcomes,
    step_metrics,
)

KINDS = ["leftover", "modular_power", "rate_time"]


def _pool(kinds: str) -> TaskPool:
    """A pool whose task i has kind kinds[i] (a, b, c)."""
    return TaskPool.of([Task(id=f"t{i}", kind=k) for i, k in enumerate(kinds)])


def _outcome(part: str, advantages, successes: int = 0, index: int = 0) -> GroupOutcome:
    flat = len(set(advantages)) == 1 and advantages[0] == 0.0
    return GroupOutcome(index, part, f"t{index}", len(advantages), successes, flat,
                        tuple(advantages))


def _sampler(name: str, pool: TaskPool, **options):
    settings = TaskSamplingConfig(sampler=name, pool=max(len(pool), 1), **options)
    return SAMPLERS[name](pool, settings)


# ------------------------------------------------------------------------------------- DUMP


def test_dump_scores_and_probabilities_by_hand():
    dump = _sampler("dump", _pool("ab"))
    # Before any evidence every score is 0 + 1 * sqrt(2 ln 1 / 1) = 0: uniform.
    assert dump.probabilities() == {"a": 0.5, "b": 0.5}
    dump.update([(0, _outcome("a", [1.0, 0.5])), (1, _outcome("b", [0.2, 0.4]))])
    # L_a = 0.75, L_b = 0.3, n_a = n_b = 2, N = 4: bonus sqrt(2 ln 5 / 3) = 1.0358372 for both;
    # s_a = 1.7858372, s_b = 1.3358372; softmax at 0.1: p_a = 1 / (1 + e^-4.5) = 0.9890131.
    assert dump.scores() == pytest.approx({"a": 1.7858372, "b": 1.3358372})
    assert dump.probabilities()["a"] == pytest.approx(0.9890131)
    dump.update([(1, _outcome("b", [0.0, 0.0]))])  # a flat group: |A| = 0, and n_b = 4
    # L_b = (0.2 + 0.4 + 0 + 0) / 4 = 0.15; N = 6: bonus_a = sqrt(2 ln 7 / 3) = 1.1389791,
    # bonus_b = sqrt(2 ln 7 / 5) = 0.8822494; s_a = 1.8889791, s_b = 1.0322494;
    # p_a = 1 / (1 + e^(-0.8567297 / 0.1)) = 0.9998098.
    assert dump.scores() == pytest.approx({"a": 1.8889791, "b": 1.0322494})
    assert dump.probabilities()["a"] == pytest.approx(0.9998098)


def test_dump_window_slides_and_exploration_favours_the_rarely_sampled():
    dump = _sampler("dump", _pool("ab"), dump={"window": 3, "temperature": 1.0})
    dump.update([(0, _outcome("a", [1.0, 0.5])), (0, _outcome("a", [0.0, 0.2]))])
    # The window keeps the last 3 of a's 4 episodes: (0.5 + 0.0 + 0.2) / 3; n_a counts all 4.
    assert dump.part_metrics("a")["task_sampling/a/window_adv_abs"] == pytest.approx(0.7 / 3)
    assert dump.counts == {"a": 4, "b": 0}
    # s_a = 0.2333333 + sqrt(2 ln 5 / 5) = 0.2333333 + 0.8023560 = 1.0356893; s_b = 0 +
    # sqrt(2 ln 5 / 1) = 1.7941226: b, never sampled, wins at temperature 1:
    # p_b = 1 / (1 + e^(1.0356893 - 1.7941226)) = 0.6810135.
    assert dump.probabilities()["b"] == pytest.approx(0.6810135)


def test_dump_draws_parts_by_their_probabilities():
    pool = _pool("aabbbb")
    dump = _sampler("dump", pool)
    dump.update([(0, _outcome("a", [2.0] * 50)), (2, _outcome("b", [0.0] * 50))])
    chosen = dump.select(2000, np.random.default_rng(0))
    share_a = sum(pool.part_of(p) == "a" for p in chosen) / 2000
    assert dump.probabilities()["a"] == pytest.approx(1.0, abs=1e-6) and share_a == 1.0


# ----------------------------------------------------------------------------- difficulty band


def test_band_draws_unmeasured_and_in_band_prompts_then_the_closest():
    band = _sampler("difficulty_band", _pool("abcabc"))
    # Last pass rates: 0 -> 0.5 (in), 1 -> 0.0 (0.25 below), 2 -> 1.0 (0.25 above),
    # 3 -> 0.875 (0.125 above); 4 and 5 never played.
    band.update([(0, _outcome("a", [0.1] * 8, successes=4)),
                 (1, _outcome("b", [0.0] * 8, successes=0)),
                 (2, _outcome("c", [0.0] * 8, successes=8)),
                 (3, _outcome("a", [0.1] * 8, successes=7))])
    assert band.eligible() == [0, 4, 5]
    # A step draws uniformly among the eligible: a, b, c one each.
    assert band.probabilities() == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    rng = np.random.default_rng(3)
    assert sorted(band.select(3, rng)) == [0, 4, 5]
    assert sorted(band.select(4, rng)) == [0, 3, 4, 5]  # then the closest to the band: 3
    picked = set(band.select(5, rng))
    assert picked - {1, 2} == {0, 3, 4, 5} and len(picked & {1, 2}) == 1  # a tie: at random
    band.update([(1, _outcome("b", [0.3] * 8, successes=2))])  # 2 / 8 = 0.25: in the band
    assert band.eligible() == [0, 1, 4, 5]


def test_band_bounds_are_inclusive_and_configurable():
    band = _sampler("difficulty_band", _pool("ab"), band={"low": 0.5, "high": 0.5})
    band.update([(0, _outcome("a", [0.1] * 2, successes=1)),
                 (1, _outcome("b", [0.0] * 2, successes=2))])
    assert band.eligible() == [0] and band.distance(1) == 0.5


# ------------------------------------------------------------------------------------ MoPPS


def test_mopps_posterior_update_by_hand():
    mopps = _sampler("mopps", _pool("ab"), mopps={"decay": 0.5})
    mopps.update([(0, _outcome("a", [0.1] * 8, successes=6))])
    # alpha = 0.5 * 1 + 0.5 * 1 + 6 = 7; beta = 0.5 * 1 + 0.5 * 1 + 2 = 3.
    assert mopps.beta(0) == (7.0, 3.0)
    mopps.update([(0, _outcome("a", [0.1] * 8, successes=2))])
    # alpha = 0.5 * 7 + 0.5 * 1 + 2 = 6; beta = 0.5 * 3 + 0.5 * 1 + 6 = 8.
    assert mopps.beta(0) == (6.0, 8.0)
    assert mopps.beta(1) == (1.0, 1.0)  # never played: the prior
    keep_all = _sampler("mopps", _pool("ab"))  # lambda = 1: plain counts
    keep_all.update([(0, _outcome("a", [0.1] * 8, successes=6))] * 2)
    assert keep_all.beta(0) == (1.0 + 12, 1.0 + 4)
    assert keep_all.part_metrics("a")["task_sampling/a/predicted_pass_rate"] == 13 / 18


def test_mopps_keeps_the_candidates_predicted_closest_to_the_target():
    mopps = _sampler("mopps", _pool("abca"), mopps={"candidates": 2})
    # Posteriors so narrow that a Thompson draw is its mean to +-0.02.
    mopps.posterior = {0: (1000.0, 9000.0), 1: (5000.0, 5000.0), 2: (9000.0, 1000.0),
                       3: (4000.0, 6000.0)}
    # 2 groups x 2 candidates = the whole pool; closest to 0.5: 1 (0.5), then 3 (0.4).
    assert mopps.select(2, np.random.default_rng(0)) == [1, 3]
    assert mopps.probabilities() == {"a": 0.5, "b": 0.5, "c": 0.0}  # the selection's parts
    high = _sampler("mopps", _pool("abca"), mopps={"candidates": 2, "target": 0.9})
    high.posterior = dict(mopps.posterior)
    assert high.select(2, np.random.default_rng(0))[0] == 2  # the whole pool: 0.9 first


def test_mopps_considers_only_its_candidates():
    pool = _pool("ab" * 50)
    mopps = _sampler("mopps", pool, mopps={"candidates": 1})
    # One candidate per group: the selection is the uniform candidate draw itself.
    rng, again = np.random.default_rng(7), np.random.default_rng(7)
    chosen = mopps.select(10, rng)
    assert sorted(chosen) == sorted(again.choice(100, size=10, replace=False).tolist())


# ---------------------------------------------------------------------------------- uniform


def test_uniform_mixture_weights_are_normalised_and_followed():
    pool = _pool("aabbbc")
    uniform = _sampler("uniform", pool, weights={"a": 3, "b": 1, "c": 0})
    assert uniform.probabilities() == {"a": 0.75, "b": 0.25, "c": 0.0}
    chosen = uniform.select(4000, np.random.default_rng(1))
    assert not any(pool.part_of(p) == "c" for p in chosen)
    assert sum(pool.part_of(p) == "a" for p in chosen) / 4000 == pytest.approx(0.75, abs=0.03)
    # Without weights every task is equally likely: parts by their share of the pool.
    assert _sampler("uniform", pool).probabilities() == pytest.approx(
        {"a": 2 / 6, "b": 3 / 6, "c": 1 / 6})


def test_uniform_weights_must_name_exactly_the_pools_parts():
    with pytest.raises(ValueError, match=r"names \['a', 'x'\].*parts \(task kinds\) are "
                                         r"\['a', 'b'\]"):
        _sampler("uniform", _pool("ab"), weights={"a": 1, "x": 1})
    with pytest.raises(ValueError, match="sum to 0"):
        _sampler("uniform", _pool("ab"), weights={"a": 0, "b": 0})


@pytest.mark.parametrize("rank, size", [(0, 1), (1, 2)])
def test_uniform_without_a_pool_is_the_suite_source_bit_for_bit(rank, size):
    suite, world = MathCodeTasks(kinds=KINDS), World(rank=rank, size=size)
    common = {"tasks_per_step": 6, "world": world, "seed": 5, "group_size": 4, "seeded": True}
    old = SuiteSource(suite, "train", **common)
    new = build_task_source(TaskSamplingConfig(), suite, "train", world,
                            **{k: v for k, v in common.items() if k != "world"})
    for index in [*range(20), 7, 3, 40]:  # in order, then back and forth
        assert new.task(index) == old.task(index) and new.seed(index) == old.seed(index)
    assert new.state() is None


def test_uniform_without_a_pool_reports_the_suites_mix():
    source = build_task_source(TaskSamplingConfig(), MathCodeTasks(kinds=KINDS), "train",
                               World(), tasks_per_step=6, group_size=2, seed=0, seeded=False)
    taken = _played(source, range(6), _solved)  # math_code cycles its kinds: two of each
    metrics = _feed(source, taken)
    assert [metrics[f"task_sampling/{k}/prob"] for k in KINDS] == [1 / 3] * 3
    assert [metrics[f"task_sampling/{k}/share"] for k in KINDS] == [1 / 3] * 3
    assert source.handed == {}  # the next step's mix is counted afresh


# --------------------------------------------------------------------- outcomes and metrics


def _traj(kind: str, task_id: str, turns: int, reward: float, success: bool,
          status: str = "done") -> Trajectory:
    return Trajectory(uid="u", traj_id="t", mode="full_trajectory", prompt_ids=[0],
                      turns=[Turn(response_ids=[1], response_logprobs=[0.0])] * turns,
                      task_id=task_id, task_kind=kind, outcome_reward=reward, success=success,
                      status=status)


def test_outcomes_of_kept_flat_stale_and_failed_groups():
    g0 = Group(0, [_traj("a", "t0", 2, 1.0, True), _traj("a", "t0", 1, 0.0, False)], 0)
    g1 = Group(1, [_traj("a", "t1", 1, 1.0, True), _traj("a", "t1", 1, 1.0, True)], 0)
    g2 = Group(2, [_traj("b", "t2", 1, 1.0, True), _traj("b", "t2", 1, 0.0, False)], 0)
    g3 = Group(3, [_traj("b", "t3", 1, 0.0, False, status="failed")], 0)
    g4 = Group(4, [_traj("b", "t4", 1, 0.0, False), _traj("b", "t4", 1, 0.0, False)], 0)
    # Trained: 0 and 4; examined and dropped: 1 (flat), 2 (stale, scores differ), 3 (failed).
    taken = Taken(kept=[g0, g4], examined=[g2, g0, g1, g3, g4])
    per_turn = [np.array([0.5, -1.5]), np.array([2.0]), np.array([0.0]), np.array([0.0])]
    outcomes = group_outcomes(taken, per_turn)
    assert [(o.index, o.part, o.episodes, o.successes, o.flat) for o in outcomes] == [
        (0, "a", 2, 1, False), (1, "a", 2, 2, True), (4, "b", 2, 0, True)]
    # An episode's |advantage| is the mean of |A_t| over its turns: (0.5 + 1.5) / 2 = 1.
    assert outcomes[0].abs_advantages == (1.0, 2.0) and outcomes[1].abs_advantages == (0.0, 0.0)
    metrics = step_metrics(outcomes, {"a": 0.25, "b": 0.75})
    assert metrics == pytest.approx({
        "task_sampling/flat_share": 2 / 3,
        "task_sampling/a/prob": 0.25, "task_sampling/a/share": 2 / 3,
        "task_sampling/a/pass_rate": 3 / 4, "task_sampling/a/adv_abs": 3.0 / 4,
        "task_sampling/b/prob": 0.75, "task_sampling/b/share": 1 / 3,
        "task_sampling/b/pass_rate": 0.0, "task_sampling/b/adv_abs": 0.0})
    with pytest.raises(ValueError, match="3 per-turn advantage arrays for 4 trained"):
        group_outcomes(taken, per_turn[:3])


def test_every_task_sampling_metric_is_documented():
    from turnwise.trainer.report.metric_names import undocumented

    keys = {"task_sampling/flat_share", "task_sampling/1-hop/prob", "task_sampling/a/share",
            "task_sampling/a/pass_rate", "task_sampling/a/adv_abs", "task_sampling/a/ucb",
            "task_sampling/a/window_adv_abs", "task_sampling/a/eligible",
            "task_sampling/a/predicted_pass_rate"}
    assert undocumented(keys) == []


# ------------------------------------------------------------ the source: order, resume


def _source(sampler: str, state=None, done=(), **options):
    cfg = TaskSamplingConfig(sampler=sampler, pool=24, **options)
    return build_task_source(cfg, MathCodeTasks(kinds=KINDS), "train", World(),
                             tasks_per_step=4, group_size=2, seed=3, seeded=True, state=state,
                             done=done)


def _played(source, indices, solved) -> Taken:
    """Groups of two episodes at `indices`, each solved as `solved(task_id)` says."""
    groups = []
    for index in indices:
        task = source.task(index)
        wins = solved(task.id)
        groups.append(Group(index, [_traj(task.kind, task.id, 1, float(j < wins), j < wins)
                                    for j in range(2)], 0))
    return Taken(kept=groups, examined=groups)


def _feed(source, taken: Taken) -> dict[str, float]:
    # GRPO on two episodes: +-0.7071 when one of the two solved it, else 0.
    per_turn = [np.array([0.7071 if len({t.outcome_reward for t in g.trajectories}) > 1 else 0.0])
                for g in taken.kept for t in g.trajectories]
    return source.feedback(taken, per_turn)


def _solved(task_id: str) -> int:
    return int(task_id.rsplit("/", 1)[1]) % 3  # 0, 1 or 2 of the two episodes


def test_a_slot_is_chosen_at_once_and_kept_until_fed_back():
    source = _source("mopps")
    first = [source.task(i) for i in range(4)]
    assert sorted(source.assigned) == [0, 1, 2, 3]
    assert [source.task(i) for i in range(4)] == first  # the same task every time it is asked
    assert source.seed(5) == SuiteSource(MathCodeTasks(kinds=KINDS), "train", tasks_per_step=4,
                                         world=World(), seed=3, group_size=2,
                                         seeded=True).seed(5)
    metrics = _feed(source, _played(source, range(4), _solved))
    assert source.assigned == {} and 0 <= metrics["task_sampling/flat_share"] <= 1


@pytest.mark.parametrize("sampler", ["uniform", "dump", "difficulty_band", "mopps"])
def test_feedback_may_come_late_and_out_of_order(sampler):
    source = _source(sampler)
    early, late = _played(source, range(4), _solved), _played(source, range(4, 8), _solved)
    _feed(source, late)  # a group drawn later finishes first (asynchronous training)
    _feed(source, early)
    assert source.assigned == {}
    if sampler == "dump":
        assert sum(source.sampler.counts.values()) == 16  # 8 groups of 2 episodes
    with pytest.raises(RuntimeError, match="did not hand out"):
        _feed(source, early)  # fed back twice: the source no longer knows those groups


@pytest.mark.parametrize("sampler", ["uniform", "dump", "difficulty_band", "mopps"])
def test_a_resumed_source_draws_what_the_uninterrupted_one_draws(sampler):
    whole = _source(sampler)
    for step in range(3):
        _feed(whole, _played(whole, range(4 * step, 4 * step + 4), _solved))
    whole.task(12)  # a group of the next slot had started when the checkpoint was written
    state = json.loads(json.dumps(whole.state()))  # as the checkpoint stores it
    resumed = _source(sampler, state=state, done=range(12))
    for step in range(3, 6):
        indices = range(4 * step, 4 * step + 4)
        assert [resumed.task(i).id for i in indices] == [whole.task(i).id for i in indices]
        _feed(whole, _played(whole, indices, _solved))
        _feed(resumed, _played(resumed, indices, _solved))
    assert resumed.state() == whole.state()


def test_a_checkpoint_of_another_sampler_is_refused():
    state = _source("dump").state()
    with pytest.raises(ValueError, match="sampler 'dump' over a pool of 24.*allowed: the same"):
        _source("mopps", state=state)
    with pytest.raises(ValueError, match="draws uniformly without a pool"):
        build_task_source(TaskSamplingConfig(), MathCodeTasks(kinds=KINDS), "train", World(),
                          tasks_per_step=4, group_size=2, seed=3, seeded=True, state=state)


def test_a_pool_smaller_than_a_step_is_refused_per_rank():
    cfg = TaskSamplingConfig(sampler="dump", pool=5)
    with pytest.raises(ValueError, match="rank 1 holds 2 of its tasks but plays 3 groups"):
        build_task_source(cfg, MathCodeTasks(kinds=KINDS), "train", World(rank=1, size=2),
                          tasks_per_step=6, group_size=2, seed=0, seeded=False)


def test_the_pool_is_sharded_and_split_by_kind():
    suite = MathCodeTasks(kinds=KINDS)
    whole = TaskPool.draw(suite, "train", 12, seed=0, world=World())
    half = TaskPool.draw(suite, "train", 12, seed=0, world=World(rank=1, size=2))
    assert [t.id for t in half.tasks] == [t.id for t in whole.tasks[1::2]]
    assert {p: len(ps) for p, ps in whole.parts.items()} == {k: 4 for k in KINDS}
    # The pool is not any step's draw: SuiteSource's slot s uses seed * 100003 + s, s >= 0.
    assert whole.tasks[0].id == "math_code/train/-1/0"
    assert math.isclose(sum(_sampler("uniform", whole).probabilities().values()), 1.0)
