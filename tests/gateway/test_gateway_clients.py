"""Real agent frameworks against the gateway, unmodified: a LangChain chat model with a bound
tool and the OpenAI Agents SDK's Runner with a function tool. Each plays the adding task with
the expert as the policy (the tool call and its result round-trip through the framework) and
trains two iterations on the tiny model."""

from __future__ import annotations

import asyncio

import pytest
from gateway_helpers import SYSTEM, adding_tasks, config, expert, expert_engine, graded
from turnwise.agent.chat import ChatFormatter
from turnwise.envs.base import register_suite
from turnwise.envs.program import ProgramSuite
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.programs import ProgramOrchestrator

langchain_openai = pytest.importorskip("langchain_openai")
agents = pytest.importorskip("agents")


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def langchain_program(task, client) -> float:
    """LangChain's tool loop: a ChatOpenAI with `add` bound, ToolMessages back."""
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
    from langchain_core.tools import tool

    add_tool = tool(add)
    model = langchain_openai.ChatOpenAI(model="policy", base_url=str(client.base_url),
                                        api_key=client.api_key, max_retries=0)
    model = model.bind_tools([add_tool])
    messages = [SystemMessage(SYSTEM), HumanMessage(task.data["question"])]
    for _ in range(3):
        reply = await model.ainvoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            return graded(reply.content, task)
        for call in reply.tool_calls:
            messages.append(ToolMessage(str(add_tool.invoke(call["args"])),
                                        tool_call_id=call["id"]))
    return 0.0


async def agents_program(task, client) -> float:
    """The OpenAI Agents SDK: an Agent with a function tool, run by its Runner over chat
    completions on the handed client."""
    agents.set_tracing_disabled(True)  # traces would go to OpenAI's servers
    agent = agents.Agent(
        name="adder", instructions=SYSTEM, tools=[agents.function_tool(add)],
        model=agents.OpenAIChatCompletionsModel(model="policy", openai_client=client))
    result = await agents.Runner.run(agent, task.data["question"], max_turns=3)
    return graded(str(result.final_output), task)


PROGRAMS = {"gateway_langchain": langchain_program, "gateway_agents_sdk": agents_program}
for _name, _program in PROGRAMS.items():
    register_suite(_name)(lambda name=_name, program=_program: ProgramSuite(
        name, program, tasks=adding_tasks, expert=expert, corpus=["What is 1 + 2?"]))


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_the_framework_runs_its_tool_loop_through_the_gateway(tokenizer, name):
    suite = ProgramSuite(name, PROGRAMS[name], tasks=adding_tasks, expert=expert)
    orch = ProgramOrchestrator(expert_engine(tokenizer), suite, ChatFormatter(tokenizer),
                               EpisodeSettings(template_mismatch="fail"), quiet=True)
    tasks = adding_tasks("train", 2, 2)
    trajs = asyncio.run(orch.rollout(tasks, group_size=2, tag="g"))
    for traj, task in zip(trajs, [t for t in tasks for _ in range(2)]):
        assert (traj.status, traj.outcome_reward, traj.success) == ("done", 1.0, True), traj.info
        assert len(traj.turns) == 2 and "history_rewrite" not in traj.info
        assert traj.turns[0].tool_calls[0]["name"] == "add"
        assert traj.turns[0].observation == task.answer  # the framework ran the tool
        text = tokenizer.decode(traj.full_ids())
        assert text.endswith(f"The sum is {task.answer}.<|im_end|>")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PROGRAMS))
def test_the_framework_program_trains(tiny_path, tmp_path, name):
    from turnwise.trainer.loop import train

    result = train(config(tiny_path, name, str(tmp_path)), echo=lambda *a: None)
    assert [r["iteration"] for r in result.history] == [1, 2]
    for record in result.history:
        assert record["rollout/episodes"] == 4.0 and record["train/optimizer_steps"] >= 1
    assert result.history[-1]["policy_version"] == 2
