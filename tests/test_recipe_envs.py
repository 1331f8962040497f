"""Every bundled recipe's every preset builds its environment, and the environment's expert
solves one of the preset's evaluation tasks in it (the SFT cold start depends on that)."""

from __future__ import annotations

import asyncio

import pytest
from turnwise.envs.base import make_suite
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


@pytest.mark.parametrize(("name", "preset"), PRESETS)
def test_preset_env_builds_and_its_expert_solves_a_task(name, preset):
    cfg = load_recipe(name, [f"preset={preset}"])
    suite = make_suite(cfg.env.name, **cfg.env.options)
    task = suite.tasks(cfg.eval.split, 1, 0)[0]
    step = asyncio.run(_expert_episode(suite, task, cfg.rollout.max_turns))
    assert step.done and step.info.get("success"), (name, preset, step.info)
