"""Environments that raise, hang, or answer with malformed observations: each such episode ends
as `failed` with the problem named, its neighbours finish normally, and the counts add up."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from fakes import ScriptedEngine
from fault_ledger import record
from turnwise.agent.chat import ChatFormatter
from turnwise.envs.base import Observation, Step, Task
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.metrics import summarize
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.trainer.config import Config

GOOD = Step(Observation("fine"), reward=1.0, done=True, info={"success": True})

# fault -> (what step returns or does, the error the episode must record)
STEP_FAULTS = {
    "raise": (None, "env.step raised ZeroDivisionError: division by zero"),
    "hang": (None, "env.step did not return within rollout.step_timeout=0.3s"),
    "stubborn": (None, "env.step did not return within rollout.step_timeout=0.3s"),
    "none": (None, "env.step returned a malformed Step: expected a Step, got NoneType"),
    "dict": ({"observation": "x"}, "env.step returned a malformed Step: expected a Step, got dict"),
    "obs_none": (Step(None), "expected an Observation, got NoneType"),
    "text_int": (Step(Observation(42)), "observation.text is int, not str"),
    "role": (Step(Observation("x", role="system")), "observation.role='system'"),
    "actions": (Step(Observation("x", admissible_actions="go")),
                "observation.admissible_actions must be a list of str or None"),
    "reward_str": (Step(Observation("x"), reward="1"), "reward is str '1', not a number"),
    "reward_nan": (Step(Observation("x"), reward=math.nan), "reward is nan, not finite"),
    "done_none": (Step(Observation("x"), done=None), "done is NoneType None, not bool"),
    "info_list": (Step(Observation("x"), info=[]), "info is list, not dict"),
}
RESET_FAULTS = {
    "reset_raise": "env.reset raised RuntimeError: no such room",
    "reset_hang": "env.reset did not return within rollout.step_timeout=0.3s",
    "reset_str": "env.reset returned a malformed observation: expected an Observation, got str",
}


class FaultyEnv:
    system_prompt = "Do it."

    def __init__(self) -> None:
        self.fault = None
        self.closed = False

    async def reset(self, task: Task):
        self.fault = task.data["fault"]
        if self.fault == "reset_raise":
            raise RuntimeError("no such room")
        if self.fault == "reset_hang":
            await asyncio.sleep(3600)
        if self.fault == "reset_str":
            return "a bare string"
        return Observation(f"task {task.id}")

    async def step(self, action_text: str):
        fault = self.fault
        if fault == "raise":
            return 1 / 0
        if fault == "hang":
            await asyncio.sleep(3600)
        if fault == "stubborn":  # swallows the first cancellation and keeps going a while
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                await asyncio.sleep(2.0)
            return GOOD
        if fault == "none":
            return None
        if fault in STEP_FAULTS:
            return STEP_FAULTS[fault][0]
        return GOOD

    async def close(self) -> None:
        self.closed = True


class FaultySuite:
    name = "faulty_env"

    def __init__(self) -> None:
        self.envs: list[FaultyEnv] = []

    def make(self) -> FaultyEnv:
        self.envs.append(FaultyEnv())
        return self.envs[-1]


def test_env_faults_fail_their_episode_only(tokenizer):
    faults = [*STEP_FAULTS, *RESET_FAULTS, "ok", "ok"]
    suite = FaultySuite()
    engine = ScriptedEngine(tokenizer, lambda prompt, i: "go")
    settings = EpisodeSettings(mode="full_trajectory", max_turns=2, max_tokens_per_turn=8,
                               max_episode_tokens=2048, step_timeout=0.3)
    orch = Orchestrator(engine, suite, ChatFormatter(tokenizer), settings, quiet=True)
    tasks = [Task(id=f"{i}-{f}", data={"fault": f}) for i, f in enumerate(faults)]
    started = time.perf_counter()
    trajs = asyncio.run(orch.rollout(tasks, group_size=1, tag="env"))
    elapsed = time.perf_counter() - started
    # Hangs cost their 0.3 s timeout (the stubborn one 1 s more), all at once, not an hour.
    assert elapsed < 5

    by_fault = {t.task_id.split("-", 1)[1]: t for t in trajs}
    for fault, (_, message) in STEP_FAULTS.items():
        t = by_fault[fault]
        assert t.status == "failed" and message in t.info["error"], (fault, t.info)
        assert t.turns[-1].error == t.info["error"]
    for fault, message in RESET_FAULTS.items():
        t = by_fault[fault]
        assert t.status == "failed" and t.info["error"] == message and not t.turns
    assert [by_fault["ok"].status, by_fault["ok"].success] == ["done", True]
    assert all(env.closed for env in suite.envs)  # failed or not, every env was closed

    last = orch.last
    failed = len(STEP_FAULTS) + len(RESET_FAULTS)
    assert (last["episodes_started"], last["status_failed"], last["status_done"]) == (
        len(faults), failed, 2)
    assert summarize(trajs)["rollout/status_failed"] == failed
    record("envs", "step raises/hangs/malformed; reset raises/hangs/bad", failed, failed)


def test_the_step_timeout_is_a_checked_recipe_key():
    assert Config().rollout.step_timeout == 300.0
    with pytest.raises(ValueError, match="step_timeout"):
        Config.model_validate({"rollout": {"step_timeout": 0}})
    with pytest.raises(ValueError, match=r"rollout.step_timeout=-1: must be > 0 seconds"):
        EpisodeSettings(step_timeout=-1)
