"""The math_code suite: the oracle's code runs in the real sandbox, sessions, errors, timeouts."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines.base import Completion
from turnwise.envs import make_suite, suite_tool_metrics, suite_tool_schemas
from turnwise.envs.math_code import GENERATORS, parse_number
from turnwise.rollouts.episode import EpisodeSettings, run_episode
from turnwise.rollouts.metrics import summarize
from turnwise.tools.python.isolation import probe

_REASONS = [probe(kind, os.sys.executable) for kind in ("bwrap", "unshare")]
pytestmark = pytest.mark.skipif(all(_REASONS), reason=f"no sandbox isolation here: {_REASONS}")


@pytest.fixture(scope="module")
def suite():
    return make_suite("math_code")


async def play(suite, task):
    env, oracle = suite.make(), suite.oracle(task)
    obs = await env.reset(task)
    code = await env.step(oracle.act(obs))
    answer = await env.step(oracle.act(code.observation))
    await env.close()
    return code, answer


@pytest.mark.slow
def test_sandbox_runs_the_oracle_code_and_the_oracle_solves_every_task(suite):
    tasks = [t for split in ("train", "valid", "test") for t in suite.tasks(split, 70, seed=5)]
    assert {t.kind for t in tasks} == set(GENERATORS)
    suite.tool_metrics(reset=True)

    async def run_all():
        return await asyncio.gather(*(play(suite, t) for t in tasks))

    for task, (code, answer) in zip(tasks, asyncio.run(run_all()), strict=True):
        text = code.observation.text
        assert text.startswith("<result>") and text.endswith("</result>"), (task.id, text)
        # What the sandboxed program printed is the answer, as an exact rational.
        assert parse_number(text[len("<result>"):-len("</result>")]) == parse_number(task.answer), \
            (task.id, text, task.answer)
        assert code.info["tool_calls"][0]["status"] == "ok" and not code.info["invalid"]
        assert answer.done and answer.reward == 1.0 and answer.info["success"], task.id
    metrics = suite_tool_metrics(suite, reset=True)
    assert metrics["tools/python/calls"] == len(tasks) and metrics["tools/python/errors"] == 0


def test_stateful_sessions_keep_variables_and_close_with_the_episode():
    task = make_suite("math_code").tasks("test", 1, 0)[0]

    async def run(suite):
        env = suite.make()
        await env.reset(task)
        first = await env.step("<python>x = 41</python>")
        box = env.context.state.get("python-sandbox:python")
        second = await env.step("<python>print(x + 1)</python>")
        await env.close()
        return first, second, box

    first, second, box = asyncio.run(run(make_suite("math_code", stateful=True)))
    assert first.observation.text == "<result>(no output)</result>"
    assert second.observation.text == "<result>42</result>"
    assert box is not None and not box.alive  # closed with the episode
    _, fresh, box = asyncio.run(run(make_suite("math_code")))
    assert box is None and "NameError: name 'x' is not defined" in fresh.observation.text


def test_code_errors_timeouts_and_malformed_calls(tokenizer):
    suite = make_suite("math_code", limits={"wall_seconds": 1.0, "cpu_seconds": 1.0})
    task = suite.tasks("train", 1, 0)[0]
    replies = ["<python>1/0</python>", "<python>while True: pass</python>",
               "<python>print(1)", "<python>\n</python>", "\\boxed{3}"]
    formatter = ChatFormatter(tokenizer)

    async def act(prompt_ids, obs, params):  # says the replies in order, as a model would
        ids = tokenizer.encode(replies.pop(0), add_special_tokens=False)
        return Completion(ids + [formatter.eos_id], [0.0] * (len(ids) + 1), "stop")

    traj = asyncio.run(run_episode(act, suite.make(), task, formatter,
                                   EpisodeSettings(max_turns=5), uid="u", traj_id="t"))
    raised, hung, unclosed, empty, bare = traj.turns
    assert not raised.invalid and raised.tool_calls[0]["status"] == "ok"
    assert "ZeroDivisionError: division by zero" in raised.observation
    assert hung.tool_calls[0]["status"] == "timeout" and not hung.invalid
    assert "TimeoutError: the code ran longer than 1 s" in hung.observation
    assert hung.error.startswith("python: TimeoutError")
    assert unclosed.invalid and "<python> is opened but never closed" in unclosed.error
    assert empty.invalid and "<python> is empty" in empty.error
    assert bare.invalid and "no <answer>...</answer> found" in bare.error
    assert traj.status == "truncated"
    stats = summarize([traj])
    # Two calls ran: one fine, one timed out -> error rate 1/2, one timeout in one episode.
    assert stats["rollout/tool_calls"] == 2.0 and stats["rollout/tool_error_rate"] == 0.5
    assert stats["rollout/tool_timeouts"] == 1.0 and stats["rollout/invalid_rate"] == 3 / 5
    tools = suite_tool_metrics(suite)
    assert tools["tools/python/calls"] == 2 and tools["tools/python/timeouts"] == 1


def test_hermes_schemas_and_options():
    suite = make_suite("math_code", parser="hermes")
    (schema,) = suite_tool_schemas(suite)
    assert schema["function"]["name"] == "python"
    assert schema["function"]["parameters"]["required"] == ["code"]
    task = suite.tasks("valid", 1, 0)[0]
    call = suite.oracle(task).act(None)
    assert call.startswith("<think>I will compute this with Python.</think>\n<tool_call>")
    assert json.loads(call.split("<tool_call>")[1].removesuffix("</tool_call>"))["arguments"] == {
        "code": task.data["solution_code"]}
    with pytest.raises(ValueError, match=r"unknown \['sandbox'\]; allowed are \[.*'stateful'"):
        make_suite("math_code", sandbox="local")
    with pytest.raises(ValueError, match=r"backend='docker': allowed are \['local', 'e2b'\]"):
        make_suite("math_code", backend="docker")
    with pytest.raises(ValueError, match=r"sandbox limits \['ram'\] are unknown"):
        make_suite("math_code", limits={"ram": 1})
    with pytest.raises(ValueError, match="env.options.kinds"):
        make_suite("math_code", kinds=["calculus"])


def test_a_step_that_raises_still_closes_the_sandbox_session(tokenizer):
    suite = make_suite("math_code", stateful=True)
    formatter = ChatFormatter(tokenizer)
    boxes = []

    class LosesItsBackend:
        """The suite's env, whose second step fails after the first opened a session."""

        def __init__(self, env):
            self.env, self.system_prompt = env, env.system_prompt

        async def reset(self, task):
            return await self.env.reset(task)

        async def step(self, text):
            if boxes:
                raise RuntimeError("backend lost")
            step = await self.env.step(text)
            boxes.append(self.env.context.state["python-sandbox:python"])
            return step

        async def close(self):
            await self.env.close()

    async def act(prompt_ids, obs, params):
        ids = tokenizer.encode("<python>x = 1</python>", add_special_tokens=False)
        return Completion(ids + [formatter.eos_id], [0.0] * (len(ids) + 1), "stop")

    traj = asyncio.run(run_episode(act, LosesItsBackend(suite.make()), suite.tasks("train", 1, 0)[0],
                                   formatter, EpisodeSettings(max_turns=3), uid="u", traj_id="t"))
    assert traj.status == "failed" and "backend lost" in traj.info["error"]
    assert len(boxes) == 1 and not boxes[0].alive  # the session did not outlive the episode


def test_full_trajectory_demonstrations_through_the_orchestrator(tokenizer):
    from turnwise.rollouts.orchestrator import Orchestrator

    suite = make_suite("math_code", stateful=True)
    formatter = ChatFormatter(tokenizer, tools=suite_tool_schemas(suite))
    orchestrator = Orchestrator(None, suite, formatter, EpisodeSettings(mode="full_trajectory"))
    tasks = suite.tasks("test", len(GENERATORS), 3)
    demos = asyncio.run(orchestrator.demonstrations(tasks, tag="sft"))
    for task, traj in zip(tasks, demos, strict=True):
        assert traj.status == "done" and traj.success and traj.outcome_reward == 1.0
        code, answer = traj.turns
        assert code.tool_calls[0]["arguments"] == {"code": task.data["solution_code"]}
        messages = [{"role": "system", "content": suite.system_prompt},
                    {"role": "user", "content": task.data["question"]},
                    {"role": "assistant", "content": formatter.decode(code.response_ids)},
                    {"role": "user", "content": code.observation},
                    {"role": "assistant", "content": formatter.decode(answer.response_ids)}]
        assert traj.full_ids() + formatter.after_eos == formatter.encode(
            messages, add_generation_prompt=False)
    texts = set(suite.corpus())
    corpus_task = suite.tasks("valid", 60, 11)[4]
    assert suite.system_prompt in texts and f"<result>{corpus_task.answer}</result>" in texts
    assert f"<python>{corpus_task.data['solution_code']}</python>" in texts


def test_direct_answers_end_the_episode_in_one_step_with_full_reward():
    suite = make_suite("math_code", kinds=["leftover"], oracle_direct=1.0)
    task = suite.tasks("train", 1, seed=0)[0]

    async def run():
        env, oracle = suite.make(), suite.oracle(task)
        step = await env.step(oracle.act(await env.reset(task)))
        await env.close()
        return step

    step = asyncio.run(run())
    assert step.done and step.reward == 1.0 and not step.info.get("tool_calls")
    with pytest.raises(ValueError, match="oracle_direct"):
        make_suite("math_code", oracle_direct=2)
