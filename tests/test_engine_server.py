"""What only the `server` engine does: balancing and session affinity, taking out a server that
dies or stalls (its requests retried elsewhere), readmitting it, weights changing in the middle
of a generation. The contract every engine shares is in test_engine_contract.py.

The pool and the wire format are tested here without servers; the rest drives two real vLLM
servers (.venv-vllm, `make test`), started once for the module. The test that kills a server
comes last.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import time

import pytest
import torch
from turnwise.agent.engines import SamplingParams, make_engine
from turnwise.agent.engines.server import parse_answer, request_body
from turnwise.agent.engines.server_pool import NoServerAvailable, ServerPool
from turnwise.trainer.logprobs import token_logprobs

HAS_VLLM = importlib.util.find_spec("vllm") is not None


# ---------------------------------------------------------------------------------- no servers

def test_pool_balances_by_outstanding_requests_and_keeps_sessions_on_one_server():
    pool = ServerPool(["http://a:1/", "http://b:1"])
    a, b = pool.servers
    assert a.url == "http://a:1"  # trailing slash dropped
    assert pool.pick("s1") is a  # tie: the first listed
    a.outstanding = 3
    assert pool.pick("s2") is b
    b.outstanding = 5
    assert pool.pick("s1") is a and pool.pick("s2") is b  # affinity beats load
    assert pool.pick(None) is a  # no session: the least loaded
    assert pool.take_out(b, "connection refused") and not pool.take_out(b, "again")
    assert pool.pick("s2") is a  # its server is out: the session moves
    pool.readmit(b)
    assert pool.pick("s2") is a  # and stays where it moved
    pool.take_out(a, "stalled")
    pool.take_out(b, "HTTP 500")
    with pytest.raises(NoServerAvailable, match=r"http://a:1: out \(stalled\); "
                                                r"http://b:1: out \(HTTP 500\)"):
        pool.pick("s3")


def test_pool_forgets_the_oldest_sessions_and_refuses_bad_url_lists():
    pool = ServerPool(["http://a:1", "http://b:1"], max_sessions=2)
    a, b = pool.servers
    pool.pick("s1")  # -> a
    a.outstanding = 1
    pool.pick("s2")  # -> b
    pool.pick("s3")  # -> b (a busier); s1 forgotten
    b.outstanding = 2
    assert pool.pick("s1") is a and pool.pick("s3") is b
    with pytest.raises(ValueError, match="empty"):
        ServerPool([])
    with pytest.raises(ValueError, match="listed twice"):
        ServerPool(["http://a:1", "http://a:1/"])


def test_request_asks_one_sample_and_one_more_top_logprob_than_wanted():
    body = request_body([3, 4, 5], SamplingParams(max_tokens=300, temperature=0.7, seed=9,
                                                  top_logprobs=5, stop=("\n",)), 256, "tw-1")
    sampling = body["sampling_params"]
    assert body["token_ids"] == [3, 4, 5] and body["request_id"] == "tw-1"
    assert sampling["n"] == 1 and sampling["seed"] == 9 and sampling["temperature"] == 0.7
    assert sampling["max_tokens"] == 253  # what fits in the context
    assert sampling["logprobs"] == 6 and sampling["detokenize"] is True
    assert request_body([3], SamplingParams(), 256, "x")["sampling_params"]["logprobs"] == 0


def test_answer_keeps_the_top_k_by_rank_and_spreads_weight_versions_over_tokens():
    def entry(token, logprob, rank, top):
        return {"token_id": token, "logprob": logprob, "rank": rank,
                "top_logprobs": [{"token_id": token, "logprob": logprob, "rank": rank}]
                + [{"token_id": t, "logprob": lp, "rank": r} for t, lp, r in top]}

    # The shape vLLM 0.32's /inference/v1/generate returns, for top_logprobs=2 (asked 3).
    answer = {"choices": [{
        "finish_reason": "stop", "stop_reason": None, "token_ids": [7, 8, 2],
        "weight_versions": [{"version": "3", "start": 0, "end": 2},
                            {"version": "4", "start": 2, "end": 3}],
        "logprobs": {"content": [entry(7, -2.5, 9, [(1, -0.5, 1), (5, -1.0, 2)]),
                                 entry(8, -0.2, 1, [(6, -2.0, 2), (9, -3.0, 3)]),
                                 entry(2, -0.1, 1, [(4, -3.0, 2), (1, -4.0, 3)])]}}]}
    params = SamplingParams(top_logprobs=2, top_logprobs_tokens=2)
    done = parse_answer(answer, params, version=3, url="http://a:1")
    assert done.token_ids == [7, 8, 2] and done.logprobs == [-2.5, -0.2, -0.1]
    # Rank 9 (the sampled token) is not in the top 2; the third entry (rank 3) is cut.
    assert done.top_logprobs == [{1: -0.5, 5: -1.0}, {8: -0.2, 6: -2.0}]
    assert done.version == 3 and done.token_versions == [3, 3, 4]
    assert done.stop_reason == 2  # eos: vLLM leaves it empty, the contract names the token
    answer["choices"][0]["weight_versions"] = [{"version": "default", "start": 0, "end": 3}]
    with pytest.raises(RuntimeError, match="another client changed them"):
        parse_answer(answer, params, version=3, url="http://a:1")


def test_no_reachable_server_stops_at_start_naming_each_url():
    from turnwise.agent.engines.server_launch import free_port

    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    with pytest.raises(NoServerAvailable) as failure:
        make_engine("server", "unused-model", urls=urls, health_timeout_s=2)
    for url in urls:
        assert f"{url}: out (GET {url}/v1/models: ClientConnectorError" in str(failure.value)


# ---------------------------------------------------------------------------------- two servers

@pytest.fixture(scope="module")
def servers(tiny_path, tmp_path_factory):
    if not HAS_VLLM:
        pytest.skip("vLLM is not installed in this venv")
    from vllm_servers import running_servers

    with running_servers(tiny_path, 2, str(tmp_path_factory.mktemp("vllm"))) as started:
        yield started


@pytest.fixture(scope="module")
def reference(tiny_path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_path).eval()


@pytest.fixture(scope="module")
def prompt(tokenizer):
    return tokenizer.encode("You are in the middle of a room. Looking quickly around you",
                            add_special_tokens=False)


def logprobs_under(model, prompt, ids):
    full = torch.tensor([prompt + ids])
    with torch.no_grad():
        logp, _ = token_logprobs(model, full, torch.ones_like(full))
    return logp[0, len(prompt):]


def running(url: str) -> float:
    """Requests the server is generating for now (its Prometheus gauge)."""
    import urllib.request

    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:num_requests_running"))


async def until(condition, timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        await asyncio.sleep(0.02)


def _engine(tiny_path, tokenizer, servers, **options):
    return make_engine("server", tiny_path, tokenizer, urls=[s.url for s in servers], **options)


@pytest.mark.vllm
@pytest.mark.slow
def test_sessions_stay_on_one_server_and_sessions_spread_over_both(servers, tiny_path,
                                                                   tokenizer, prompt):
    engine = _engine(tiny_path, tokenizer, servers)
    params = SamplingParams(max_tokens=16, temperature=1.0, ignore_eos=True)

    async def episodes():
        async def episode(i):
            return [(await engine.generate(prompt, params, session=f"ep{i}")).info["server"]
                    for _ in range(3)]
        return await asyncio.gather(*(episode(i) for i in range(8)))

    try:
        used = asyncio.run(episodes())
    finally:
        asyncio.run(engine.close())
    assert all(len(set(turns)) == 1 for turns in used)  # every turn of an episode: one server
    assert {turns[0] for turns in used} == {s.url for s in servers}  # episodes: both servers
    assert engine.stats["retries"] == 0 and engine.stats["requests"] == 24


@pytest.mark.vllm
@pytest.mark.slow
def test_weights_changing_mid_generation_label_each_token(servers, tiny_path, tokenizer,
                                                          reference, prompt):
    """Keep-mode pause: the request freezes, its keys and values are recomputed with the new
    weights, and each token says which weights sampled it; logprobs follow the same split."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(5)
    other = AutoModelForCausalLM.from_config(reference.config).eval()
    engine = _engine(tiny_path, tokenizer, servers[:1])
    url = servers[0].url
    params = SamplingParams(max_tokens=256 - len(prompt) - 1, temperature=1.0, seed=3,
                            ignore_eos=True)
    models = {v: other if v % 2 else reference for v in range(9)}

    async def generate_across_update(version):
        task = asyncio.ensure_future(engine.generate(prompt, params))
        await until(lambda: running(url) >= 1 or task.done(), what="request running")
        await asyncio.to_thread(engine.load_weights, models[version].named_parameters(),
                                version)
        return await task

    try:
        # A request that finished before the update (a quiet machine generates the whole
        # reply in under a second) is tried again.
        for version in range(1, 9):
            done = asyncio.run(generate_across_update(version))
            if done.token_versions:
                break
    finally:
        engine.load_weights(reference.named_parameters(), 10)
        asyncio.run(engine.close())
    assert done.token_versions, "every request finished before its weight update"
    assert done.version == version - 1 and done.token_versions[-1] == version
    switch = done.token_versions.index(version)
    assert 0 < switch and set(done.token_versions[switch:]) == {version}
    got = torch.tensor(done.logprobs)
    old = logprobs_under(models[version - 1], prompt, done.token_ids)
    new = logprobs_under(models[version], prompt, done.token_ids)
    assert torch.allclose(got[:switch], old[:switch], atol=2e-3)
    assert torch.allclose(got[switch:], new[switch:], atol=2e-3)  # the whole prefix recomputed
    assert not torch.allclose(got[switch:], old[switch:], atol=1e-2)


@pytest.mark.vllm
@pytest.mark.slow
def test_a_stalled_server_is_taken_out_its_requests_retried_and_it_comes_back(
        servers, tiny_path, tokenizer, prompt):
    engine = _engine(tiny_path, tokenizer, servers, health_interval_s=1.0, health_timeout_s=3.0)
    stalled = servers[1]
    params = SamplingParams(max_tokens=64, temperature=1.0, ignore_eos=True)

    async def batch():
        tasks = [asyncio.ensure_future(engine.generate(prompt, params, session=f"s{i}"))
                 for i in range(16)]
        await until(lambda: running(stalled.url) >= 1, what="requests on the second server")
        os.kill(stalled.process.pid, signal.SIGSTOP)  # its HTTP front end freezes
        try:
            done = await asyncio.gather(*tasks)
        finally:
            os.kill(stalled.process.pid, signal.SIGCONT)
        await until(lambda: engine.stats["readmitted"] >= 1, what="readmission")
        return done

    try:
        done = asyncio.run(batch())
    finally:
        asyncio.run(engine.close())
    assert [len(c.token_ids) for c in done] == [64] * 16
    assert engine.stats["taken_out"] >= 1 and engine.stats["retries"] >= 1
    assert all(s.up for s in engine.pool.servers)


@pytest.mark.vllm
@pytest.mark.slow
def test_a_server_killed_mid_batch_loses_nothing_then_none_left_is_an_error(
        servers, tiny_path, tokenizer, prompt):
    """Last in the module: the servers do not survive it."""
    engine = _engine(tiny_path, tokenizer, servers, health_timeout_s=5.0)
    params = SamplingParams(max_tokens=128, temperature=1.0, ignore_eos=True)
    killed, survivor = servers[1], servers[0]

    async def timed(i):
        completion = await engine.generate(prompt, params, session=f"k{i}")
        return completion, time.monotonic()

    async def batch():
        tasks = [asyncio.ensure_future(timed(i)) for i in range(16)]
        # Kill it while the engine has requests out there (vLLM's running gauge lags: on a
        # quiet machine the server had finished some before it showed them).
        target = next(s for s in engine.pool.servers if s.url == killed.url)
        await until(lambda: target.outstanding >= 4, what="requests on the second server")
        killed.kill()
        killed_at = time.monotonic()
        return await asyncio.gather(*tasks), killed_at

    try:
        done, killed_at = asyncio.run(batch())
        assert [len(c.token_ids) for c, _ in done] == [128] * 16  # none lost, none cut short
        # Nothing came back from the killed server after the kill: what it had in flight was
        # retried and finished on the survivor (a fast server may finish some before it dies).
        late = {c.info["server"] for c, at in done if at >= killed_at}
        assert late == {survivor.url}
        assert engine.stats["taken_out"] == 1 and engine.stats["retries"] >= 1
        survivor.kill()
        with pytest.raises(NoServerAvailable) as failure:
            asyncio.run(engine.generate(prompt, params, session="after"))
    finally:
        asyncio.run(engine.close())
    for server in servers:
        assert f"{server.url}: out (" in str(failure.value)
