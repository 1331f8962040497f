"""Token exactness: the ids and logprobs the engine returned are exactly what the trainer sees."""

from __future__ import annotations

import asyncio

import pytest
import torch

from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines import SamplingParams, make_engine
from turnwise.rollouts import build_batch
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.orchestrator import Orchestrator


class RecordingEngine:
    """Wraps an engine and keeps every (prompt, completion) pair it served."""

    def __init__(self, inner):
        self.inner, self.calls, self.version = inner, [], 0

    async def generate(self, prompt_ids, params, *, session=None):
        completion = await self.inner.generate(prompt_ids, params)
        self.calls.append((list(prompt_ids), completion))
        return completion


@pytest.mark.parametrize("mode", ["per_step", "full_trajectory"])
def test_rows_are_the_engine_ids(mode, tiny_path, tokenizer, household):
    engine = RecordingEngine(make_engine("hf", tiny_path, tokenizer))
    settings = EpisodeSettings(mode=mode, max_turns=3, max_tokens_per_turn=12,
                               sampling=SamplingParams(temperature=1.0))
    orch = Orchestrator(engine, household, ChatFormatter(tokenizer), settings)
    trajs = asyncio.run(orch.rollout(household.tasks("train", 2, 0), group_size=2, tag="t"))
    batch = build_batch(trajs, pad_id=tokenizer.pad_token_id)
    served: dict[tuple, list] = {}
    for prompt, completion in engine.calls:  # siblings of a group share their first prompt
        served.setdefault(tuple(prompt), []).append(completion)
    row = 0
    for traj in trajs:
        rows = range(len(traj.turns)) if mode == "per_step" else [None]
        for t in rows:
            n = int(batch.attention_mask[row].sum())
            ids = batch.input_ids[row, :n].tolist()
            mask = batch.loss_mask[row, :n]
            turns = traj.turns if t is None else [traj.turns[t]]
            first = 0 if t is None else t
            # Every response span in the row is one completion, placed right after its prompt.
            for k, turn in enumerate(turns, start=first):
                context = traj.context_ids(k)
                start = len(context)
                span = slice(start, start + len(turn.response_ids))
                assert ids[:start] == context
                completion = next(c for c in served[tuple(context)] if c.token_ids == ids[span])
                assert batch.old_logprobs[row, span].tolist() == pytest.approx(completion.logprobs)
                assert (batch.turn_index[row, span] == k).all()
            # The loss mask is 1 exactly on the response tokens.
            expected = torch.zeros(n)
            for k, turn in enumerate(turns, start=first):
                start = len(traj.context_ids(k))
                expected[start:start + len(turn.response_ids)] = 1
            assert torch.equal(mask, expected)
            row += 1
    assert row == batch.num_rows
    if mode == "full_trajectory":  # observation tokens follow responses but are never trained
        assert any(t.observation_ids for traj in trajs for t in traj.turns)
