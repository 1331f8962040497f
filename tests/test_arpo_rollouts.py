"""ARPO: the step entropy (hand-computed), the branch rule, and branching rollouts that share
their prefix without generating it again."""

from __future__ import annotations

import asyncio
import math

import pytest
from fakes import CountingSuite, ScriptedEngine
from turnwise.agent.chat import ChatFormatter
from turnwise.envs.base import Task
from turnwise.rollouts.arpo import ArpoSettings, branch_probability
from turnwise.rollouts.entropy import first_tokens_entropy
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.metrics import summarize
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.rollouts.trajectory import Trajectory, Turn


def test_entropy_sums_the_first_k_positions_over_ln_v():
    top = [{1: math.log(0.5), 2: math.log(0.25)},  # the sampled token 1 is in the top-2
           {3: math.log(0.6)}]  # the sampled token 4 (p = 0.1) is not: it joins the pool
    ids, logprobs = [1, 4], [math.log(0.5), math.log(0.1)]
    # Position 0: -(0.5 ln 0.5 + 0.25 ln 0.25) = 0.346574 + 0.346574 = 0.693147
    # Position 1: -(0.6 ln 0.6 + 0.1 ln 0.1) = 0.306495 + 0.230259 = 0.536754
    # |V| = 4: ln 4 = 1.386294
    assert first_tokens_entropy(top, ids, logprobs, k=1, vocab_size=4) == pytest.approx(
        0.693147 / 1.386294, abs=1e-5)  # 0.5
    assert first_tokens_entropy(top, ids, logprobs, k=2, vocab_size=4) == pytest.approx(
        (0.693147 + 0.536754) / 1.386294, abs=1e-5)  # 0.887186: a sum, not a mean
    assert first_tokens_entropy(top, ids, logprobs, k=20, vocab_size=4) == pytest.approx(
        0.887186, abs=1e-5)  # a response shorter than k uses what it has


def test_branch_probability_is_clipped_linear_in_the_entropy_change():
    assert branch_probability(0.0, alpha=0.5, beta=0.2) == 0.5
    assert branch_probability(1.0, alpha=0.5, beta=0.2) == pytest.approx(0.7)  # 0.5 + 0.2
    assert branch_probability(-3.0, alpha=0.5, beta=0.2) == 0.0  # 0.5 - 0.6 clipped
    assert branch_probability(3.0, alpha=0.5, beta=0.2) == 1.0  # 0.5 + 0.6 clipped


def uncertain_after_first(call: int) -> list[dict[int, float]]:
    """Top logprobs per call: the very first response is certain, later ones are not."""
    certain = [{7: 0.0}]
    spread = [{t: math.log(0.1) for t in range(10)} for _ in range(20)]
    return certain if call == 0 else spread


def rollout(tokenizer, arpo, *, steps=3, samples=4, top=None, seed=0):
    engine = ScriptedEngine(tokenizer, lambda prompt, i: f"<action>look {i}</action>", top=top)
    orch = Orchestrator(engine, CountingSuite(), ChatFormatter(tokenizer),
                        EpisodeSettings(mode="full_trajectory", max_turns=10), arpo=arpo,
                        quiet=True)
    tasks = [Task(id="a", data={"steps": steps}), Task(id="b", data={"steps": steps})]
    trajs = asyncio.run(orch.rollout(tasks, group_size=samples, tag="r", seed=seed))
    return engine, trajs


def test_branches_share_their_prefix_and_are_never_regenerated(tokenizer):
    always = ArpoSettings(initial=1, alpha=1.0, beta=0.0)
    engine, trajs = rollout(tokenizer, always, top=lambda i: [{7: 0.0}])
    assert [t.uid for t in trajs] == ["r/0"] * 4 + ["r/1"] * 4
    by_id = {t.traj_id: t for t in trajs}
    branches = [t for t in trajs if t.parent_id is not None]
    assert len(branches) == 6  # one root per task, the other three of each are branches
    for branch in branches:
        parent = by_id[branch.parent_id]
        k = branch.branch_turn
        assert 1 <= k < 3
        # The same Turn objects, not copies: the prefix was not generated again.
        assert all(branch.turns[t] is parent.turns[t] for t in range(k))
        assert branch.turns[k] is not parent.turns[k]
        assert branch.full_ids()[:len(parent.context_ids(k))] == parent.context_ids(k)
        # The copied environment went on from the parent's state: step k+1 follows step k.
        assert branch.turns[k].observation.startswith(f"after {k + 1}:")
        assert len(branch.turns) == 3 and branch.status == "done"
    generated = {id(turn) for t in trajs for turn in t.turns}
    assert len(engine.calls) == len(generated)  # one engine call per distinct turn
    assert all(turn.entropy is not None for t in trajs for turn in t.turns)
    _, params, _ = engine.calls[0]
    assert params.top_logprobs == 10 and params.top_logprobs_tokens == 20


def test_without_branching_fresh_samples_fill_the_group(tokenizer):
    never = ArpoSettings(initial=2, alpha=0.0, beta=0.0)
    _, trajs = rollout(tokenizer, never, top=lambda i: [{7: 0.0}])
    assert len(trajs) == 8 and all(t.parent_id is None for t in trajs)
    assert [t.traj_id for t in trajs[:4]] == [f"r/0/{n}" for n in range(4)]
    assert all(len(t.turns) == 3 for t in trajs)


def test_rising_entropy_makes_branches(tokenizer):
    # alpha 0, beta 1: branch with probability clip(dH, 0, 1); the first response has H = 0
    # and later ones H = 20 * ln 10 / ln |V| > 1, so every later tool result branches...
    rising = ArpoSettings(initial=1, alpha=0.0, beta=1.0)
    _, trajs = rollout(tokenizer, rising, top=uncertain_after_first, samples=3)
    assert any(t.parent_id is not None for t in trajs)
    # ...while an entropy that never changes never does (dH = 0, probability 0).
    _, flat = rollout(tokenizer, rising, top=lambda i: [{7: 0.0}], samples=3)
    assert all(t.parent_id is None for t in flat)


def test_arpo_settings_are_checked(tokenizer):
    with pytest.raises(ValueError, match="arpo.beam=0"):
        ArpoSettings(beam=0)
    with pytest.raises(ValueError, match=r"group_size=2 \(ARPO's M\)"):
        rollout(tokenizer, ArpoSettings(initial=4), samples=2)
    with pytest.raises(ValueError, match="schedule='async' only"):
        Orchestrator(None, CountingSuite(), None, EpisodeSettings(), arpo=ArpoSettings(),
                     schedule="lockstep")


def test_evaluation_rollouts_do_not_branch(tokenizer):
    engine = ScriptedEngine(tokenizer, lambda prompt, i: f"<action>look {i}</action>",
                            top=lambda i: [{7: 0.0}])
    orch = Orchestrator(engine, CountingSuite(), ChatFormatter(tokenizer),
                        EpisodeSettings(mode="full_trajectory", max_turns=10),
                        arpo=ArpoSettings(initial=4, alpha=1.0, beta=0.0), quiet=True)
    tasks = [Task(id="a", data={"steps": 3})]
    # group_size 1 < initial 4 would be refused by branching; evaluation plays plain episodes.
    trajs = asyncio.run(orch.rollout(tasks, group_size=1, tag="ev", seed=0, branch=False))
    assert len(trajs) == 1 and trajs[0].parent_id is None and len(trajs[0].turns) == 3
    assert engine.calls[0][1].top_logprobs in (0, None)  # no entropy measurement either


def test_branching_metrics_count_forks_and_each_response_once():
    def turn(entropy):
        return Turn(response_ids=[1], response_logprobs=[0.0], entropy=entropy)

    shared = [turn(0.2), turn(0.6)]
    root = Trajectory("g", "g/0", "full_trajectory", [0], turns=[*shared, turn(0.4)])
    fork_at_2 = Trajectory("g", "g/1", "full_trajectory", [0], turns=[*shared, turn(1.0)],
                           parent_id="g/0", branch_turn=2)
    fork_at_1 = Trajectory("g", "g/2", "full_trajectory", [0], turns=[shared[0], turn(0.8)],
                           parent_id="g/0", branch_turn=1)
    fresh = Trajectory("g", "g/3", "full_trajectory", [0], turns=[turn(None)])
    out = summarize([root, fork_at_2, fork_at_1, fresh])
    assert out["rollout/branched"] == 0.5  # 2 forks of 4 episodes
    assert out["rollout/branch_turn"] == 1.5  # (2 + 1) / 2
    # Distinct responses with an entropy: 0.2, 0.6, 0.4, 1.0, 0.8 -> 3.0 / 5
    assert out["rollout/response_entropy"] == pytest.approx(0.6)
    no_arpo = summarize([Trajectory("g", "g/0", "full_trajectory", [0], turns=[turn(None)])])
    assert not any(k in no_arpo for k in ("rollout/branched", "rollout/response_entropy"))
