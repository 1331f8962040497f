"""One RL iteration on the tiny model: the weights move, and the engine generates from them."""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys

import pytest
import torch

from turnwise import credit
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines import SamplingParams, make_engine
from turnwise.rollouts import build_batch
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.trainer.backends.torch_backend import TorchBackend
from turnwise.trainer.config import LossConfig, TrainConfig
from turnwise.trainer.logprobs import token_logprobs


@pytest.mark.slow
def test_one_iteration_updates_policy_and_engine(tiny_path, tokenizer, tiny_model, household):
    engine = make_engine("hf", tiny_path, tokenizer)
    settings = EpisodeSettings(mode="per_step", max_turns=3, max_tokens_per_turn=12)
    orch = Orchestrator(engine, household, ChatFormatter(tokenizer), settings)
    trajs = asyncio.run(orch.rollout(household.tasks("train", 2, 0), group_size=4, tag="it0"))
    # Give the group distinct scores so GRPO has a signal even for an untrained policy.
    for i, traj in enumerate(trajs):
        traj.outcome_reward = float(i % 4)
    batch = build_batch(trajs, pad_id=tokenizer.pad_token_id)
    credit.assign_advantages(batch, credit.compute("grpo", trajs, {}))
    assert batch.advantages.abs().sum() > 0

    backend = TorchBackend(tiny_model, TrainConfig(lr=1e-2), LossConfig())
    before = {n: p.detach().clone() for n, p in tiny_model.named_parameters()}
    metrics = backend.update(batch)
    assert metrics["optimizer_steps"] == 1
    # On-policy: the trainer reproduces the rollout logprobs before it moves.
    assert metrics["rollout_logprob_diff"] < 1e-4
    moved = [n for n, p in tiny_model.named_parameters() if not torch.equal(p, before[n])]
    assert len(moved) == len(before)

    engine.load_weights(backend.state_dict_for_engine(), version=1)
    prompt = trajs[0].context_ids(0)
    completion = asyncio.run(engine.generate(prompt, SamplingParams(max_tokens=8)))
    assert completion.version == 1
    ids = torch.tensor([prompt + completion.token_ids])
    logp, _ = token_logprobs(tiny_model.eval(), ids, torch.ones_like(ids))
    assert torch.allclose(logp[0, len(prompt):], torch.tensor(completion.logprobs), atol=1e-4)


@pytest.mark.slow
def test_cli_runs_two_iterations_within_a_minute_of_cpu(tiny_path, tmp_path):
    # CPU seconds, not wall: on a loaded shared machine the wall time says more about the others.
    started = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-m", "turnwise.trainer.cli", "train", "household_grpo",
         "train.iterations=2", "sft.episodes=0", "eval.tasks=0", "rollout.tasks_per_iteration=2",
         "rollout.group_size=4", "rollout.max_turns=4", f"log.dir={tmp_path}", "log.run_name=r"],
        capture_output=True, text=True, timeout=900)  # a hang guard
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed = (ended.ru_utime + ended.ru_stime) - (started.ru_utime + started.ru_stime)
    assert out.returncode == 0, out.stderr[-2000:]
    assert elapsed < 60, elapsed
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    import json

    record = json.loads(lines[-1])
    for key in ("rollout/reward", "train/loss", "train/kl", "train/clipfrac", "train/entropy",
                "perf/tokens_per_s", "credit/flat_groups"):
        assert key in record and record[key] is not None, key
    assert (tmp_path / "r" / "config.yaml").exists()
    assert (tmp_path / "r" / "policy" / "config.json").exists()
