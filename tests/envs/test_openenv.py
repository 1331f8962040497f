"""OpenEnv both ways, on the real openenv package: turnwise's household world served as an
OpenEnv environment on 127.0.0.1, played back through the `openenv` suite (OpenEnv's own client),
trained on, and a server that dies mid-rollout failing only the episodes it held."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import httpx
import pytest
from turnwise.envs import make_suite
from turnwise.envs.base import EnvUnavailable, Task

OPTIONS = '{"max_steps": 20, "task_types": ["pick_and_place_simple"]}'


def _serve() -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "turnwise.envs.adapters.openenv_server",
                               "household", "--port", str(port), "--options", OPTIONS],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # a loaded machine imports openenv slowly
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("the OpenEnv server did not come up in 120 s")


def _stop(server: subprocess.Popen) -> None:
    server.kill()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def served():
    server, url = _serve()
    yield url
    _stop(server)


async def _expert_through(suite, local, split, seed):
    """Play the served task (split, seed) with the household expert, and the same task locally."""
    env, local_env = suite.make(), local.make()
    local_task = local.tasks(split, 1, seed)[0]  # what the server plays for reset(seed, split)
    oracle = local.oracle(local_task)
    seen = [await env.reset(Task(id="served", data={"split": split, "seed": seed}))]
    local_seen = [await local_env.reset(local_task)]
    assert env.system_prompt == local_env.system_prompt
    steps = []
    while not steps or not steps[-1].done:
        reply = oracle.act(local_seen[-1])
        steps.append(await env.step(reply))
        seen.append(steps[-1].observation)
        local_seen.append((await local_env.step(reply)).observation)
    await env.close()
    return steps, seen, local_seen


@pytest.mark.slow
def test_a_served_household_plays_the_same_through_openenv(served):
    suite = make_suite("openenv", url=served, timeout=30)
    local = make_suite("household", max_steps=20, task_types=["pick_and_place_simple"])
    assert suite.env_options["action_field"] == "text"
    assert suite.env_options["observation_field"] == "text"

    async def play_all():
        return await asyncio.gather(*(_expert_through(suite, local, "valid_seen", seed)
                                      for seed in range(4)))

    for steps, seen, local_seen in asyncio.run(play_all()):
        assert [o.text for o in seen] == [o.text for o in local_seen]
        assert [o.admissible_actions for o in seen] == [o.admissible_actions for o in local_seen]
        assert [o.anchor for o in seen] == [str(o.anchor) for o in local_seen]
        assert steps[-1].info["success"] and steps[-1].reward == 10.0


@pytest.mark.slow
def test_bad_urls_fields_and_a_missing_package_say_what_to_do(served, monkeypatch):
    with pytest.raises(ValueError, match=r"action_field='message': the server's action has "
                                         r"fields \['metadata', 'text'\]"):
        make_suite("openenv", url=served, action_field="message")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(EnvUnavailable, match=r"no OpenEnv server answers there.*openenv_server"):
        make_suite("openenv", url=dead, timeout=5)
    monkeypatch.setitem(sys.modules, "openenv.core", None)
    with pytest.raises(EnvUnavailable, match=r"openenv==0.10.0"):
        make_suite("openenv", url=served)


@pytest.mark.slow
def test_a_server_that_dies_fails_only_the_episodes_it_held(tokenizer):
    from turnwise.agent.chat import ChatFormatter
    from turnwise.rollouts.episode import EpisodeSettings
    from turnwise.rollouts.orchestrator import Orchestrator

    from tests.fakes import ScriptedEngine

    server, url = _serve()
    try:
        suite = make_suite("openenv", url=url, timeout=30)
        killed = []

        def reply(prompt, index):
            if index == 6 and not killed:  # a few episodes are mid-way: the server dies
                server.kill()
                server.wait(timeout=30)
                killed.append(index)
            return "<action>look</action>"

        orchestrator = Orchestrator(ScriptedEngine(tokenizer, reply), suite,
                                    ChatFormatter(tokenizer),
                                    EpisodeSettings(max_turns=3, max_tokens_per_turn=16),
                                    quiet=True)
        trajectories = asyncio.run(orchestrator.rollout(suite.tasks("train", 2, 0),
                                                        group_size=2, tag="t"))
    finally:
        _stop(server)
    assert killed and len(trajectories) == 4
    failed = [t for t in trajectories if t.status == "failed"]
    assert failed and orchestrator.last["status_failed"] == len(failed)
    assert all(t.info["error"] for t in failed)


@pytest.mark.slow
def test_training_on_an_openenv_server(served, tmp_path):
    from turnwise.trainer.config import Config
    from turnwise.trainer.loop import train

    cfg = Config.model_validate({
        "seed": 0,
        "model": {"name": "tiny:household"},
        "env": {"name": "openenv", "options": {"url": served, "timeout": 60}},
        "rollout": {"mode": "per_step", "group_size": 2, "tasks_per_iteration": 2,
                    "max_turns": 3, "max_tokens_per_turn": 12},
        "credit": {"estimator": "gigpo"},
        "train": {"iterations": 2, "threads": 2},
        "sft": {"episodes": 0}, "eval": {"tasks": 0},
        "log": {"dir": str(tmp_path), "run_name": "r", "quiet": True},
    })
    result = train(cfg, echo=lambda *_: None)
    assert len(result.history) == 2
    for record in result.history:
        assert record["train/optimizer_steps"] >= 1
        assert record["rollout/status_failed"] == 0
