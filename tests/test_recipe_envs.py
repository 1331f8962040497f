"""Every bundled recipe's every preset builds its environment, and the environment's expert
solves one of the preset's evaluation tasks in it (the SFT cold start depends on that); an
agent-program suite's expert plays through its program and the gateway."""

from __future__ import annotations

import asyncio

import pytest
from turnwise.envs.base import make_suite
from turnwise.envs.program import is_program_suite
from turnwise.trainer.recipe import bundled_recipes, load_recipe

PRESETS = [(name, preset) for name in bundled_recipes() for preset in ("cpu-tiny", "gpu")]


async def _expert_episode(suite, task, max_turns: int):
    env, oracle = suite.make(), suite.oracle(task)
    observation = await env.reset(task)
    try:
        for _ in range(max_turns):
            step = await env.step(oracle.act(observation))
            if step.done:
                return step
            observation = step.observation
        return step
    finally:
        await env.close()


async def _program_demonstration(suite, task, tokenizer):
    # Any tokenizer renders the program's requests; the tiny household one is at hand.
    from turnwise.agent.chat import ChatFormatter
    from turnwise.rollouts.episode import EpisodeSettings
    from turnwise.rollouts.programs import ProgramOrchestrator

    orchestrator = ProgramOrchestrator(None, suite, ChatFormatter(tokenizer), EpisodeSettings(),
                                       quiet=True)
    return await orchestrator.demonstrations([task], tag="expert")


@pytest.mark.parametrize(("name", "preset"), PRESETS)
def test_preset_env_builds_and_its_expert_solves_a_task(name, preset, tokenizer):
    cfg = load_recipe(name, [f"preset={preset}"])
    suite = make_suite(cfg.env.name, **cfg.env.options)
    task = suite.tasks(cfg.eval.split, 1, 0)[0]
    if is_program_suite(suite):
        (demo,) = asyncio.run(_program_demonstration(suite, task, tokenizer))
        assert demo.status == "done" and demo.success, (name, preset, demo.info)
        return
    step = asyncio.run(_expert_episode(suite, task, cfg.rollout.max_turns))
    assert step.done and step.info.get("success"), (name, preset, step.info)
