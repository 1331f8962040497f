"""What the gateway answers: the assistant message of a completion (hermes tool calls parsed
into OpenAI `tool_calls`), as one `chat.completion` object or as a stream of chunks."""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from ...tools.parsers.base import ParserBase

# Hermes / Qwen: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`.
_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def assistant_message(text: str, tool_names: set[str] | None) -> dict[str, Any]:
    """The OpenAI assistant message of a reply's `text`.

    With tools (`tool_names`), well-formed calls to them become `tool_calls` and leave the
    content; a call that is not valid JSON or names no listed tool leaves the whole text as
    content with no calls, as vLLM's hermes parser does, so the program sees what the model
    wrote. Thoughts (<think>) stay in the content: the client sends them back as written.
    """
    calls = _tool_calls(text, tool_names) if tool_names else None
    if not calls:
        return {"role": "assistant", "content": text}
    content = _CALL.sub("", text).strip()
    return {"role": "assistant", "content": content or None, "tool_calls": calls}


def _tool_calls(text: str, names: set[str]) -> list[dict[str, Any]] | None:
    visible = ParserBase.strip_thinking(text)  # a call written inside a thought is no call
    bodies = _CALL.findall(visible)
    if not bodies or visible.count("<tool_call>") != len(bodies):
        return None
    calls = []
    for raw in bodies:
        try:
            data = json.loads(raw.strip())
        except json.JSONDecodeError:
            return None
        arguments = data.get("arguments", {}) if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("name") not in names \
                or not isinstance(arguments, dict):
            return None
        calls.append({"id": f"call_{secrets.token_hex(12)}", "type": "function",
                      "function": {"name": data["name"],
                                   "arguments": json.dumps(arguments, ensure_ascii=False)}})
    return calls


def finish_reason(message: dict[str, Any], engine_reason: str) -> str:
    """OpenAI's finish reason: `length` when cut, `tool_calls` when it calls tools, else `stop`."""
    if engine_reason == "length":
        return "length"
    return "tool_calls" if message.get("tool_calls") else "stop"


def completion_body(message: dict[str, Any], *, model: str, reason: str, prompt_tokens: int,
                    completion_tokens: int, logprobs: list[dict] | None) -> dict[str, Any]:
    """A whole `chat.completion` object."""
    return {"id": f"chatcmpl-{secrets.token_hex(12)}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": reason,
                         "logprobs": None if logprobs is None else {"content": logprobs}}],
            "usage": _usage(prompt_tokens, completion_tokens)}


def stream_chunks(body: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    """The same completion as `chat.completion.chunk`s: role and content, each tool call, the
    finish reason, then usage when asked. The whole reply is generated before the first
    chunk: a stream here is the protocol, not token-by-token latency."""
    choice = body["choices"][0]
    message = choice["message"]
    head = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"],
            "model": body["model"]}

    def chunk(delta: dict, reason: str | None = None, logprobs=None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": reason,
                                     "logprobs": logprobs}]}

    chunks = [chunk({"role": "assistant", "content": message.get("content") or ""},
                    logprobs=choice["logprobs"])]
    for i, call in enumerate(message.get("tool_calls") or []):
        chunks.append(chunk({"tool_calls": [{"index": i, **call}]}))
    chunks.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        chunks.append({**head, "choices": [], "usage": body["usage"]})
    return chunks


def token_logprobs(tokenizer: Any, ids: list[int], logprobs: list[float]) -> list[dict]:
    """`logprobs.content` entries: each sampled token's text, bytes and logprob."""
    out = []
    for token_id, logprob in zip(ids, logprobs):
        text = tokenizer.decode([token_id], skip_special_tokens=False)
        out.append({"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8")),
                    "top_logprobs": []})
    return out


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}
