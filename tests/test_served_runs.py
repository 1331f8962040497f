"""Whole runs against real vLLM servers: `turnwise eval` through the official `openai` client
(engine.kind=openai), the same episodes through the token path (engine.kind=server), a short RL
run whose weights reach the server after every update, and two nodes simulated on this machine
(two launcher invocations meeting on 127.0.0.1, each node with its own server).

The trainer side runs in this venv, the servers from .venv-vllm, as a deployment would; two
servers started by `turnwise serve` serve the module. Skipped where no Python with vLLM is
found (`make vllm-venv`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass

import pytest
import torch
from turnwise.trainer.build import basics, build_run, eval_settings
from turnwise.trainer.cli import main
from turnwise.trainer.models import resolve_model
from turnwise.trainer.recipe import load_recipe
from vllm_servers import has_vllm_python

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.skipif(
    not has_vllm_python(), reason="no Python with vLLM here (`make vllm-venv` builds .venv-vllm)")]

RECIPE = ["household_gigpo", "preset=cpu-tiny"]
KEY = "sk-turnwise-test-4f1c9e"  # any key: the local server has none; it must never be printed


@pytest.fixture(scope="module")
def model_path():
    return resolve_model(load_recipe(RECIPE[0], RECIPE[1:]).model)


@dataclass(frozen=True)
class Served:
    url: str


@pytest.fixture(scope="module")
def servers(model_path, tmp_path_factory):
    """Two servers started by `turnwise serve` (one per core); SIGTERM stops them all."""
    folder = tmp_path_factory.mktemp("serve")
    port = two_free_ports()
    serve = subprocess.Popen(
        [sys.executable, "-m", "turnwise.trainer.cli", "serve", *RECIPE, f"log.dir={folder}",
         "--servers", "2", "--port", str(port), "--kv-cache-gib", "0.125"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in serve.stdout:  # blocks until the servers are up (or it fails)
            lines.append(line)
            if line.startswith("ready: "):
                break
        assert lines and lines[-1].startswith("ready: "), "".join(lines)[-3000:]
        urls = lines[-1].removeprefix("ready: ").strip().split(",")
        assert urls == [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
        assert f"engine.kind=server engine.urls=[{','.join(urls)}]" in serve.stdout.readline()
        yield [Served(u) for u in urls]
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=120)
    for url in urls:  # stopped with it
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{url}/health", timeout=5)


def two_free_ports() -> int:
    """A port p such that p and p + 1 are both free."""
    from turnwise.agent.engines.server_launch import free_port

    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


@pytest.fixture(scope="module")
def server(servers):
    return servers[0]


def play(overrides: list[str], tasks: int = 3):
    """Sampled episodes (seed 7, one at a time) with `overrides`; each turn's text and action."""
    cfg = load_recipe(RECIPE[0], [*RECIPE[1:], "rollout.max_concurrency=1", *overrides])
    path = resolve_model(cfg.model)
    base = basics(cfg, path)
    run = build_run(cfg, base, path, train=False)

    async def go():
        try:
            return await run.orchestrator.rollout(
                base.suite.tasks(cfg.eval.split, tasks, 1), group_size=1, tag="served", seed=7,
                settings=eval_settings(cfg, sampled=True), branch=False)
        finally:
            await run.close()

    # The chat API drops special tokens and holds back a trailing partial character.
    text = lambda ids: base.tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd")
    return [[(text(t.response_ids), t.action) for t in traj.turns] for traj in asyncio.run(go())]


def test_openai_kind_plays_the_episodes_the_token_path_plays(server, model_path, monkeypatch):
    """Chat messages through the official client reach the model as the very ids the episode
    renders: with the same seeds both paths sample the same replies and actions."""
    monkeypatch.setenv("TW_TEST_KEY", KEY)
    tokens = play(["engine.kind=server", f"engine.urls=[{server.url}]"])
    chat = play(["engine.kind=openai", f"engine.base_url={server.url}/v1",
                 f"engine.model={model_path}", "engine.api_key_env=TW_TEST_KEY"])
    assert [len(t) for t in chat] == [len(t) for t in tokens] and sum(map(len, chat)) >= 3
    assert chat == tokens


def test_turnwise_eval_with_openai_kind_reports_and_never_shows_the_key(
        server, model_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TW_TEST_KEY", KEY)
    out = tmp_path / "eval.json"
    code = main(["eval", *RECIPE, "engine.kind=openai", f"engine.base_url={server.url}/v1",
                 f"engine.model={model_path}", "engine.api_key_env=TW_TEST_KEY",
                 "--tasks", "4", f"--out={out}", f"log.dir={tmp_path}"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["episodes_total"] == 4 and len(report["episodes"]) == 4
    assert all(e["turns"] >= 1 for e in report["episodes"])
    shown = capsys.readouterr()
    assert KEY not in shown.out + shown.err + out.read_text()
    monkeypatch.delenv("TW_TEST_KEY")
    assert main(["eval", *RECIPE, "engine.kind=openai", f"engine.base_url={server.url}/v1",
                 f"engine.model={model_path}", "engine.api_key_env=TW_TEST_KEY",
                 "--tasks", "1", f"log.dir={tmp_path}"]) == 2
    assert "engine.api_key_env='TW_TEST_KEY'" in capsys.readouterr().err


def test_training_with_openai_kind_stops_at_start_saying_why(server, model_path, tmp_path,
                                                             capsys):
    code = main(["train", *RECIPE, "engine.kind=openai", f"engine.base_url={server.url}/v1",
                 f"engine.model={model_path}", f"log.dir={tmp_path}"])
    assert code == 2
    assert "engine.kind='openai' cannot train" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # stopped before a run folder was made


def test_rl_through_the_server_engine_syncs_every_update(server, tmp_path):
    """Two iterations: iteration k plays with version k-1, and after the run the server serves
    the final policy, labelled with its version (its logprobs are the saved policy's)."""
    from transformers import AutoModelForCausalLM

    assert main(["train", *RECIPE, "engine.kind=server", f"engine.urls=[{server.url}]",
                 "train.iterations=2", "sft.episodes=16", "sft.epochs=1", "sft.cache=false",
                 "rollout.tasks_per_iteration=2", "rollout.group_size=4", "eval.tasks=0",
                 f"log.dir={tmp_path}"]) == 0
    run = next(tmp_path.glob("household_gigpo-*"))
    for iteration in (1, 2):
        lines = (run / "trajectories" / f"iter_{iteration:05d}.jsonl").read_text().splitlines()
        assert {json.loads(line)["version"] for line in lines} == {iteration - 1}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "engine/retries" in r]
    assert len(steps) == 2  # a healthy server: the counters are there, and nothing failed
    assert all(r["engine/retries"] == r["engine/taken_out"] == 0 for r in steps)
    label = json.load(urllib.request.urlopen(f"{server.url}/weight_info", timeout=30))
    assert label == {"weight_version": "2"}
    policy = AutoModelForCausalLM.from_pretrained(run / "policy").eval()
    prompt = [5, 6, 7, 8, 9, 10]
    request = urllib.request.Request(
        f"{server.url}/inference/v1/generate", headers={"content-type": "application/json"},
        data=json.dumps({"token_ids": prompt, "sampling_params": {
            "max_tokens": 8, "temperature": 1.0, "seed": 1, "logprobs": 0,
            "detokenize": False}}).encode())
    choice = json.load(urllib.request.urlopen(request, timeout=60))["choices"][0]
    ids = torch.tensor([prompt + choice["token_ids"]])
    with torch.no_grad():
        logits = policy(ids).logits[0, len(prompt) - 1:-1]
    expected = torch.log_softmax(logits.float(), -1).gather(
        -1, torch.tensor(choice["token_ids"]).unsqueeze(-1)).squeeze(-1)
    got = torch.tensor([c["logprob"] for c in choice["logprobs"]["content"]])
    assert torch.allclose(got, expected, atol=2e-3)


def served_requests(url: str) -> float:
    """Generation requests the server has finished (its Prometheus counter)."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:request_success_total"))


@pytest.mark.deepspeed
def test_two_nodes_each_with_its_own_server_train_their_own_groups_and_log_once(
        servers, tmp_path):
    """Two `torchrun` invocations (--nnodes 2, one process each) meet on 127.0.0.1 as two nodes
    would; node i rolls out on server i and syncs its weights there; DeepSpeed (gloo) reduces
    the gradients; rank 0 alone writes the run folder."""
    import importlib.util

    from turnwise.agent.engines.server_launch import free_port

    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed is not installed (the `deepspeed` extra)")
    before = [served_requests(s.url) for s in servers]
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(rank),
         "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port),
         "-m", "turnwise.trainer.cli", "train", *RECIPE, "train.backend=deepspeed",
         "deepspeed.zero_stage=2", "train.iterations=3", "sft.episodes=0", "eval.tasks=0",
         "rollout.tasks_per_iteration=2", "rollout.group_size=2", "rollout.max_turns=3",
         "rollout.max_tokens_per_turn=8", "train.threads=1", "log.quiet=true",
         f"log.dir={tmp_path / f'node{rank}'}", "log.run_name=r", "engine.kind=server",
         f"engine.urls=[{servers[rank].url}]"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for rank in (0, 1)]
    outputs = [node.communicate(timeout=900)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    # Logged once: rank 0 wrote the run folder, rank 1 none.
    assert not (tmp_path / "node1").exists()
    lines = (tmp_path / "node0" / "r" / "metrics.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if r.get("iteration", 0) >= 1]
    assert [r["iteration"] for r in records] == [1, 2, 3]
    # Each node played its own task (2 episodes) per step; the log sums both, once.
    assert all(r["rollout/episodes"] == 4 for r in records)
    assert records[-1]["policy_version"] == 3
    for server, served in zip(servers, before):
        # Every node rolled out on its own server and synced its weights there after each step.
        assert served_requests(server.url) - served >= 3 * 2  # >= 1 turn per episode
        label = json.load(urllib.request.urlopen(f"{server.url}/weight_info", timeout=30))
        assert label == {"weight_version": "3"}
