"""What the model does wrong: never stops, overruns its budget, writes broken tool calls, or
faces a prompt longer than its context. Every case is cut and marked; nothing crashes."""

from __future__ import annotations

import asyncio

from fakes import CountingSuite
from fault_ledger import record
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines import make_engine
from turnwise.agent.engines.base import Completion, SamplingParams
from turnwise.envs.base import Task
from turnwise.envs.tool_env import ToolEnvFactory
from turnwise.rollouts.batch import build_batch
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.tools import tool


class RunawayEngine:
    """Ignores stop tokens and, with `overrun`, max_tokens too: emits token 100 forever."""

    version = 0

    def __init__(self, overrun: int = 0) -> None:
        self.overrun = overrun
        self.asked: list[int] = []

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *,
                       session: str | None = None) -> Completion:
        await asyncio.sleep(0)
        self.asked.append(params.max_tokens)
        n = params.max_tokens + self.overrun
        return Completion(token_ids=[100] * n, logprobs=[-1.0] * n, finish_reason="length",
                          prompt_tokens=len(prompt_ids))


def test_no_stop_token_and_runaway_lengths_are_cut_and_marked(tokenizer):
    formatter = ChatFormatter(tokenizer)
    suite = CountingSuite()
    tasks = [Task(id="long", data={"steps": 99})]
    for mode in ("full_trajectory", "per_step"):
        for overrun in (0, 500):
            engine = RunawayEngine(overrun)
            settings = EpisodeSettings(mode=mode, max_turns=50, max_tokens_per_turn=16,
                                       max_episode_tokens=400)
            orch = Orchestrator(engine, suite, formatter, settings, quiet=True)
            (traj,) = asyncio.run(orch.rollout(tasks, group_size=1, tag="run"))
            assert traj.status == "truncated" and traj.info["stop"] == "max_episode_tokens"
            assert all(t.finish_reason == "length" for t in traj.turns)
            assert all(len(t.response_ids) <= 16 for t in traj.turns)
            if mode == "per_step":  # the budget is tokens generated
                assert traj.num_response_tokens() == 400
            else:  # the budget is the context each response is generated in
                assert all(len(traj.context_ids(i)) + len(t.response_ids) <= 400
                           for i, t in enumerate(traj.turns))
            # An engine that ignores max_tokens is cut to it, and the cut is counted.
            assert traj.info.get("responses_cut", 0) == (len(traj.turns) if overrun else 0)
            batch = build_batch([traj], pad_id=0)  # still a valid training row
            assert batch.loss_mask.sum() == traj.num_response_tokens()
    record("model", "no stop token / response overruns max_tokens", 4, 4)


def test_malformed_tool_calls_are_invalid_turns_not_crashes(tokenizer):
    @tool
    def lookup(key: str, limit: int = 3) -> str:
        """Look a key up.

        Args:
            key: what to look up.
            limit: how many rows.
        """
        return f"{key}: {limit} rows"

    factory = ToolEnvFactory([lookup], reward=lambda a, t: 1.0, parser="hermes")
    broken = [
        '<tool_call>{"name": "lookup", "arguments": {"key": "a"</tool_call>',  # bad JSON
        '<tool_call>{"name": "lookup", "arguments": {"key": "a"}}',  # never closed
        '<tool_call>{"name": "nope", "arguments": {}}</tool_call>',  # unknown tool
        '<tool_call>{"name": "lookup", "arguments": {"key": 5, "limit": "x"}}</tool_call>',
        '<tool_call>["lookup"]</tool_call>',  # not an object
        '<tool_call>{"name": "lookup", "arguments": "{oops"}</tool_call>',
        "just rambling without any call or answer",
        "",
    ]
    script = broken + ["<answer>ok</answer>"]

    class Scripted:
        version = 0

        async def generate(self, prompt_ids, params, *, session=None):
            text = script[min(len(calls), len(script) - 1)]
            calls.append(text)
            ids = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
            return Completion(token_ids=ids, logprobs=[-0.1] * len(ids), finish_reason="stop")

    class Suite:
        def make(self):
            return factory()

    calls: list[str] = []
    settings = EpisodeSettings(mode="full_trajectory", max_turns=20, max_tokens_per_turn=64,
                               max_episode_tokens=8192)
    orch = Orchestrator(Scripted(), Suite(), ChatFormatter(tokenizer), settings, quiet=True)
    (traj,) = asyncio.run(orch.rollout([Task(id="q", data={"question": "find a"})],
                                       group_size=1, tag="calls"))
    assert traj.status == "done" and traj.success and len(traj.turns) == len(script)
    for turn in traj.turns[:-1]:
        assert turn.invalid and turn.error, turn
        assert turn.observation.startswith("Invalid response:") or "Error:" in turn.observation
    assert factory.executor.metrics.summary().get("tools/lookup/calls", 0) == 0  # none ran
    record("model", "malformed tool calls (8 kinds)", len(broken), len(broken))


def test_a_prompt_longer_than_the_context_truncates_the_episode(tiny_path, tokenizer):
    engine = make_engine("hf", tiny_path, tokenizer, max_model_len=96)
    suite = CountingSuite()
    settings = EpisodeSettings(mode="full_trajectory", max_turns=30, max_tokens_per_turn=8,
                               max_episode_tokens=4096)  # more than the engine can hold
    orch = Orchestrator(engine, suite, ChatFormatter(tokenizer), settings, quiet=True)
    long_task = Task(id="x" * 600, data={"steps": 99})  # the first prompt alone is too long
    growing = Task(id="g", data={"steps": 99})  # fits at first, outgrows the context later
    trajs = asyncio.run(orch.rollout([long_task, growing], group_size=1, tag="ctx", seed=1))
    asyncio.run(engine.close())
    too_long, grown = trajs
    assert too_long.status == "truncated" and too_long.info["stop"] == "prompt_too_long"
    assert too_long.turns == []
    assert grown.status == "truncated" and grown.info["stop"] == "prompt_too_long"
    assert 1 <= len(grown.turns) < 30 and len(grown.full_ids()) >= 96 - 8
    record("model", "prompt exceeds the context (first turn / later)", 2, 2)
