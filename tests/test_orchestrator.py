"""The orchestrator: groups, budgets, stop sequences, bounded concurrency, early finish,
the lock-step baseline, accounting, and template checks through whole episodes."""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path

import pytest
import trl
from fakes import CountingEnv, CountingSuite, ScriptedEngine
from turnwise.agent.chat import ChatFormatter, TemplateMismatch
from turnwise.agent.engines import SamplingParams
from turnwise.envs.base import Task
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.orchestrator import Orchestrator


class Recorder:
    """A suite whose environments log (event, episode, time) and count what is in flight."""

    def __init__(self, delays: dict[str, float] | None = None) -> None:
        self.delays = delays or {}
        self.events: list[tuple[str, str, float]] = []
        self.live = self.peak_live = self.stepping = self.peak_stepping = 0

    def make(self):
        recorder = self

        class Env(CountingEnv):
            async def reset(self, task):
                self.task_id = task.id
                recorder.live += 1
                recorder.peak_live = max(recorder.peak_live, recorder.live)
                return await super().reset(task)

            async def step(self, action_text):
                recorder.stepping += 1
                recorder.peak_stepping = max(recorder.peak_stepping, recorder.stepping)
                recorder.events.append(("step", self.task_id, time.perf_counter()))
                try:
                    self.delay = recorder.delays.get(self.task_id, 0.0)
                    return await super().step(action_text)
                finally:
                    recorder.stepping -= 1

            async def close(self):
                recorder.live -= 1
                recorder.events.append(("close", self.task_id, time.perf_counter()))

        return Env()

    def tasks(self, split, count, seed):
        return []

    def oracle(self, task):
        raise NotImplementedError

    def corpus(self):
        yield ""


def orchestrator(tokenizer, suite, engine=None, **kw):
    settings = kw.pop("settings", EpisodeSettings(mode="full_trajectory", max_turns=8))
    engine = engine or ScriptedEngine(tokenizer, lambda prompt, i: "<action>look</action>")
    return Orchestrator(engine, suite, ChatFormatter(tokenizer), settings, quiet=True, **kw)


def tasks(*steps):
    return [Task(id=f"t{i}", data={"steps": n}) for i, n in enumerate(steps)]


def test_groups_share_uid_and_task_and_sample_with_their_own_seeds(tokenizer):
    orch = orchestrator(tokenizer, CountingSuite())
    trajs = asyncio.run(orch.rollout(tasks(1, 2), group_size=3, tag="it", seed=100))
    assert [t.uid for t in trajs] == ["it/0"] * 3 + ["it/1"] * 3
    assert len({t.traj_id for t in trajs}) == 6
    assert [len(t.turns) for t in trajs] == [1] * 3 + [2] * 3
    seeds = {(prompt_len, params.seed) for prompt_len, params in
             ((len(p), s) for p, s, _ in orch.engine.calls)}
    first_turn_seeds = sorted(s.seed for p, s, _ in orch.engine.calls
                              if s.seed is not None and s.seed % 1000 == 0)
    # Member j of task i samples turn t with seed (100 + 3i + j) * 1000 + t.
    assert first_turn_seeds == [100_000, 101_000, 102_000, 103_000, 104_000, 105_000]
    assert len(seeds) == len(orch.engine.calls)


def test_budgets_and_stop_sequences(tokenizer):
    settings = EpisodeSettings(mode="full_trajectory", max_turns=2, max_tokens_per_turn=5,
                               sampling=SamplingParams(stop=("</action>",)))
    orch = orchestrator(tokenizer, CountingSuite(), settings=settings)
    [traj] = asyncio.run(orch.rollout(tasks(9), group_size=1, tag="b"))
    assert len(traj.turns) == 2 and traj.status == "truncated"
    assert traj.info["stop"] == "max_turns"
    assert all(params.max_tokens == 5 and params.stop == ("</action>",)
               for _, params, _ in orch.engine.calls)
    # Per episode: the context may not outgrow max_episode_tokens.
    tight = EpisodeSettings(mode="full_trajectory", max_turns=50, max_episode_tokens=60)
    orch = orchestrator(tokenizer, CountingSuite(), settings=tight)
    [traj] = asyncio.run(orch.rollout(tasks(50), group_size=1, tag="b"))
    assert traj.info["stop"] == "max_episode_tokens"
    assert all(len(p) + params.max_tokens <= 60 for p, params, _ in orch.engine.calls)
    # The last observation follows the last response, but no generation ever saw it.
    last = traj.turns[-1]
    assert len(traj.full_ids()) - len(last.observation_ids) <= 60


def test_per_step_prompts_show_a_window_of_recent_pairs(tokenizer):
    settings = EpisodeSettings(mode="per_step", history=1, max_turns=5)
    orch = orchestrator(tokenizer, CountingSuite(), settings=settings)
    [traj] = asyncio.run(orch.rollout(tasks(3), group_size=1, tag="w"))
    third = tokenizer.decode(traj.turns[2].prompt_ids)
    # Turn 3 sees the last (observation, action) pair only, then the current observation.
    assert "[Observation 2: after 1:" in third and "[Action 2:" in third
    assert "[Observation 1:" not in third and "after 2:" in third
    assert all(t.observation_ids == [] for t in traj.turns)  # rows are prompt + response


def test_concurrency_limits_hold(tokenizer):
    recorder = Recorder(delays={f"t{i}": 0.01 for i in range(6)})
    orch = orchestrator(tokenizer, recorder, max_concurrency=3, max_tool_concurrency=2)
    trajs = asyncio.run(orch.rollout(tasks(*[2] * 6), group_size=2, tag="c"))
    assert len(trajs) == 12
    assert recorder.peak_live == 3
    assert recorder.peak_stepping == 2


def test_a_finished_episode_frees_its_slot_at_once(tokenizer):
    """Async: short episodes use the second slot while the long one still runs; lock-step
    runs waves, so the second wave waits for the long episode of the first."""
    delays = {f"t{i}": 0.02 for i in range(6)}

    def closes(schedule):
        recorder = Recorder(delays)
        orch = orchestrator(tokenizer, recorder, max_concurrency=2, schedule=schedule)
        asyncio.run(orch.rollout(tasks(6, 1, 1, 1, 1, 1), group_size=1, tag="e"))
        return [task for event, task, _ in recorder.events if event == "close"]

    assert closes("async")[-1] == "t0"  # the 6-step episode ends last, the others passed it
    assert closes("lockstep")[:2] == ["t0", "t1"]  # the first wave closes together


def test_lockstep_moves_all_episodes_one_phase_at_a_time(tokenizer):
    recorder = Recorder(delays={"t0": 0.03, "t1": 0.0, "t2": 0.01})
    calls: list[tuple[str, float]] = []
    engine = ScriptedEngine(tokenizer, lambda prompt, i: calls.append(
        ("gen", time.perf_counter())) or "<action>look</action>")
    orch = orchestrator(tokenizer, recorder, engine=engine, schedule="lockstep")
    trajs = asyncio.run(orch.rollout(tasks(3, 3, 3), group_size=1, tag="l"))
    assert [len(t.turns) for t in trajs] == [3, 3, 3]
    steps = sorted(t for event, _, t in recorder.events if event == "step")
    gens = sorted(t for _, t in calls)
    # Round r: three generations, then three steps; nothing of round r+1 starts before.
    for r in range(3):
        assert max(gens[3 * r:3 * r + 3]) < min(steps[3 * r:3 * r + 3])
        if r < 2:
            assert max(steps[3 * r:3 * r + 3]) < min(gens[3 * r + 3:3 * r + 6])


def test_accounting_of_time_and_tokens(tokenizer):
    recorder = Recorder(delays={"t0": 0.02, "t1": 0.02})
    orch = orchestrator(tokenizer, recorder)
    trajs = asyncio.run(orch.rollout(tasks(2, 3), group_size=1, tag="a"))
    for traj, steps in zip(trajs, (2, 3)):
        assert traj.env_seconds >= 0.02 * steps
        assert traj.wall_seconds >= traj.env_seconds + traj.gen_seconds * 0.99
        assert traj.prompt_tokens == sum(len(traj.context_ids(t)) for t in range(steps))
    assert orch.last["episodes"] == 2 and orch.last["turns"] == 5
    assert orch.last["response_tokens"] == sum(t.num_response_tokens() for t in trajs)
    assert orch.last["wall_seconds"] >= 0.06


def test_unknown_schedule_and_bad_limits_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="rollout.schedule='sync'"):
        orchestrator(tokenizer, CountingSuite(), schedule="sync")
    with pytest.raises(ValueError, match="rollout.max_tool_concurrency=0"):
        orchestrator(tokenizer, CountingSuite(), max_tool_concurrency=0)


# Qwen3's real template (TRL ships it): a reply before the latest user message loses its thought.
QWEN3 = Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja"


@pytest.mark.parametrize("policy", ["keep", "fail"])
def test_history_rewriting_template_through_an_episode(tokenizer, policy):
    thinking = copy.deepcopy(tokenizer)
    thinking.chat_template = QWEN3.read_text()
    engine = ScriptedEngine(thinking, lambda prompt, i: "<think>hm</think><action>look</action>")
    settings = EpisodeSettings(mode="full_trajectory", max_turns=4, template_mismatch=policy)
    orch = orchestrator(thinking, CountingSuite(), engine=engine, settings=settings)
    if policy == "fail":
        with pytest.raises(TemplateMismatch):
            asyncio.run(orch.rollout(tasks(3), group_size=1, tag="h"))
        return
    [traj] = asyncio.run(orch.rollout(tasks(3), group_size=1, tag="h"))
    assert traj.info["template_rewrite"] == 0
    # The engine saw, turn after turn, exactly the row the trainer will get.
    prompts = [p for p, _, _ in engine.calls]
    assert prompts == [traj.context_ids(t) for t in range(3)]
    assert traj.full_ids()[:len(prompts[-1])] == prompts[-1]
    # Both earlier responses keep their reasoning, which a whole re-render would drop.
    assert thinking.decode(prompts[-1]).count("assistant\n<think>hm</think>") == 2


def test_an_orchestrator_without_engine_refuses_to_roll_out(tokenizer):
    # The training loop builds it before the weights are chosen, to play the oracle's
    # demonstrations; a policy rollout before the engine joins is a bug, said as such.
    orch = Orchestrator(None, CountingSuite(), ChatFormatter(tokenizer), EpisodeSettings(),
                        quiet=True)
    with pytest.raises(ValueError, match="engine is None: it can play demonstrations only"):
        asyncio.run(orch.rollout(tasks(1), group_size=1, tag="t"))
