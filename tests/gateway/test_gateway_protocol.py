"""The gateway's protocol: OpenAI chat completions in, exact token ids recorded, OpenAI error
bodies for what it refuses. Clients are the real `openai` package and raw HTTP."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest
import torch
from gateway_helpers import ADD, ScriptedPolicy, adding_tasks, expert, first_messages, served

TASK = adding_tasks("train", 1, 3)[0]  # What is 21 + 33?


def client_for(gateway, session) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url, api_key=session.key, max_retries=0)


async def play_two_turns(client, *, resend=None) -> tuple[list[dict], list]:
    """Ask, run the add call, ask again; `resend` may rewrite the assistant message sent back."""
    messages = first_messages(TASK)
    first = await client.chat.completions.create(model="any", messages=messages, tools=[ADD])
    sent = first.choices[0].message.model_dump(exclude_none=True)
    messages.append(resend(sent) if resend else sent)
    for call in first.choices[0].message.tool_calls or []:
        arguments = json.loads(call.function.arguments)
        messages.append({"role": "tool", "tool_call_id": call.id,
                         "content": str(arguments["a"] + arguments["b"])})
    second = await client.chat.completions.create(model="any", messages=messages, tools=[ADD])
    return messages, [first, second]


def test_a_tool_call_round_trip_is_recorded_token_exact(tokenizer):
    policy = ScriptedPolicy(tokenizer, lambda messages, _: expert(TASK, messages))

    async def run():
        async with served(tokenizer, policy) as (gateway, session):
            _messages, answers = await play_two_turns(client_for(gateway, session))
            return answers, gateway.close_session(session.key).trajectory

    (first, second), traj = asyncio.run(run())
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.content is None
    assert (call.function.name, json.loads(call.function.arguments)) == ("add", {"a": 21, "b": 33})
    assert second.choices[0].message.content == "The sum is 54."
    assert second.choices[0].finish_reason == "stop" and not second.choices[0].message.tool_calls
    # The second prompt is the first prompt, the first response and the appended tool result,
    # exactly; the turns hold the very ids the policy returned.
    p1, p2 = policy.prompts
    r1, r2 = (c.token_ids for c in policy.completions)
    assert list(p2[:len(p1) + len(r1)]) == list(p1) + r1
    assert traj.prompt_ids == list(p1)
    assert [t.response_ids for t in traj.turns] == [r1, r2]
    assert traj.full_ids() == list(p2) + r2
    assert tokenizer.decode(traj.turns[0].observation_ids) == \
        "\n<|im_start|>tool\n54<|im_end|>\n<|im_start|>assistant\n"
    assert traj.turns[0].tool_calls[0]["name"] == "add"
    assert traj.turns[0].observation == "54"
    assert "template_rewrite" not in traj.info and "retokenized" not in traj.info
    # Usage counts the ids the engine saw.
    assert second.usage.prompt_tokens == len(p2) and second.usage.completion_tokens == len(r2)


def test_the_engine_logprobs_reach_the_record_and_the_client(tokenizer, tiny_path, tiny_model):
    from turnwise.agent.engines import make_engine
    from turnwise.trainer.logprobs import token_logprobs

    engine = make_engine("hf", tiny_path, tokenizer)

    async def policy(prompt, params):
        return await engine.generate(prompt, params, session="s")

    async def run():
        async with served(tokenizer, policy, max_tokens_per_turn=12) as (gateway, session):
            answer = await client_for(gateway, session).chat.completions.create(
                model="any", messages=first_messages(TASK), logprobs=True)
            return answer, gateway.close_session(session.key).trajectory

    try:
        answer, traj = asyncio.run(run())
    finally:
        asyncio.run(engine.close())
    turn = traj.turns[0]
    returned = [entry.logprob for entry in answer.choices[0].logprobs.content]
    assert returned == turn.response_logprobs and len(returned) == len(turn.response_ids) > 0
    ids = torch.tensor([traj.full_ids()])
    logp, _ = token_logprobs(tiny_model.eval(), ids, torch.ones_like(ids))
    recomputed = logp[0, len(traj.prompt_ids):]
    assert torch.allclose(recomputed, torch.tensor(turn.response_logprobs), atol=1e-4)


def test_a_client_that_reencodes_the_reply_is_no_rewrite(tokenizer):
    policy = ScriptedPolicy(tokenizer, lambda messages, _: expert(TASK, messages))

    def reencode(message):  # as LangChain does: arguments dumped again, content "" for None
        calls = [{**c, "id": "call_renamed", "function": {
            "name": c["function"]["name"],
            "arguments": json.dumps(json.loads(c["function"]["arguments"]), indent=1,
                                    sort_keys=True)}} for c in message["tool_calls"]]
        return {"role": "assistant", "content": "", "tool_calls": calls}

    async def run():
        async with served(tokenizer, policy, template_mismatch="fail") as (gateway, session):
            await play_two_turns(client_for(gateway, session), resend=reencode)
            return gateway.close_session(session.key).trajectory

    traj = asyncio.run(run())
    assert len(traj.turns) == 2 and traj.status == "done" and "history_rewrite" not in traj.info


def edited(message):
    return {"role": "assistant", "content": "I will add them."}


def test_a_rewritten_history_fails_the_episode_under_fail(tokenizer):
    policy = ScriptedPolicy(tokenizer, lambda messages, _: expert(TASK, messages))

    async def run():
        async with served(tokenizer, policy, template_mismatch="fail") as (gateway, session):
            with pytest.raises(openai.BadRequestError) as refused:
                await play_two_turns(client_for(gateway, session), resend=edited)
            return refused.value, gateway.close_session(session.key).trajectory

    refused, traj = asyncio.run(run())
    error = refused.body
    assert error["code"] == "history_rewrite" and error["type"] == "invalid_request_error"
    assert "message 2 differs" in error["message"]
    assert "'I will add them.'" in error["message"]
    assert traj.status == "failed" and traj.info["stop"] == "history_rewrite"
    assert len(policy.prompts) == 1


def test_a_rewritten_history_goes_on_from_the_recorded_ids_under_keep(tokenizer):
    policy = ScriptedPolicy(tokenizer, lambda messages, _: expert(TASK, messages))

    async def run():
        async with served(tokenizer, policy, template_mismatch="keep") as (gateway, session):
            await play_two_turns(client_for(gateway, session), resend=edited)
            return gateway.close_session(session.key).trajectory

    traj = asyncio.run(run())
    p1, p2 = policy.prompts
    r1 = policy.completions[0].token_ids
    # The model goes on from what it produced (the tool call), not from the client's edit.
    assert list(p2[:len(p1) + len(r1)]) == list(p1) + r1
    assert traj.info["history_rewrite"] == [{"turn": 1, "message": 2}]
    assert traj.status == "done" and len(traj.turns) == 2


def test_concurrent_requests_in_one_session_are_refused(tokenizer):
    release = asyncio.Event

    async def run():
        gate = release()

        async def slow_policy(prompt, params):
            await gate.wait()
            return await ScriptedPolicy(tokenizer, lambda m, _: "Hello.")(prompt, params)

        async with served(tokenizer, slow_policy) as (gateway, session):
            client = client_for(gateway, session)
            first = asyncio.ensure_future(client.chat.completions.create(
                model="any", messages=first_messages(TASK)))
            while not session.busy:
                await asyncio.sleep(0.01)
            with pytest.raises(openai.ConflictError) as refused:
                await client.chat.completions.create(model="any", messages=first_messages(TASK))
            gate.set()
            return refused.value, await first

    refused, first = asyncio.run(run())
    assert refused.status_code == 409 and refused.body["code"] == "session_busy"
    assert first.choices[0].message.content == "Hello."


def test_streaming_sends_the_whole_reply_as_chunks(tokenizer):
    policy = ScriptedPolicy(tokenizer, lambda messages, _: expert(TASK, messages))

    async def run():
        async with served(tokenizer, policy) as (gateway, session):
            stream = await client_for(gateway, session).chat.completions.create(
                model="any", messages=first_messages(TASK), tools=[ADD], stream=True,
                stream_options={"include_usage": True})
            return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    calls = [c for chunk in chunks for choice in chunk.choices
             for c in choice.delta.tool_calls or []]
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == \
        [("add", {"a": 21, "b": 33})]
    assert [choice.finish_reason for chunk in chunks for choice in chunk.choices
            if choice.finish_reason] == ["tool_calls"]
    assert chunks[-1].usage.completion_tokens == len(policy.completions[0].token_ids)


def test_the_turn_budget_stops_the_session(tokenizer):
    policy = ScriptedPolicy(tokenizer, lambda messages, _: expert(TASK, messages))

    async def run():
        async with served(tokenizer, policy, max_turns=1) as (gateway, session):
            with pytest.raises(openai.BadRequestError) as refused:
                await play_two_turns(client_for(gateway, session))
            return refused.value, gateway.close_session(session.key).trajectory

    refused, traj = asyncio.run(run())
    assert refused.body["code"] == "max_turns" and "rollout.max_turns=1" in refused.body["message"]
    assert traj.info["stop"] == "max_turns" and len(traj.turns) == 1


def test_the_trainers_sampling_is_used_and_a_different_one_refused(tokenizer):
    policy = ScriptedPolicy(tokenizer, lambda messages, _: "Fine.")

    async def run():
        async with served(tokenizer, policy, max_tokens_per_turn=20) as (gateway, session):
            client = client_for(gateway, session)
            with pytest.raises(openai.BadRequestError) as refused:
                await client.chat.completions.create(model="any", messages=first_messages(TASK),
                                                     temperature=0.7)
            await client.chat.completions.create(model="any", messages=first_messages(TASK),
                                                 temperature=1.0, max_tokens=8, stop=["\n\n"])
            return refused.value

    refused = asyncio.run(run())
    assert refused.body["param"] == "temperature" and "temperature=1" in refused.body["message"]
    params = policy.params[0]
    assert (params.temperature, params.max_tokens, params.stop) == (1.0, 8, ("\n\n",))


async def raw(url: str, body, *, key: str | None, method: str = "POST",
              path: str = "/chat/completions") -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as http:
        data = body if isinstance(body, str) else json.dumps(body)
        async with http.request(method, url + path, data=data, headers=headers) as response:
            return response.status, await response.json()


GOOD = {"model": "any", "messages": [{"role": "user", "content": "Hi"}]}
REFUSED = [
    ("{not json", 400, "invalid_json", None),
    ([1, 2], 400, "invalid_value", None),
    ({"messages": GOOD["messages"]}, 400, "missing_required", "model"),
    ({"model": "any", "messages": []}, 400, "missing_required", "messages"),
    ({**GOOD, "messages": [{"role": "wizard", "content": "x"}]}, 400, "invalid_value",
     "messages[0].role"),
    ({**GOOD, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400,
     "invalid_value", "messages[0].content"),
    ({**GOOD, "messages": [{"role": "tool", "content": "5"}]}, 400, "missing_required",
     "messages[0].tool_call_id"),
    ({**GOOD, "n": 2}, 400, "invalid_value", "n"),
    ({**GOOD, "tool_choice": "required"}, 400, "invalid_value", "tool_choice"),
    ({**GOOD, "logit_bias": {"5": 1}}, 400, "invalid_value", "logit_bias"),
    ({**GOOD, "response_format": {"type": "json_object"}}, 400, "invalid_value",
     "response_format"),
    ({**GOOD, "max_tokens": 0}, 400, "invalid_value", "max_tokens"),
    ({**GOOD, "best_of": 3}, 400, "unsupported_parameter", "best_of"),
    ({**GOOD, "tools": [{"type": "function"}]}, 400, "invalid_value", "tools[0]"),
]


@pytest.mark.parametrize(("body", "status", "code", "param"), REFUSED)
def test_malformed_requests_get_openai_error_bodies(tokenizer, body, status, code, param):
    policy = ScriptedPolicy(tokenizer, lambda m, _: "unused")

    async def run():
        async with served(tokenizer, policy) as (gateway, session):
            return await raw(gateway.url, body, key=session.key), gateway.stats

    (got, answer), stats = asyncio.run(run())
    error = answer["error"]
    assert (got, error["code"], error["param"]) == (status, code, param)
    assert error["type"] == "invalid_request_error" and error["message"]
    assert not policy.prompts and stats == {"requests": 1, "refused": 1}


def test_sessions_unknown_missing_and_closed_are_refused(tokenizer):
    policy = ScriptedPolicy(tokenizer, lambda m, _: "Hi.")

    async def run():
        async with served(tokenizer, policy) as (gateway, session):
            url = gateway.url
            unknown = await raw(url, GOOD, key="tw-nobody")
            missing = await raw(url, GOOD, key=None)
            ok = await raw(url, GOOD, key=session.key)
            gateway.close_session(session.key)
            closed = await raw(url, GOOD, key=session.key)
            path = await raw(url, GOOD, key=session.key, path="/completions")
            method = await raw(url, None, key=session.key, method="GET")
            models = await raw(url, None, key=None, method="GET", path="/models")
            return unknown, missing, ok, closed, path, method, models

    unknown, missing, ok, closed, path, method, models = asyncio.run(run())
    assert (unknown[0], unknown[1]["error"]["code"]) == (401, "unknown_session")
    assert unknown[1]["error"]["type"] == "authentication_error"
    assert (missing[0], missing[1]["error"]["code"]) == (401, "missing_session")
    assert ok[0] == 200 and ok[1]["choices"][0]["message"]["content"] == "Hi."
    assert (closed[0], closed[1]["error"]["code"]) == (410, "session_closed")
    assert (path[0], path[1]["error"]["code"]) == (404, "not_found")
    assert (method[0], method[1]["error"]["code"]) == (405, "method_not_allowed")
    assert models == (200, {"object": "list", "data": [
        {"id": "policy", "object": "model", "created": 0, "owned_by": "turnwise"}]})


def test_a_template_that_cannot_list_tools_is_refused_with_the_reason(tokenizer):
    import copy

    from turnwise.rollouts.gateway import Formatters, parse_request
    from turnwise.rollouts.gateway.errors import GatewayError

    toolless = copy.deepcopy(tokenizer)  # ChatML that drops the tool list, as older templates do
    toolless.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + (m['content'] or '') "
        "+ '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    formatters = Formatters(toolless)
    assert formatters.get(parse_request(GOOD)) is formatters.get(parse_request(GOOD))
    with pytest.raises(GatewayError) as refused:
        formatters.get(parse_request({**GOOD, "tools": [ADD]}))
    error = refused.value.body()["error"]
    assert (error["code"], error["param"]) == ("template_error", "tools")
    assert "does not list the tools" in error["message"]
