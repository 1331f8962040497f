"""What only the hf engine does: its batching, its top-k / top-p draws, its weight checks.

The behaviour every engine shares is in test_engine_contract.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import torch
from turnwise.agent.engines import SamplingParams, make_engine
from turnwise.agent.engines.sampling import choose


def _prompts(tokenizer):
    texts = ["You are in the middle of a room.", "go to countertop 1",
             "You arrive at fridge 1. The fridge 1 is closed. Your task is to: put a cool apple"]
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


async def _until(condition, what: str, timeout: float = 60.0) -> None:
    """Wait for `condition()` (polled), however slow a loaded machine is; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:g} s for {what}")
        await asyncio.sleep(0.001)


def test_concurrent_requests_share_prefills_and_decode_steps(tiny_path, tokenizer):
    # The collection window closes as soon as max_batch requests are in, so its length only
    # bounds how late the third may come on a loaded machine: no timing is assumed.
    engine = make_engine("hf", tiny_path, tokenizer, max_batch=3, batch_wait_ms=30_000)
    params = SamplingParams(max_tokens=10, temperature=1.0, ignore_eos=True)

    async def run():
        return await asyncio.gather(*[engine.generate(p, params) for p in _prompts(tokenizer)])

    asyncio.run(run())
    assert engine.stats["prefills"] == 1  # all three were collected into one prefill
    assert engine.stats["decode_steps"] == 9  # ten tokens each, sampled side by side
    assert engine.stats["rows_sum"] == 27


def test_rows_in_flight_never_exceed_max_batch(tiny_path, tokenizer):
    engine = make_engine("hf", tiny_path, tokenizer, max_batch=2, batch_wait_ms=0)
    params = SamplingParams(max_tokens=6, temperature=1.0, ignore_eos=True)

    async def run():
        return await asyncio.gather(*[engine.generate(p, params)
                                      for p in _prompts(tokenizer) * 2])

    completions = asyncio.run(run())
    assert [len(c.token_ids) for c in completions] == [6] * 6
    assert engine.stats["peak_rows"] == 2  # the other requests waited for a free row


def test_requests_joining_mid_generation_are_exact(tiny_path, tokenizer):
    """Requests that arrive while a row is decoding join its batch and get the same tokens."""
    engine = make_engine("hf", tiny_path, tokenizer, batch_wait_ms=0)
    prompts = _prompts(tokenizer)

    def greedy(n: int) -> SamplingParams:
        return SamplingParams(max_tokens=n, temperature=0.0, ignore_eos=True)

    async def staggered():
        # The first row has ~120 steps to go when the others arrive: they can only join it.
        first = asyncio.ensure_future(engine.generate(prompts[0], greedy(120)))
        await _until(lambda: engine.stats["decode_steps"] >= 1, "the first row to decode")
        rest = await asyncio.gather(*[engine.generate(p, greedy(16)) for p in prompts[1:]])
        return [await first, *rest]

    async def alone():
        return [await engine.generate(p, greedy(n)) for p, n in zip(prompts, (120, 16, 16))]

    joined = asyncio.run(staggered())
    # Three rows decoded side by side, the joiners prefilled apart from the first row.
    assert engine.stats["peak_rows"] == 3 and engine.stats["prefills"] in (2, 3), engine.stats
    solo = asyncio.run(alone())
    assert [c.token_ids for c in joined] == [c.token_ids for c in solo]


def test_top_k_and_top_p_restrict_the_draw_but_not_the_logprobs():
    # Row logprobs over 4 tokens: p = [0.5, 0.3, 0.15, 0.05].
    logprobs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log().repeat(200, 1)
    top_k = [SamplingParams(top_k=2)] * 200
    drawn = choose(logprobs, top_k, [torch.Generator().manual_seed(i) for i in range(200)])
    assert set(drawn.tolist()) == {0, 1}
    # top_p=0.7 keeps the smallest prefix with mass >= 0.7: tokens 0 and 1 (0.5 + 0.3 = 0.8).
    top_p = [SamplingParams(top_p=0.7)] * 200
    drawn = choose(logprobs, top_p, [torch.Generator().manual_seed(i) for i in range(200)])
    assert set(drawn.tolist()) == {0, 1}
    # top_p=0.5 keeps token 0 alone (its mass reaches 0.5 by itself).
    drawn = choose(logprobs, [SamplingParams(top_p=0.5)] * 200, [None] * 200)
    assert set(drawn.tolist()) == {0}


def test_filtered_sampling_reports_unfiltered_logprobs(tiny_path, tokenizer, tiny_model):
    from turnwise.trainer.logprobs import token_logprobs

    engine = make_engine("hf", tiny_path, tokenizer)
    prompt = _prompts(tokenizer)[2]
    completion = asyncio.run(engine.generate(prompt, SamplingParams(
        max_tokens=8, temperature=0.9, top_k=5, top_p=0.9, seed=2)))
    ids = torch.tensor([prompt + completion.token_ids])
    logp, _ = token_logprobs(tiny_model.eval(), ids, torch.ones_like(ids), temperature=0.9)
    assert torch.allclose(logp[0, len(prompt):], torch.tensor(completion.logprobs), atol=1e-4)


def test_weights_loaded_mid_generation_keep_the_starting_version(tiny_path, tokenizer,
                                                                 tiny_model):
    engine = make_engine("hf", tiny_path, tokenizer, batch_wait_ms=0)
    params = SamplingParams(max_tokens=200, temperature=1.0, ignore_eos=True)

    async def run():
        running = asyncio.ensure_future(engine.generate(_prompts(tokenizer)[0], params))
        await _until(lambda: engine.stats["decode_steps"] >= 1, "the row to start decoding")
        await asyncio.to_thread(engine.load_weights, tiny_model.named_parameters(), 1)
        return await running

    completion = asyncio.run(run())
    assert engine.version == 1 and completion.version == 0


def test_sleep_waits_for_requests_in_flight(tiny_path, tokenizer):
    engine = make_engine("hf", tiny_path, tokenizer)
    params = SamplingParams(max_tokens=30, temperature=1.0, ignore_eos=True)

    async def run():
        running = asyncio.ensure_future(engine.generate(_prompts(tokenizer)[0], params))
        await asyncio.sleep(0)
        await engine.sleep()
        assert running.done()  # sleep returned only after the request finished
        await engine.wake()
        return running.result()

    assert len(asyncio.run(run()).token_ids) == 30


def test_load_weights_rejects_misshaped_tensors(tiny_path, tokenizer):
    engine = make_engine("hf", tiny_path, tokenizer)
    name, param = next(iter(engine.model.named_parameters()))
    with pytest.raises(ValueError, match="shape"):
        engine.load_weights([(name, torch.zeros(param.shape[0] + 1))], version=1)
