"""IGPO's scoring pass on the tiny model: packed prefixes give the same numbers as one forward
per prefix."""

from __future__ import annotations

import pytest
import torch
from credit_helpers import traj
from turnwise.rollouts.trajectory import Turn
from turnwise.trainer.igpo_scoring import make_probe, score_answer_logprobs

ANSWER = "the mug is on countertop 1"


def _random_trajectories(mode: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)

    def ids(n):
        return torch.randint(5, 300, (n,), generator=g).tolist()

    out = []
    for i in range(3):
        turns = [Turn(response_ids=ids(4 + i + k), response_logprobs=[0.0] * (4 + i + k),
                      observation_ids=ids(3 + k) if mode == "full_trajectory" else [],
                      prompt_ids=ids(6 + k) if mode == "per_step" else None)
                 for k in range(2 + i)]
        t = traj("g", f"t{i}", turns, mode=mode)
        t.prompt_ids = ids(8 + i)
        t.info["answer"] = ANSWER
        out.append(t)
    return out


def _naive(model, probe, context, temperature):
    """Mean log-prob of the answer tokens with the probe appended to one context, one forward."""
    ids = torch.tensor([context + probe.ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float() / temperature, -1)
    positions = [len(context) + j for j in range(probe.start, probe.end)]
    return torch.stack([logp[p - 1, ids[0, p]] for p in positions]).mean().item()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["full_trajectory", "per_step"])
def test_packed_scoring_equals_one_forward_per_prefix(tiny_model, tokenizer, mode):
    trajs = _random_trajectories(mode)
    metrics = score_answer_logprobs(tiny_model, tokenizer, trajs, temperature=0.7)
    probe = make_probe(tokenizer, ANSWER)
    for t in trajs:
        got = [t.answer_logprob_prompt] + [x.answer_logprob for x in t.turns[:-1]]
        want = [_naive(tiny_model, probe, t.context_ids(k), 0.7) for k in range(len(t.turns))]
        assert got == pytest.approx(want, abs=1e-4)
        assert t.turns[-1].answer_logprob is None  # the answer turn itself is not probed
    probes = sum(len(t.turns) for t in trajs)  # 2 + 3 + 4
    assert metrics["igpo/probes"] == probes
    assert "igpo/probe_logprob_solved" not in metrics  # no solved episode
    # everything fits the default budget: one forward (full_trajectory: 3 packed rows;
    # per_step: 9 rows, one per prompt)
    assert metrics["igpo/score_forwards"] == 1
    # a budget of one row per forward gives the same numbers
    again = _random_trajectories(mode)
    small = score_answer_logprobs(tiny_model, tokenizer, again, temperature=0.7, token_budget=64)
    assert small["igpo/score_forwards"] == (3 if mode == "full_trajectory" else probes)
    for a, b in zip(trajs, again):
        assert b.answer_logprob_prompt == pytest.approx(a.answer_logprob_prompt, abs=1e-5)


def test_probe_marks_exactly_the_answer_tokens(tokenizer):
    probe = make_probe(tokenizer, ANSWER, lead_in="Enough.\n", open_tag="<answer>",
                       close_tag="</answer>")
    text = tokenizer.decode(probe.ids[probe.start:probe.end])
    assert text.strip() == ANSWER
    assert "<answer>" in tokenizer.decode(probe.ids[:probe.start])
    with pytest.raises(ValueError, match="empty"):
        make_probe(tokenizer, "  ")


def test_missing_gold_answer_is_an_error(tiny_model, tokenizer):
    trajs = _random_trajectories("full_trajectory")
    del trajs[1].info["answer"]
    with pytest.raises(ValueError, match="t1.*no gold answer"):
        score_answer_logprobs(tiny_model, tokenizer, trajs)


@pytest.mark.slow
def test_probe_logprob_of_solved_episodes(tiny_model, tokenizer):
    trajs = _random_trajectories("full_trajectory")
    trajs[0].success = trajs[2].success = True
    metrics = score_answer_logprobs(tiny_model, tokenizer, trajs)
    # the probe before each solved episode's last turn (turn T-2's entry), averaged
    want = (trajs[0].turns[-2].answer_logprob + trajs[2].turns[-2].answer_logprob) / 2
    assert metrics["igpo/probe_logprob_solved"] == pytest.approx(want)
    single = _random_trajectories("full_trajectory")[:1]
    single[0].turns = single[0].turns[:1]
    single[0].success = True
    got = score_answer_logprobs(tiny_model, tokenizer, single)["igpo/probe_logprob_solved"]
    assert got == pytest.approx(single[0].answer_logprob_prompt)  # one turn: the bare prompt
