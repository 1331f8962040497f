"""The whole RL path learns: rollouts through the orchestrator, GRPO credit, the torch backend's
update and the weight sync back to the engine raise the reward of a one-turn bandit.

The bandit pays 1 when the reply starts with a letter from a to m, which an untrained tiny
model does about 40% of the time; nothing but the policy gradient can push that to 1 (it gets
there in about 15 iterations of 64 episodes at lr 1e-2). A sign error in the advantages, the
loss or the weight sync leaves it flat or drives it to 0."""

from __future__ import annotations

import asyncio

import pytest
import torch

from turnwise import credit
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines import make_engine
from turnwise.envs.base import Observation, Step, Task
from turnwise.rollouts import build_batch
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.trainer.backends.torch_backend import TorchBackend
from turnwise.trainer.config import LossConfig, TrainConfig


class FirstLetterEnv:
    system_prompt = "Answer with one word."

    async def reset(self, task: Task) -> Observation:
        return Observation(text="Say a word.")

    async def step(self, action_text: str) -> Step:
        paid = action_text.strip()[:1].lower() in "abcdefghijklm"
        return Step(Observation(text=""), reward=float(paid), done=True, info={"success": paid})

    async def close(self) -> None:
        pass


class FirstLetterSuite:
    name = "first_letter"

    def make(self) -> FirstLetterEnv:
        return FirstLetterEnv()


@pytest.mark.slow
def test_grpo_drives_a_bandit_to_its_reward(tiny_path, tokenizer, tiny_model):
    torch.manual_seed(0)
    engine = make_engine("hf", tiny_path, tokenizer)
    settings = EpisodeSettings(mode="per_step", max_turns=1, max_tokens_per_turn=8)
    orch = Orchestrator(engine, FirstLetterSuite(), ChatFormatter(tokenizer), settings)
    backend = TorchBackend(tiny_model, TrainConfig(lr=1e-2), LossConfig())
    rewards = []
    for it in range(30):  # about 15 iterations here; the margin absorbs sampling luck
        tasks = [Task(id=f"{it}-{i}") for i in range(8)]
        trajs = asyncio.run(orch.rollout(tasks, group_size=8, tag=f"it{it}"))
        rewards.append(sum(t.outcome_reward for t in trajs) / len(trajs))
        batch = build_batch(trajs, pad_id=tokenizer.pad_token_id)
        credit.assign_advantages(batch, credit.compute("grpo", trajs, {}))
        metrics = backend.update(batch)
        assert metrics["rollout_logprob_diff"] < 1e-4  # on-policy: the engine's ids and logprobs
        engine.load_weights(backend.state_dict_for_engine(), version=it + 1)
        if len(rewards) >= 3 and sum(rewards[-3:]) / 3 >= 0.9:
            break
    assert rewards[0] < 0.7, rewards
    assert sum(rewards[-3:]) / 3 >= 0.9, rewards
