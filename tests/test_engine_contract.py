"""One contract, every engine: the same tests run against `hf`, `vllm` and `server`.

`vllm` and `server` run where vLLM is installed: `make test` runs this file a second time inside
.venv-vllm (the CPU build of vLLM), so CI covers every engine on a fresh machine; `server`
drives a real vLLM server that the fixture starts on 127.0.0.1 and stops afterwards.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import torch
from turnwise.agent.engines import SamplingParams, make_engine
from turnwise.trainer.logprobs import token_logprobs

ENGINE_OPTIONS = {
    "hf": {"batch_wait_ms": 5.0},
    "vllm": {"kv_cache_gib": 0.25, "max_batch": 16},
}
MAX_MODEL_LEN = 256


@pytest.fixture(scope="module", params=["hf", pytest.param("vllm", marks=pytest.mark.vllm),
                                        pytest.param("server", marks=pytest.mark.vllm)])
def engine(request, tiny_path, tokenizer, tmp_path_factory):
    if request.param != "hf":
        pytest.importorskip("vllm", reason="vLLM is not installed in this venv; `make test` "
                                           "runs the vllm contract tests in .venv-vllm")
    if request.param == "server":
        from vllm_servers import running_servers

        with running_servers(tiny_path, 1, str(tmp_path_factory.mktemp("vllm"))) as servers:
            served = make_engine("server", tiny_path, tokenizer, urls=[servers[0].url])
            yield served
            asyncio.run(served.close())
        return
    served = make_engine(request.param, tiny_path, tokenizer, max_model_len=MAX_MODEL_LEN,
                         **ENGINE_OPTIONS[request.param])
    yield served
    asyncio.run(served.close())


@pytest.fixture(scope="module")
def reference(tiny_path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_path).eval()


@pytest.fixture(scope="module")
def prompts(tokenizer):
    texts = ["You are in the middle of a room. Looking quickly around you, you see",
             "go to countertop 1", "Your task is to: put a cool apple in the fridge."]
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


def run(coroutine):
    return asyncio.run(coroutine)


async def gather(engine, prompts, params):
    return await asyncio.gather(*[engine.generate(p, params) for p in prompts])


def reference_logprobs(model, prompt, completion_ids, temperature=1.0):
    ids = torch.tensor([prompt + completion_ids])
    with torch.no_grad():
        logp, _ = token_logprobs(model, ids, torch.ones_like(ids), temperature=temperature)
    return logp[0, len(prompt):]


def test_logprobs_match_a_forward_pass(engine, reference, prompts):
    completions = run(gather(engine, prompts, SamplingParams(max_tokens=12, temperature=0.8)))
    for prompt, completion in zip(prompts, completions):
        assert len(completion.token_ids) == len(completion.logprobs) > 0
        expected = reference_logprobs(reference, prompt, completion.token_ids, 0.8)
        assert torch.allclose(expected, torch.tensor(completion.logprobs), atol=2e-3), \
            (expected, completion.logprobs)


def test_greedy_is_argmax_and_batching_does_not_change_it(engine, reference, prompts):
    greedy = SamplingParams(max_tokens=10, temperature=0.0)
    together = run(gather(engine, prompts, greedy))
    alone = [run(engine.generate(p, greedy)) for p in prompts]
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]
    for prompt, completion in zip(prompts, alone):
        ids = torch.tensor([prompt + completion.token_ids])
        with torch.no_grad():
            logits = reference(ids).logits[0, len(prompt) - 1:-1].float()
        chosen = logits.gather(-1, torch.tensor(completion.token_ids).unsqueeze(-1)).squeeze(-1)
        # The chosen token is the argmax (up to float ties between engines' kernels).
        assert torch.all(logits.max(-1).values - chosen < 1e-3)


def test_max_tokens_stop_tokens_and_ignore_eos(engine, tokenizer, prompts):
    prompt = prompts[0]
    capped = run(engine.generate(prompt, SamplingParams(max_tokens=3, temperature=0.0)))
    assert capped.finish_reason == "length" and len(capped.token_ids) == 3
    # Every token stops: the first one is generated, kept, and named as the reason.
    forced = run(engine.generate(prompt, SamplingParams(
        max_tokens=20, temperature=1.0, seed=3, stop_token_ids=tuple(range(len(tokenizer))))))
    assert forced.finish_reason == "stop" and len(forced.token_ids) == 1
    assert forced.stop_reason == forced.token_ids[0]
    long = run(engine.generate(prompt, SamplingParams(max_tokens=24, temperature=1.0, seed=4,
                                                      ignore_eos=True)))
    assert long.finish_reason == "length" and len(long.token_ids) == 24


def test_stop_strings_end_the_completion_at_the_token_that_completes_them(engine, tokenizer,
                                                                          prompts):
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)
    # An untrained model's greedy text is degenerate; a seeded sample is varied and repeatable.
    params = SamplingParams(max_tokens=24, temperature=1.0, seed=21, ignore_eos=True)
    found = None
    for prompt in prompts:
        free = run(engine.generate(prompt, params))
        for i in range(2, len(free.token_ids)):
            text, before = decode(free.token_ids[:i + 1]), decode(free.token_ids[:i])
            stop = text[-2:].strip()
            # A printable string that first appears with token i.
            if stop and stop.isascii() and stop.isprintable() and stop not in before:
                found = (prompt, free.token_ids[:i + 1], stop)
                break
        if found:
            break
    assert found, "no printable stop string in the sampled outputs"
    prompt, expected, stop = found
    stopped = run(engine.generate(prompt, replace(params, stop=(stop,))))
    assert stopped.token_ids == expected
    assert stopped.finish_reason == "stop" and stopped.stop_reason == stop


def test_a_session_names_the_episode_and_changes_no_tokens(engine, prompts):
    greedy = SamplingParams(max_tokens=8, temperature=0.0)
    plain = run(engine.generate(prompts[0], greedy))
    turns = [run(engine.generate(prompts[0], greedy, session="episode-1")) for _ in range(2)]
    assert [t.token_ids for t in turns] == [plain.token_ids] * 2


def test_seeds_repeat_and_differ(engine, prompts):
    def sample(seed):
        params = SamplingParams(max_tokens=16, temperature=1.0, seed=seed, ignore_eos=True)
        return run(engine.generate(prompts[1], params)).token_ids

    first, again, other = sample(11), sample(11), sample(12)
    assert first == again
    assert first != other


def test_top_logprobs_are_the_forward_pass_top_k(engine, reference, prompts):
    params = SamplingParams(max_tokens=8, temperature=0.7, top_logprobs=5, top_logprobs_tokens=3)
    completion = run(engine.generate(prompts[2], params))
    assert len(completion.top_logprobs) == 3
    ids = torch.tensor([prompts[2] + completion.token_ids])
    with torch.no_grad():
        logits = reference(ids).logits[0, len(prompts[2]) - 1:-1].float() / 0.7
    expected = torch.log_softmax(logits, -1).topk(5)
    for i, top in enumerate(completion.top_logprobs):
        assert len(top) == 5
        assert set(top) == set(expected.indices[i].tolist())
        got = torch.tensor([top[t] for t in expected.indices[i].tolist()])
        assert torch.allclose(got, expected.values[i], atol=2e-3)
        # The sampled token's own logprob is consistent with the top-k it came with.
        assert completion.logprobs[i] <= max(top.values()) + 1e-4


def test_prompt_longer_than_the_model_is_marked_not_raised(engine, prompts):
    too_long = (prompts[0] * MAX_MODEL_LEN)[:MAX_MODEL_LEN + 4]
    completion = run(engine.generate(too_long, SamplingParams(max_tokens=4)))
    assert completion.token_ids == [] and completion.info["prompt_too_long"]
    with pytest.raises(ValueError, match="empty prompt"):
        run(engine.generate([], SamplingParams(max_tokens=4)))


def test_sleep_refuses_work_and_wake_serves_the_same_weights(engine, prompts):
    greedy = SamplingParams(max_tokens=8, temperature=0.0)

    async def cycle():
        before = await engine.generate(prompts[1], greedy)
        await engine.sleep()
        with pytest.raises(RuntimeError, match="asleep"):
            await engine.generate(prompts[1], greedy)
        await engine.wake()
        return before, await engine.generate(prompts[1], greedy)

    before, after = run(cycle())
    assert after.token_ids == before.token_ids


def test_load_weights_in_place_then_back(engine, reference, prompts):
    """New weights are served at once with their version; the old ones come back the same way."""
    from transformers import AutoModelForCausalLM

    greedy = SamplingParams(max_tokens=8, temperature=0.0)
    original = run(engine.generate(prompts[1], greedy))
    torch.manual_seed(123)
    other = AutoModelForCausalLM.from_config(reference.config).eval()
    engine.load_weights(other.named_parameters(), version=7)
    moved = run(engine.generate(prompts[1], SamplingParams(max_tokens=8, temperature=1.0,
                                                           seed=5)))
    assert moved.version == 7 and engine.version == 7
    new_logp = reference_logprobs(other, prompts[1], moved.token_ids)
    old_logp = reference_logprobs(reference, prompts[1], moved.token_ids)
    assert torch.allclose(new_logp, torch.tensor(moved.logprobs), atol=2e-3)
    assert not torch.allclose(old_logp, torch.tensor(moved.logprobs), atol=1e-2)

    engine.load_weights(reference.named_parameters(), version=8)
    restored = run(engine.generate(prompts[1], greedy))
    assert restored.version == 8 and restored.token_ids == original.token_ids
    with pytest.raises(KeyError, match="no tensor named"):
        engine.load_weights([("nope.weight", torch.zeros(2))], version=9)
    assert engine.version == 8
