"""ToolEnv: tools + parser + reward as an environment, driven by the real episode loop."""

from __future__ import annotations

import asyncio
import json

import pytest
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines.base import Completion, SamplingParams
from turnwise.envs.base import Task
from turnwise.envs.tool_env import ToolEnv, ToolEnvFactory
from turnwise.rollouts.episode import EpisodeSettings, run_episode
from turnwise.tools import ToolContext, tool
from turnwise.tools.search import bm25_search_tool

DOCS = [{"id": "1", "title": "Paris", "text": "Paris is the capital of France."},
        {"id": "2", "title": "Rome", "text": "Rome is the capital of Italy."}]


def exact(answer: str, task: Task) -> float:
    return float(answer.strip().lower() == task.answer.lower())


@pytest.fixture()
def search(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in DOCS))
    return bm25_search_tool(str(path), top_k=1)


def scripted(replies, formatter):
    """A policy that says `replies` in order, tokenised as a model's response."""
    replies = list(replies)

    async def act(prompt_ids, obs, params: SamplingParams) -> Completion:
        ids = formatter.tokenizer.encode(replies.pop(0), add_special_tokens=False) + [formatter.eos_id]
        return Completion(token_ids=ids, logprobs=[0.0] * len(ids), finish_reason="stop")

    return act


TASK = Task(id="q1", answer="Paris", data={"question": "What is the capital of France?"})


def test_search_r1_style_episode(search, tokenizer):
    factory = ToolEnvFactory([search], exact, parser="xml", instructions="Answer the question.")
    formatter = ChatFormatter(tokenizer)
    env = factory()
    assert env.system_prompt.startswith("Answer the question.\n\nReason step by step inside <think>")
    replies = ["<think>look it up</think><search>capital of France</search>",
               "<search>a</search><search>b</search>",
               "<answer>Paris</answer>"]
    traj = asyncio.run(run_episode(scripted(replies, formatter), env, TASK, formatter,
                                   EpisodeSettings(max_turns=5), uid="u", traj_id="t"))
    assert traj.status == "done" and traj.success and traj.outcome_reward == 1.0
    first, second, third = traj.turns
    assert first.observation == "<information>Doc 1 (Title: Paris) Paris is the capital of France.</information>"
    assert first.tool_calls[0]["name"] == "search" and first.tool_calls[0]["status"] == "ok"
    assert first.tool_calls[0]["arguments"] == {"query": "capital of France"}
    assert first.action == "search(query='capital of France')" and not first.invalid
    # The observation goes into the context as a user message with the information tags.
    assert formatter.decode(first.observation_ids).startswith(
        "\n<|im_start|>user\n<information>Doc 1 (Title: Paris)")
    assert second.invalid and second.error == "2 tool calls in one response; at most 1 is allowed"
    assert second.observation.startswith("Invalid response: 2 tool calls")
    assert third.action == "Paris" and third.reward == 1.0
    assert factory.metrics()["tools/search/calls"] == 1


def test_hermes_results_come_back_as_tool_messages(search, tokenizer):
    factory = ToolEnvFactory([search], exact, parser="hermes")
    formatter = ChatFormatter(tokenizer)
    replies = ['<tool_call>{"name": "search", "arguments": {"query": "Italy"}}</tool_call>',
               "<answer>Rome</answer>"]
    traj = asyncio.run(run_episode(scripted(replies, formatter), factory(), TASK, formatter,
                                   EpisodeSettings(max_turns=5), uid="u", traj_id="t"))
    assert traj.status == "done" and not traj.success and traj.outcome_reward == 0.0
    assert formatter.decode(traj.turns[0].observation_ids) == (
        "\n<|im_start|>tool\n<tool_response>\nDoc 1 (Title: Rome) Rome is the capital "
        "of Italy.\n</tool_response><|im_end|>\n<|im_start|>assistant\n")


def test_evidence_is_checked_on_the_episode_s_ok_tool_results(search, tokenizer):
    seen = []

    def evidence(results, task):
        seen.append(list(results))
        return any(task.answer in text for text in results)

    factory = ToolEnvFactory([search], exact, parser="xml", evidence=evidence)
    formatter = ChatFormatter(tokenizer)

    def play(*replies):
        return asyncio.run(run_episode(scripted(replies, formatter), factory(), TASK, formatter,
                                       EpisodeSettings(max_turns=4), uid="u", traj_id="t"))

    misread = play("<search>capital of France</search>", "<answer>Rome</answer>")
    assert misread.info["evidence_found"] == 1.0 and not misread.success
    assert seen[-1] == ["Doc 1 (Title: Paris) Paris is the capital of France."]
    wrong = play("<search>capital of Italy</search>", "<search>Italy</search>",
                 "<answer>Paris</answer>")
    assert wrong.info["evidence_found"] == 0.0 and wrong.success  # a lucky guess
    assert seen[-1] == ["Doc 1 (Title: Rome) Rome is the capital of Italy."]  # distinct results
    unanswered = play("<search>capital of France</search>", *["<search>x</search>"] * 3)
    assert "evidence_found" not in unanswered.info  # no final answer, no check
    no_check = asyncio.run(run_episode(
        scripted(["<answer>Paris</answer>"], formatter), ToolEnvFactory([search], exact)(), TASK,
        formatter, EpisodeSettings(max_turns=2), uid="u", traj_id="t"))
    assert "evidence_found" not in no_check.info


def test_episode_budget_and_per_episode_sessions():
    opened, closed = [], []

    @tool
    async def counter(step: str, ctx: ToolContext) -> str:
        """Count calls in this episode."""
        if "n" not in ctx.state:
            opened.append(ctx.episode_id)
            ctx.on_close(lambda: closed.append(ctx.episode_id))
            ctx.state["n"] = 0
        ctx.state["n"] += 1
        return str(ctx.state["n"])

    factory = ToolEnvFactory([counter], exact, parser="xml", max_calls_per_episode=2)

    async def play():
        env = factory()
        await env.reset(TASK)
        outs = [await env.step(f"<counter>{i}</counter>") for i in range(3)]
        await env.close()
        return outs

    one, two, three = asyncio.run(play())
    assert one.observation.text == "<result>1</result>" and two.observation.text == "<result>2</result>"
    assert not three.info["invalid"] and three.info["tool_calls"] == []
    assert three.info["error"] == "the tool budget of this episode (2 calls) is spent; give your final answer now"
    assert opened == ["q1"] and closed == ["q1"]


def test_factory_options_fail_at_construction(search):
    with pytest.raises(ValueError, match=r"ToolEnv options \['max_calls'\] are unknown; did "
                                         r"you mean 'max_calls_per_episode'\? allowed are"):
        ToolEnvFactory([search], exact, max_calls=3)
    with pytest.raises(ValueError, match=r"executor options \['timeout_s'\] are unknown; did "
                                         r"you mean 'timeout'\?"):
        ToolEnvFactory([search], exact, executor_options={"timeout_s": 3})
    with pytest.raises(ValueError, match=r"parser options for 'xml': \['tag'\] are unknown; "
                                         r"did you mean 'tags'\?"):
        ToolEnvFactory([search], exact, parser="xml", parser_options={"tag": {}})
    with pytest.raises(ValueError, match="needs parser option tool=<tool name>"):
        ToolEnvFactory([search], exact, parser="action")
    with pytest.raises(ValueError, match=r"has no data\['question'\]"):
        asyncio.run(ToolEnv(*_parts(search), exact).reset(Task(id="x", data={"q": "?"})))


def _parts(search):
    factory = ToolEnvFactory([search], exact)
    return factory.executor, factory.parser


def test_wrong_parts_are_refused_at_construction_not_at_the_first_step(search):
    executor, parser = _parts(search)
    with pytest.raises(TypeError, match=r"executor must be a turnwise.tools.Executor, got "
                                        r"ToolRegistry; wrap the registry: Executor\(registry\)"):
        ToolEnv(executor.registry, parser, exact)
    with pytest.raises(TypeError, match=r"parser must be a tool-call parser .* got str; "
                                        r"make_parser\('xml', registry\)"):
        ToolEnv(executor, "xml", exact)
    with pytest.raises(TypeError, match="reward must be a function"):
        ToolEnv(executor, parser, 1.0)
    assert ToolEnv(executor, parser, exact).parser is parser


def test_actions_routed_to_a_tool():
    @tool
    def act(command: str) -> str:
        """Carry out an action in the world.

        Args:
            command: the action, e.g. "go north".
        """
        return f"You {command}."

    factory = ToolEnvFactory([act], exact, parser="action",
                             parser_options={"tool": "act", "answer_tag": "answer"})

    async def play():
        env = factory()
        await env.reset(TASK)
        return await env.step("<action>go north</action>"), await env.step("<answer>Paris</answer>")

    moved, answered = asyncio.run(play())
    assert moved.observation.text == "You go north." and moved.observation.role == "user"
    assert moved.info["action"] == "go north" and moved.info["tool_calls"][0]["status"] == "ok"
    assert answered.done and answered.reward == 1.0 and answered.info["success"]


def test_fork_continues_independently_and_refuses_tool_sessions(search):
    factory = ToolEnvFactory([search], exact, parser="xml", max_calls_per_episode=2)
    env = factory()
    asyncio.run(env.reset(TASK))
    asyncio.run(env.step("<search>capital of France</search>"))
    twin = env.fork()
    assert twin.calls_made == 1 and twin.context is not env.context
    assert twin.executor is env.executor  # shared, as across a suite's episodes
    asyncio.run(twin.step("<search>capital of Italy</search>"))
    assert (env.calls_made, twin.calls_made) == (1, 2)
    assert len(twin.seen) == 2 and len(env.seen) == 1
    refused = asyncio.run(twin.step("<search>more</search>"))  # the twin's budget is spent...
    assert "budget" in refused.observation.text
    ok = asyncio.run(env.step("<answer>Paris</answer>"))  # ...the original still answers
    assert ok.done and ok.reward == 1.0
    asyncio.run(twin.close())
    assert env.context is not None and not env.context.closed

    env.context.state["python"] = object()  # a stateful tool's open session
    with pytest.raises(ValueError, match="stateful tool sessions"):
        env.fork()
