"""What a chat template must do for a context to grow by appending, measured when a
`ChatFormatter` is built, so that a template that cannot is refused at start with the reason.

Each check renders small probe conversations (see `agent.chat_template`): where an assistant
turn ends, whether a stop at eos ends it whatever follows, how tool messages are rendered, and
where the template reads reasoning from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from .chat_template import (
    ARGUMENT,
    PROBE_NEXT,
    PROBE_RESULT,
    STAND_IN,
    Message,
    TemplateError,
    closing,
    refused_family,
    render,
)

# How the template renders tool messages: with markup of its own (Qwen's <tool_response>,
# Llama 3.1's ipython turn, DeepSeek's tool outputs), like any other role, or not at all.
ToolRendering = Literal["native", "plain", "none"]
# The first messages of every probe: every turnwise environment has a system prompt.
FIRST: tuple[Message, ...] = ({"role": "system", "content": "Qz7System"},
                              {"role": "user", "content": "Qz7Task"})


@dataclass(frozen=True)
class Traits:
    """What a template does around assistant turns, as `measure` found it."""

    closing: str  # from the end of a reply's content to its eos, inclusive
    tool_messages: ToolRendering
    no_tools_reason: str  # why tool messages cannot be rendered ('' when they can)
    reasoning_field: bool  # reasoning is rendered only from `reasoning_content` (Qwen3.8)


def measure(tokenizer: Any, *, tools: list[dict] | None, name: str) -> Traits:
    """The template's traits; a TemplateError naming it and the reason when it cannot be used."""
    refused = refused_family(tokenizer)
    if refused:
        raise TemplateError(f"turnwise refuses {name}: {refused}")
    first = list(FIRST)
    if tools:
        _check_tools_listed(tokenizer, first, tools, name)
    tool_messages, why = tool_rendering(tokenizer, first, tools=tools)
    if tools and tool_messages == "none":
        raise TemplateError(f"{name} cannot carry tool results, which the tools given to it call "
                            f"for: {why}")
    found = _closing(tokenizer, first, tools, name, tool_messages != "none")
    if tools:
        _check_tool_call_turns(tokenizer, first, tools, name)
    return Traits(found, tool_messages, why,
                  _reads_reasoning_field(tokenizer, first, tools, tool_messages != "none"))


def tool_result() -> Message:
    """A tool message as a probe sends it."""
    return {"role": "tool", "content": PROBE_RESULT, "name": "probe",
            "tool_call_id": "call_probe0001"}


def tool_rendering(tokenizer: Any, first: list[Message], *, tools: list[dict] | None,
                   ) -> tuple[ToolRendering, str]:
    """How the template renders a tool message after an assistant turn, and why when 'none'."""
    answered = [*first, {"role": "assistant", "content": STAND_IN}]
    try:
        as_tool = render(tokenizer, [*answered, tool_result()], tools=tools,
                         add_generation_prompt=True)
    except TemplateError as exc:
        return "none", str(exc)
    if PROBE_RESULT not in as_tool:
        return "none", "it drops tool messages from the conversation"
    as_user = render(tokenizer, [*answered, {"role": "user", "content": PROBE_RESULT}],
                     tools=tools, add_generation_prompt=True)
    # Rendered like any role, a tool message is a user message under another role name.
    tail = as_tool[as_tool.find(STAND_IN):]
    plain = as_user[as_user.find(STAND_IN):].replace("user", "tool")
    return ("plain" if tail == plain else "native"), ""


def _closing(tokenizer: Any, first: list[Message], tools: list[dict] | None, name: str,
             tool_role: bool) -> str:
    """The closing of a reply, which must be the same before a user and a tool message."""
    answered = [*first, {"role": "assistant", "content": STAND_IN}]
    special = set(tokenizer.all_special_tokens) | {
        t.content for t in tokenizer.added_tokens_decoder.values()}
    eos = tokenizer.eos_token
    text = render(tokenizer, [*answered, {"role": "user", "content": PROBE_NEXT}], tools=tools,
                  add_generation_prompt=True)
    found = closing(text, eos=eos, special=special, name=name, after="a user message")
    if tool_role:
        text = render(tokenizer, [*answered, tool_result()], tools=tools,
                      add_generation_prompt=True)
        after_tool = closing(text, eos=eos, special=special, name=name, after="a tool message")
        if after_tool != found:
            raise TemplateError(f"{name} ends an assistant turn with {found!r} before a user "
                                f"message but {after_tool!r} before a tool message")
    return found


def _check_tools_listed(tokenizer: Any, first: list[Message], tools: list[dict],
                        name: str) -> None:
    text = render(tokenizer, first, tools=tools, add_generation_prompt=True)
    unlisted = [n for n in (t.get("function", t).get("name", "") for t in tools) if n not in text]
    if unlisted:
        raise TemplateError(f"{name} does not list the tools given to it ({unlisted} are missing "
                            "from the prompt), so the model would never see their schemas; use "
                            "a format whose instructions list them")


def _check_tool_call_turns(tokenizer: Any, first: list[Message], tools: list[dict],
                           name: str) -> None:
    """A turn that calls tools must end at eos too (GLM closes it with <|observation|>)."""
    tool = tools[0].get("function", tools[0]).get("name", "")
    result = {**tool_result(), "name": tool}
    for arguments in ({"query": ARGUMENT}, json.dumps({"query": ARGUMENT})):
        call = {"id": "call_probe0001", "type": "function",
                "function": {"name": tool, "arguments": arguments}}
        turn = {"role": "assistant", "content": STAND_IN, "tool_calls": [call]}
        try:
            text = render(tokenizer, [*first, turn, result], tools=tools,
                          add_generation_prompt=True)
            break
        except TemplateError:  # it wants the arguments as a JSON string, or renders no calls
            continue
    else:
        return
    start, end = text.find(ARGUMENT), text.find(PROBE_RESULT)
    if 0 <= start < end and tokenizer.eos_token not in text[start:end]:
        raise TemplateError(
            f"{name} ends a turn that calls tools with {text[start:end][-40:]!r}, not with eos "
            f"{tokenizer.eos_token!r}: the model stops such turns with another token than the "
            "one that closes its other turns")


def _reads_reasoning_field(tokenizer: Any, first: list[Message], tools: list[dict] | None,
                           tool_role: bool) -> bool:
    # Reasoning inside the content and in the field render alike where the template parses the
    # content, and the field's is lost where the template ignores the field (Llama).
    follower = [tool_result()] if tool_role else []
    inline = {"role": "assistant", "content": f"<think>\nQz7Thought\n</think>\n\n{STAND_IN}"}
    field = {"role": "assistant", "content": STAND_IN, "reasoning_content": "Qz7Thought"}
    as_inline = render(tokenizer, [*first, inline, *follower], tools=tools,
                       add_generation_prompt=False)
    as_field = render(tokenizer, [*first, field, *follower], tools=tools,
                      add_generation_prompt=False)
    return as_field != as_inline and "Qz7Thought" in as_field
