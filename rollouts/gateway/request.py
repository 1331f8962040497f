"""A `/v1/chat/completions` request, checked and normalised: what the gateway honours is read,
what it cannot honour is refused with the parameter's name (never accepted and ignored)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import invalid

ROLES = ("system", "developer", "user", "assistant", "tool")
# Parameters that change nothing the gateway does (bookkeeping for the API's own services).
HARMLESS = ("user", "metadata", "store", "service_tier", "parallel_tool_calls", "stream_options",
            "prompt_cache_key", "safety_identifier")
READ = ("model", "messages", "tools", "tool_choice", "temperature", "top_p", "max_tokens",
        "max_completion_tokens", "stop", "seed", "n", "stream", "logprobs", "top_logprobs",
        "frequency_penalty", "presence_penalty", "logit_bias", "response_format", "modalities")


@dataclass(frozen=True)
class ChatRequest:
    """The parts of a chat request the gateway acts on."""

    model: str
    messages: list[dict[str, Any]]  # normalised (see `normalise_message`)
    tools: list[dict[str, Any]] | None
    parse_tools: bool  # tool_choice is not "none"
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    stop: tuple[str, ...]
    seed: int | None
    stream: bool
    include_usage: bool  # stream_options.include_usage
    logprobs: bool

    @property
    def tools_key(self) -> str:
        """The tool list as canonical JSON: a conversation keeps one tool list."""
        return json.dumps(self.tools, sort_keys=True)


def parse_request(body: Any) -> ChatRequest:
    """The request in `body` (decoded JSON), or a GatewayError naming what is wrong."""
    if not isinstance(body, dict):
        raise invalid(f"the request body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(READ) - set(HARMLESS))
    if unknown:
        raise invalid(f"unsupported parameter(s) {unknown}; the turnwise gateway reads "
                      f"{sorted(READ)}", param=unknown[0], code="unsupported_parameter")
    _refuse_unsupported(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("'model' is required: any name (the gateway serves the policy being "
                      "trained whatever it is called)", param="model", code="missing_required")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise invalid("'messages' must be a non-empty list of chat messages", param="messages",
                      code="missing_required")
    messages = [normalise_message(m, i) for i, m in enumerate(raw)]
    if messages[-1]["role"] == "assistant":
        raise invalid("the last message is an assistant message: the gateway does not continue "
                      "a partial assistant reply (prefill); end with a user or tool message",
                      param=f"messages[{len(messages) - 1}]")
    tools = _tools(body.get("tools"))
    choice = body.get("tool_choice", "auto")
    if choice not in ("auto", "none", None):
        raise invalid(f"tool_choice={choice!r}: the gateway samples the policy freely and "
                      "cannot force a call; allowed are 'auto' and 'none'", param="tool_choice")
    max_tokens = _max_tokens(body)
    stream_options = body.get("stream_options") or {}
    return ChatRequest(
        model=model, messages=messages, tools=tools, parse_tools=choice != "none",
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0), max_tokens=max_tokens, stop=_stop(body),
        seed=_integer(body, "seed"), stream=_flag(body, "stream"),
        include_usage=bool(isinstance(stream_options, dict)
                           and stream_options.get("include_usage")),
        logprobs=_flag(body, "logprobs"))


def normalise_message(message: Any, index: int) -> dict[str, Any]:
    """One chat message as the gateway compares and renders it: role, content as text (parts
    joined), and where present name, tool_call_id and tool calls with decoded arguments."""
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise invalid(f"{where} must be an object, got {type(message).__name__}", param=where)
    role = message.get("role")
    if role not in ROLES:
        raise invalid(f"{where}.role={role!r}: allowed are {list(ROLES)}", param=f"{where}.role")
    out: dict[str, Any] = {"role": "system" if role == "developer" else role,
                           "content": _text(message.get("content"), where)}
    for key in ("name", "tool_call_id"):
        if message.get(key) is not None:
            out[key] = str(message[key])
    if role == "tool" and "tool_call_id" not in out:
        raise invalid(f"{where} is a tool message without 'tool_call_id'",
                      param=f"{where}.tool_call_id", code="missing_required")
    calls = message.get("tool_calls")
    if calls:
        if role != "assistant":
            raise invalid(f"{where} has tool_calls but role {role!r}", param=f"{where}.tool_calls")
        out["tool_calls"] = [_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(calls)]
    return out


def _call(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise invalid(f"{where} must be {{'type': 'function', 'function': {{'name', "
                      f"'arguments'}}}}", param=where)
    arguments = function.get("arguments", "{}")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise invalid(f"{where}.function.arguments is not valid JSON ({exc.msg})",
                          param=where) from None
    return {"id": str(call.get("id", "")), "name": function["name"], "arguments": arguments}


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise invalid(f"{where}.content[{j}] is {kind!r}: the gateway takes text only",
                              param=f"{where}.content")
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise invalid(f"{where}.content must be a string or a list of text parts",
                  param=f"{where}.content")


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    if tools in (None, []):
        return None
    if not isinstance(tools, list):
        raise invalid("'tools' must be a list of function tools", param="tools")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type", "function") != "function" or not isinstance(function, dict) \
                or not isinstance(function.get("name"), str):
            raise invalid(f"tools[{i}] must be {{'type': 'function', 'function': {{'name', "
                          f"'description', 'parameters'}}}}", param=f"tools[{i}]")
    return tools


def _refuse_unsupported(body: dict) -> None:
    n = body.get("n", 1)
    if n not in (1, None):
        raise invalid(f"n={n!r}: one completion per request (a group's samples are separate "
                      "sessions)", param="n")
    if body.get("top_logprobs"):
        raise invalid("top_logprobs is not supported; logprobs=true gives each sampled token's "
                      "logprob", param="top_logprobs")
    for key in ("frequency_penalty", "presence_penalty"):
        if body.get(key):
            raise invalid(f"{key}={body[key]!r}: the trainer's logprobs assume plain sampling; "
                          "allowed: 0 or unset", param=key)
    if body.get("logit_bias"):
        raise invalid("logit_bias is not supported (the trainer's logprobs assume plain "
                      "sampling)", param="logit_bias")
    response_format = body.get("response_format")
    if response_format not in (None, {"type": "text"}):
        raise invalid(f"response_format={response_format!r}: the gateway returns free text; "
                      "allowed: {'type': 'text'} or unset", param="response_format")
    if body.get("modalities") not in (None, ["text"]):
        raise invalid(f"modalities={body['modalities']!r}: text only", param="modalities")


def _max_tokens(body: dict) -> int | None:
    values = {k: body[k] for k in ("max_tokens", "max_completion_tokens")
              if body.get(k) is not None}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise invalid(f"{key}={value!r}: must be an integer >= 1", param=key)
    return min(values.values()) if values else None


def _number(body: dict, key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise invalid(f"{key}={value!r}: must be a number in [{low:g}, {high:g}]", param=key)
    return float(value)


def _integer(body: dict, key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise invalid(f"{key}={value!r}: must be an integer", param=key)
    return value


def _flag(body: dict, key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(f"{key}={value!r}: must be true or false", param=key)
    return value


def _stop(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise invalid(f"stop={stop!r}: a non-empty string or a list of them", param="stop")
    return tuple(stops)
