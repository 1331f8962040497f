"""Agent programs as a suite: groups played through the gateway, scored by what the program
returns, failures counted, and the training loop trains them like any suite."""

from __future__ import annotations

import asyncio

import pytest
from gateway_helpers import (
    adding_tasks,
    config,
    expert,
    expert_engine,
    first_messages,
    graded,
    openai_program,
)
from turnwise.agent.chat import ChatFormatter
from turnwise.envs.base import register_suite
from turnwise.envs.program import ProgramSuite
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.programs import ProgramOrchestrator

from tests.fakes import ScriptedEngine

register_suite("gateway_adding")(
    lambda: ProgramSuite("gateway_adding", openai_program, tasks=adding_tasks, expert=expert,
                         corpus=["What is 1 + 2?"]))


def orchestrator(tokenizer, program, engine=None, **settings) -> ProgramOrchestrator:
    suite = ProgramSuite("test", program, tasks=adding_tasks, expert=expert)
    return ProgramOrchestrator(engine or expert_engine(tokenizer), suite,
                               ChatFormatter(tokenizer), EpisodeSettings(**settings), quiet=True)


def test_groups_are_played_through_the_gateway_and_scored(tokenizer):
    orch = orchestrator(tokenizer, openai_program)
    tasks = adding_tasks("train", 2, 1)
    trajs = asyncio.run(orch.rollout(tasks, group_size=3, tag="g0", seed=5))
    assert [t.uid for t in trajs] == ["g0/0"] * 3 + ["g0/1"] * 3
    assert [t.task_id for t in trajs] == [tasks[0].id] * 3 + [tasks[1].id] * 3
    for traj in trajs:
        assert traj.status == "done" and traj.success and traj.outcome_reward == 1.0
        assert [t.reward for t in traj.turns] == [0.0, 1.0]
        assert traj.turns[0].tool_calls[0]["name"] == "add"
        assert traj.info["answer"] == tasks[int(traj.uid[-1])].answer
    # Each member sampled with its own seed: (seed + i * group + j) * 1000 + turn.
    seeds = sorted(params.seed for _, params, _ in orch.engine.calls)
    assert seeds == sorted((5 + k) * 1000 + turn for k in range(6) for turn in range(2))
    assert orch.last["episodes"] == 6 and orch.last["status_done"] == 6
    assert orch.last["turns"] == 12
    assert orch.gateway.sessions == {}  # every session closed, the gateway stopped
    assert orch.clock.in_flight == 0


def test_a_program_that_raises_is_a_failed_episode_and_the_rollout_goes_on(tokenizer):
    async def fragile(task, client):
        if task.id.endswith("/1"):
            raise RuntimeError("the agent's own bug")
        return await openai_program(task, client)

    orch = orchestrator(tokenizer, fragile)
    trajs = asyncio.run(orch.rollout(adding_tasks("train", 2, 0), group_size=2, tag="g1"))
    assert [t.status for t in trajs] == ["done", "done", "failed", "failed"]
    assert trajs[2].info["error"] == "the program raised RuntimeError: the agent's own bug"
    assert orch.last["status_failed"] == 2 and orch.last["status_done"] == 2


@pytest.mark.parametrize(("returned", "status", "rewards", "error"), [
    ([0.25, 1.0], "done", [0.25, 1.0], None),
    ([1.0], "failed", [0.0, 0.0], "the program returned 1 per-turn rewards for 2 model calls"),
    ("1.0", "failed", [0.0, 0.0], "expected a reward (a number)"),
    (float("nan"), "failed", [0.0, 0.0], "not finite"),
])
def test_per_turn_rewards_and_bad_returns(tokenizer, returned, status, rewards, error):
    async def program(task, client):
        await openai_program(task, client)
        return returned

    orch = orchestrator(tokenizer, program)
    (traj,) = asyncio.run(orch.rollout(adding_tasks("train", 1, 0), group_size=1, tag="g"))
    assert traj.status == status
    assert [t.reward for t in traj.turns] == rewards
    if error is None:
        assert traj.outcome_reward == 1.25 and traj.success
    else:
        assert error in traj.info["error"] and traj.outcome_reward == 0.0


def test_a_program_stopped_by_the_turn_budget_is_truncated(tokenizer):
    orch = orchestrator(tokenizer, openai_program, max_turns=1)
    (traj,) = asyncio.run(orch.rollout(adding_tasks("train", 1, 0), group_size=1, tag="g"))
    assert traj.status == "truncated" and traj.info["stop"] == "max_turns"
    assert "BadRequestError" in traj.info["program_error"] and traj.outcome_reward == 0.0
    assert len(traj.turns) == 1


def test_an_engine_failure_is_raised_not_counted(tokenizer):
    class Broken(ScriptedEngine):
        async def generate(self, prompt_ids, params, *, session=None):
            raise RuntimeError("engine down")

    orch = orchestrator(tokenizer, openai_program, engine=Broken(tokenizer, lambda p, i: ""))
    with pytest.raises(RuntimeError, match="engine down"):
        asyncio.run(orch.rollout(adding_tasks("train", 2, 0), group_size=2, tag="g"))
    assert orch.gateway.sessions == {}


def test_demonstrations_run_the_program_with_the_expert(tokenizer):
    orch = orchestrator(tokenizer, openai_program, engine=None)
    orch.engine = None
    tasks = adding_tasks("train", 2, 4)
    demos = asyncio.run(orch.demonstrations(tasks, tag="sft"))
    assert [t.status for t in demos] == ["done", "done"] and all(t.success for t in demos)
    first = demos[0].turns[0]
    assert tokenizer.decode(first.response_ids) == expert(tasks[0], first_messages(tasks[0])) \
        + "<|im_end|>"
    assert first.response_logprobs == [0.0] * len(first.response_ids)
    with pytest.raises(ValueError, match="engine is None"):
        asyncio.run(orch.rollout(tasks, group_size=1, tag="g"))
    bare = ProgramOrchestrator(None, ProgramSuite("bare", openai_program, tasks=adding_tasks),
                               ChatFormatter(tokenizer), EpisodeSettings(), quiet=True)
    with pytest.raises(ValueError, match="has no expert"):
        asyncio.run(bare.demonstrations(tasks, tag="sft"))


def test_a_program_suite_gets_the_program_orchestrator_and_refuses_branching(tiny_path,
                                                                             tmp_path):
    from turnwise.trainer.build import basics
    from turnwise.trainer.build import orchestrator as build_orchestrator
    from turnwise.trainer.config import ArpoRolloutConfig

    cfg = config(tiny_path, "gateway_adding", str(tmp_path))
    base = basics(cfg, tiny_path)
    assert isinstance(build_orchestrator(cfg, base, None), ProgramOrchestrator)
    cfg.rollout.arpo = ArpoRolloutConfig(initial=1)
    with pytest.raises(ValueError, match="rollout.arpo is set but env.name='gateway_adding'"):
        build_orchestrator(cfg, base, None)
    with pytest.raises(TypeError, match="must be an `async def run"):
        ProgramSuite("sync", lambda task, client: 1.0, tasks=adding_tasks)
    with pytest.raises(TypeError, match="no Env"):
        base.suite.make()


@pytest.mark.slow
def test_the_training_loop_trains_an_openai_client_program(tiny_path, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM
    from turnwise.trainer.loop import train

    result = train(config(tiny_path, "gateway_adding", str(tmp_path)), echo=lambda *a: None)
    assert [r["iteration"] for r in result.history] == [1, 2]
    for record in result.history:
        assert record["rollout/episodes"] == 4.0 and record["rollout/status_failed"] == 0.0
        assert record["train/optimizer_steps"] >= 1
    assert result.history[-1]["policy_version"] == 2
    assert "eval/success" in result.eval_after
    before = AutoModelForCausalLM.from_pretrained(tiny_path).state_dict()
    after = AutoModelForCausalLM.from_pretrained(f"{result.run_dir}/policy").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_graded_reward_is_one_only_for_the_sum():
    task = adding_tasks("train", 1, 0)[0]
    assert graded(f"The sum is {task.answer}.", task) == 1.0
    assert graded("no idea", task) == 0.2  # len 7 % 5 / 10
