"""The search_qa suite: the oracle through the real env and BM25 index, rewards, formats, anchors."""

from __future__ import annotations

import asyncio
import json

import pytest
from turnwise.envs import make_suite, suite_tool_metrics, suite_tool_schemas
from turnwise.envs.base import Task


@pytest.fixture(scope="module")
def suite():
    return make_suite("search_qa")


async def play(suite, task: Task) -> list:
    """The oracle's episode through a fresh env: every Step, in order."""
    env, oracle = suite.make(), suite.oracle(task)
    obs = await env.reset(task)
    steps = []
    for _ in range(len(suite.oracle_steps(task))):
        step = await env.step(oracle.act(obs))
        steps.append(step)
        obs = step.observation
        if step.done:
            break
    await env.close()
    return steps


def test_oracle_retrieves_each_hop_and_answers_every_task(suite):
    tasks = [t for split in ("train", "valid", "test") for t in suite.tasks(split, 100, seed=4)]
    suite.tool_metrics(reset=True)

    async def run_all():
        return await asyncio.gather(*(play(suite, t) for t in tasks))

    episodes = asyncio.run(run_all())
    searches = 0
    for task, steps in zip(tasks, episodes, strict=True):
        hops = task.data["hops"]
        assert len(steps) == len(hops) + 1, task.id
        for hop, step in zip(hops, steps, strict=False):
            # The hop's own document is among the passages, and it states the fact asked for.
            text = step.observation.text
            assert text.startswith("<information>") and text.endswith("</information>")
            assert f"(Title: {hop['entity']}) {hop['entity']} is" in text, (task.id, hop, text)
            assert hop["value"] in text, (task.id, hop)
            assert step.info["tool_calls"][0]["status"] == "ok" and not step.info["invalid"]
            searches += 1
        final = steps[-1]
        assert final.done and final.reward == 1.0 and final.info["success"], task.id
        assert final.info["score"] == 1.0 and final.info["answer"] == task.answer
        assert final.info["evidence_found"] is True  # the last hop's passage names the answer
    metrics = suite_tool_metrics(suite, reset=True)
    assert metrics["tools/search/calls"] == searches and metrics["tools/search/errors"] == 0
    assert metrics["tools/search/latency_p99"] >= metrics["tools/search/latency_p50"] > 0
    assert suite_tool_metrics(suite)["tools/search/calls"] == 0  # reset


def test_reward_is_f1_success_is_exact_match_score_is_f1(suite):
    task = next(t for t in suite.tasks("train", 60, seed=1) if len(t.answer.split()) == 2)
    first = task.answer.split()[0]

    async def answer(s, text):
        env = s.make()
        await env.reset(task)
        return await env.step(f"<answer>{text}</answer>")

    # One of two gold tokens: precision 1/1, recall 1/2 -> F1 = 2 * 0.5 / 1.5 = 2/3.
    partial = asyncio.run(answer(suite, first))
    assert partial.done and partial.reward == pytest.approx(2 / 3)
    assert not partial.info["success"] and partial.info["score"] == pytest.approx(2 / 3)
    em = make_suite("search_qa", metric="em")
    partial_em = asyncio.run(answer(em, first))
    assert partial_em.reward == 0.0 and partial_em.info["score"] == pytest.approx(2 / 3)
    exact = asyncio.run(answer(em, f"the {task.answer.upper()}"))  # SQuAD normalisation
    assert exact.reward == 1.0 and exact.info["success"] and exact.info["score"] == 1.0
    assert task.answer == task.data["answers"][0]  # the gold answer IGPO scores


def test_evidence_found_tells_a_wrong_search_from_a_misread_passage(suite):
    task = suite.tasks("train", 1, seed=3)[0]
    other = next(t for t in suite.tasks("train", 50, seed=5) if t.answer != task.answer)
    query = task.data["hops"][0]["query"]

    async def episode(search, answer):
        env = suite.make()
        await env.reset(task)
        if search is not None:
            await env.step(f"<search>{search}</search>")
        return await env.step(f"<answer>{answer}</answer>")

    read_right = asyncio.run(episode(query, task.answer))
    misread = asyncio.run(episode(query, other.answer))  # the passage held it; the answer did not
    wrong_search = asyncio.run(episode(other.data["hops"][0]["query"], task.answer))
    no_search = asyncio.run(episode(None, task.answer))
    assert read_right.info["evidence_found"] and read_right.info["success"]
    assert misread.info["evidence_found"] and not misread.info["success"]
    assert not wrong_search.info["evidence_found"] and wrong_search.info["success"]  # a guess
    assert no_search.info["evidence_found"] is False


def test_malformed_calls_are_invalid_turns_with_error_observations(suite):
    task = suite.tasks("test", 1, seed=0)[0]
    replies = {
        "<search>unclosed": "<search> is opened but never closed with </search>",
        "<search>  </search>": "<search> is empty",
        "<search>a</search><search>b</search>": "2 tool calls in one response; at most 1 is allowed",
        "<search>a</search><answer>b</answer>": "either calls tools or gives the final answer",
        "I think it is Paris.": "no tool call and no <answer>...</answer> found",
        "<answer>a</answer><answer>b</answer>": "2 <answer> blocks",
    }

    async def run():
        env = suite.make()
        await env.reset(task)
        return [await env.step(reply) for reply in replies]

    for (reply, error), step in zip(replies.items(), asyncio.run(run()), strict=True):
        assert step.info["invalid"] and not step.done and step.reward == 0.0, reply
        assert error in step.info["error"], (reply, step.info["error"])
        assert step.observation.text.startswith(f"Invalid response: {step.info['error']}")
        assert "Use a tool with <search>...</search>" in step.observation.text
        assert step.observation.role == "user" and step.info["tool_calls"] == []


def test_hermes_format_schemas_go_to_the_chat_template():
    suite = make_suite("search_qa", parser="hermes", think=False)
    schemas = suite_tool_schemas(suite)
    assert [s["function"]["name"] for s in schemas] == ["search"]
    assert schemas[0]["function"]["parameters"]["required"] == ["query"]
    assert "<tools>" not in suite.system_prompt and "<tool_call>" in suite.system_prompt
    assert suite_tool_schemas(make_suite("search_qa")) is None  # xml: the prompt has the tags
    task = suite.tasks("valid", 3, seed=2)[2]
    first = suite.oracle(task).act(None)
    assert first.startswith("<tool_call>") and json.loads(first[11:-12]) == {
        "name": "search", "arguments": {"query": task.data["hops"][0]["query"]}}
    steps = asyncio.run(play(suite, task))
    assert steps[0].observation.role == "tool"
    assert steps[0].observation.text.startswith("<tool_response>\nDoc 1 (Title: ")
    assert steps[-1].info["success"] and steps[-1].reward == 1.0

    async def bad():
        env = suite.make()
        await env.reset(task)
        return (await env.step('<tool_call>{"name": "search", "arguments": {"q": 1}}</tool_call>'),
                await env.step('<tool_call>{"name": "browse"}</tool_call>'),
                await env.step("<tool_call>{'name': 'search'}</tool_call>"))

    wrong_arg, unknown, not_json = asyncio.run(bad())
    assert wrong_arg.info["invalid"] and "query" in wrong_arg.info["error"]
    assert unknown.info["invalid"] and "unknown tool 'browse'" in unknown.info["error"]
    assert not_json.info["invalid"] and "not valid JSON" in not_json.info["error"]


def test_state_anchors_follow_the_information_gathered():
    suite = make_suite("search_qa", anchor="state", think=False)
    task = next(t for t in suite.tasks("train", 30, seed=3) if t.kind == "2-hop")
    q1, q2 = (hop["query"] for hop in task.data["hops"])

    async def run(replies):
        env = suite.make()
        anchors = [(await env.reset(task)).anchor]
        for reply in replies:
            anchors.append((await env.step(reply)).observation.anchor)
        return anchors

    a = asyncio.run(run([f"<search>{q1}</search>", "oops", f"<search>{q2}</search>"]))
    b = asyncio.run(run([f"<search>{q2}</search>", f"<search>{q1}</search>"]))
    assert a[0] == b[0] and a[0].startswith("seen0:")
    assert a[1] == a[2] != a[0]  # a malformed reply gathers nothing: same state
    assert a[3] == b[2] != b[1]  # the same two searches in the other order: the same state
    with pytest.raises(ValueError, match=r"env.options.anchor='page': allowed are"):
        make_suite("search_qa", anchor="page")


def test_options_are_validated_with_the_allowed_values():
    with pytest.raises(ValueError, match=r"unknown \['topk'\]; did you mean 'top_k'\? "
                                         r"allowed are \[.*'top_k'"):
        make_suite("search_qa", topk=3)
    with pytest.raises(ValueError, match=r"env.options.parser='json': allowed are \['xml', 'hermes'\]"):
        make_suite("search_qa", parser="json")
    with pytest.raises(ValueError, match=r"env.options.metric='acc'"):
        make_suite("search_qa", metric="acc")
    with pytest.raises(ValueError, match="top_k=0"):
        make_suite("search_qa", top_k=0)
    with pytest.raises(ValueError, match="executor options"):
        make_suite("search_qa", executor={"timeout_s": 1})


def test_corpus_covers_prompts_queries_passages_and_answers(suite):
    texts = list(suite.corpus())
    joined = "\n".join(texts)
    task = suite.tasks("train", 100, 7)[5]
    assert suite.system_prompt in texts
    assert task.data["question"] in texts
    assert f"<search>{task.data['hops'][0]['query']}</search>" in joined
    assert '<tool_call>{"name": "search"' in joined and "<information>Doc 1 (Title: " in joined
    assert f"<answer>{task.answer}</answer>" in joined
