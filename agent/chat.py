"""Chat formatting that appends token ids instead of re-rendering a conversation.

A multi-turn context is built once from the first messages, then grows only by appending: the
engine's response ids exactly as generated, then the ids of the next messages (tool results,
observations) plus the opening of the next assistant turn. The trainer therefore sees the very
ids the engine saw, even for templates that rewrite earlier turns when rendered whole.

What to append is measured on the real conversation: it is rendered with the last reply replaced
by a stand-in, and what follows the end of the stand-in's turn is appended (see
`agent.chat_template`). `ChatFormatter` plays a probe episode when it is built, so a template
that cannot be extended this way is refused at start, with its name and the reason.

`Conversation` also re-renders the whole chat after each turn and compares, so that a template
that rewrites history (say, one that drops earlier <think> blocks) is noticed: either the
engine's ids are kept and the difference is recorded, or the run stops with the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .chat_checks import FIRST, measure, tool_result
from .chat_template import (
    FRAME,
    STAND_IN,
    Message,
    Reply,
    TemplateError,
    locate,
    render,
    reply_frame,
    skeleton,
    stand_in,
    template_name,
)

MismatchPolicy = Literal["keep", "fail"]
MISMATCH_POLICIES: tuple[str, ...] = ("keep", "fail")

__all__ = ["MISMATCH_POLICIES", "ChatFormatter", "Conversation", "Message", "Mismatch",
           "MismatchPolicy", "Prompt", "Reply", "TemplateError", "TemplateMismatch"]


class TemplateMismatch(TemplateError):
    """A whole re-render of the conversation differs from the ids the engine saw."""


@dataclass(frozen=True)
class Prompt:
    """Ids to put in front of the model, and how the template frames the reply to them."""

    ids: list[int]
    reply: Reply


class ChatFormatter:
    """Renders chat messages to ids with a tokenizer's chat template, incrementally.

    `tools`: OpenAI schemas the template lists (template-native tool calling); tool results then
    go back as one tool message per result, in the template's own format.
    """

    def __init__(self, tokenizer: Any, *, tools: list[dict] | None = None) -> None:
        self.tokenizer = tokenizer
        self.tools = tools or None
        self.name = template_name(tokenizer)
        if tokenizer.eos_token_id is None:
            raise TemplateError(f"{self.name}: the tokenizer has no eos_token; set the token "
                                "that ends assistant turns")
        self.eos_id: int = tokenizer.eos_token_id
        traits = measure(tokenizer, tools=self.tools, name=self.name)
        self.closing_text = traits.closing
        self.closing_ids = self._encode(self.closing_text)
        self.tool_messages = traits.tool_messages
        self._no_tools_reason = traits.no_tools_reason
        self.reasoning_field = traits.reasoning_field
        last = self._render([*FIRST, {"role": "assistant", "content": STAND_IN}], gen=False)
        end = last.find(STAND_IN) + len(STAND_IN)
        # What the template writes after the last assistant turn of a conversation (ChatML: "\n").
        self.after_eos: list[int] = self._encode(last[end + len(self.closing_text):]) \
            if last.startswith(self.closing_text, end) else []
        self._verify()

    @property
    def vocab_size(self) -> int:
        """|V| as the tokenizer counts it, added tokens included (ARPO normalises by ln |V|)."""
        return len(self.tokenizer.get_vocab())

    def encode(self, messages: list[Message], *, add_generation_prompt: bool = True) -> list[int]:
        """Ids of a whole conversation, rendered by the template (used for the first prompt)."""
        return self._encode(self._render(messages, gen=add_generation_prompt))

    def render_text(self, messages: list[Message], *, add_generation_prompt: bool = True) -> str:
        """The template's text for a whole conversation."""
        return self._render(messages, gen=add_generation_prompt)

    def prompt(self, messages: list[Message]) -> Prompt:
        """The first prompt of a conversation and how its reply is framed."""
        text = self._render(messages, gen=True)
        return Prompt(self._encode(text), self._reply(messages, text))

    def continuation(self, history: list[Message], messages: list[Message], *,
                     response_ids: list[int]) -> Prompt:
        """Ids to append after `response_ids` so the context goes on with `messages`.

        `history` is the conversation so far, ending with the assistant message of the response.
        The ids close the response if the engine stopped short of the closing, then add what the
        template writes after an assistant turn, the new messages, and the next turn's opening.
        """
        standin = stand_in(history)
        text = self._render([*standin, *messages], gen=True)
        start = locate(text, STAND_IN, "assistant turn", self.name) + len(STAND_IN)
        if not text.startswith(self.closing_text, start):
            raise TemplateError(
                f"{self.name}: after an assistant turn followed by {_roles(messages)} the template "
                f"writes {text[start:start + 40]!r}, not the closing {self.closing_text!r}")
        # Encoded from the eos on, the text after it tokenises as it does inside the whole render.
        eos_at = start + len(self.closing_text) - len(self.tokenizer.eos_token)
        tail = self._encode(text[eos_at:])
        if tail[:1] != [self.eos_id]:
            raise TemplateError(f"{self.name}: eos {self.tokenizer.eos_token!r} does not encode "
                                "to its own token inside the render")
        _, missing = self._split_closing(response_ids)
        return Prompt(missing + tail[1:], self._reply([*standin, *messages], text))

    def observation_messages(self, role: str, text: str,
                             tool_calls: list[dict] | None = None) -> list[Message]:
        """The messages that carry an observation to the model.

        With template-native tool calling (`tools` given) and a template that formats tool
        messages itself, each result is its own tool message with `name` and `tool_call_id`
        (entries as `ToolResult.to_info` writes them), so the results read as the model was
        trained on; otherwise the observation is one message with the parser's `text`.
        """
        if role == "tool" and self.tool_messages == "none":
            raise TemplateError(f"{self.name} cannot carry a tool-role observation: "
                                f"{self._no_tools_reason}; send observations as role 'user'")
        if role != "tool" or not tool_calls:
            return [{"role": role, "content": text}]
        for call in tool_calls:
            missing = {"id", "name", "result"} - set(call)
            if missing:
                raise ValueError(f"tool call record {call!r} lacks {sorted(missing)}; tool calls "
                                 "in step info are written by ToolResult.to_info")
        if self.tools and self.tool_messages == "native":
            return [{"role": "tool", "content": c["result"], "name": c["name"],
                     "tool_call_id": c["id"]} for c in tool_calls]
        # One message for all results; templates that need a tool's name (Hermes 2 Pro) or call
        # id (Mistral) get them when the results share one.
        message = {"role": "tool", "content": text}
        if len({c["name"] for c in tool_calls}) == 1:
            message["name"] = tool_calls[0]["name"]
        if len(tool_calls) == 1:
            message["tool_call_id"] = tool_calls[0]["id"]
        return [message]

    def assistant_message(self, content: str) -> Message:
        """The history message of a reply whose text (prefill included) is `content`."""
        if not self.reasoning_field or "</think>" not in content:
            return {"role": "assistant", "content": content}
        thought, _, answer = content.partition("</think>")
        return {"role": "assistant", "content": answer.lstrip("\n"),
                "reasoning_content": thought.rstrip("\n").split("<think>")[-1].lstrip("\n")}

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, end-of-turn tokens removed; for parsing, never for training."""
        return _decode(self.tokenizer, self._split_closing(ids)[0])

    def _split_closing(self, ids: list[int]) -> tuple[list[int], list[int]]:
        """(the response without its closing, the part of the closing it lacks)."""
        closing_ids = self.closing_ids
        for k in range(len(closing_ids), 0, -1):
            if list(ids[-k:]) == closing_ids[:k]:
                return list(ids[:-k]), closing_ids[k:]
        return list(ids), list(closing_ids)

    def _reply(self, messages: list[Message], prompt_text: str) -> Reply:
        # Where the conversation ends and the generation prompt starts (a template that writes
        # eos after a conversation without one, as Phi-3's does, leaves only the last content).
        bare = self._render(messages, gen=False)
        last = messages[-1]["content"]
        history_end = len(bare) if prompt_text.startswith(bare) else (
            prompt_text.rfind(last) + len(last) if isinstance(last, str) else 0)
        # What follows the measured reply must not change how the conversation before it renders
        # (a user message would make Qwen3 re-render earlier turns): a tool result, or nothing.
        followers = [[tool_result()]] if self.tool_messages != "none" else []
        for follower in [*followers, []]:
            closed = self._render([*messages, {"role": "assistant", "content": FRAME},
                                   *follower], gen=False)
            reply = reply_frame(prompt_text, closed, history_end=history_end, name=self.name)
            if reply is not None:
                return reply
        at = _first_difference(prompt_text, closed)
        raise TemplateError(
            f"{self.name} renders the conversation before an assistant reply differently once "
            f"the reply is there (the prompt has {prompt_text[max(0, at - 30):at + 30]!r} where "
            f"the conversation with the reply has {closed[max(0, at - 30):at + 30]!r}), so no "
            "context that grows by appending matches it")

    def _verify(self) -> None:
        """Play a probe episode; a template whose whole render then differs from the appended
        ids, other than by dropping earlier reasoning, cannot be extended by appending and is
        refused here, at start."""
        conversation = Conversation(self, list(FIRST), on_mismatch="keep")
        tool = self.tool_messages != "none"
        results = [[{"id": "call_probe0001", "name": "probe", "result": "Qz7First"},
                    {"id": "call_probe0002", "name": "probe", "result": "Qz7Second"}],
                   None, [{"id": "call_probe0003", "name": "probe", "result": "Qz7Third"}], None]
        for turn, calls in enumerate(results):
            role = "tool" if tool and calls else "user"
            text = "\n".join(c["result"] for c in calls) if calls else f"Qz7Observation{turn}"
            reply = conversation.reply.lead()
            prompt = _decode(self.tokenizer, conversation.ids) + reply
            if prompt.rfind("<think>") > prompt.rfind("</think>"):  # a thinking model closes it
                reply += "</think>"
            reply = self._encode(reply + f"Qz7Answer{turn}") + self.closing_ids
            conversation.add_turn(reply, self.observation_messages(role, text, calls))
            seen = skeleton(_decode(self.tokenizer, conversation.ids))
            whole = skeleton(self.render_text(conversation.messages))
            if seen != whole:
                at = _first_difference(seen, whole)
                raise TemplateError(
                    f"{self.name} renders earlier turns differently once later ones follow, so "
                    f"no context that grows by appending matches it: after {turn + 1} turns the "
                    f"appended context has {seen[max(0, at - 30):at + 30]!r} where a whole "
                    f"render has {whole[max(0, at - 30):at + 30]!r}")

    def _render(self, messages: list[Message], *, gen: bool) -> str:
        return render(self.tokenizer, messages, tools=self.tools, add_generation_prompt=gen)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))


@dataclass(frozen=True)
class Mismatch:
    """Where a whole re-render of the conversation first parted from the incremental ids.

    `rewrite`: the template's text differs, it rewrote history (`position` is a character
    index). `retokenize`: the text is the same but encoding it gives other ids than the
    engine produced (`position` is a token index).
    """

    turn: int
    kind: Literal["rewrite", "retokenize"]
    position: int
    incremental: str  # text around the difference, as the engine saw it
    rendered: str  # and as a whole re-render has it


class Conversation:
    """A multi-turn context whose ids grow by appending, checked against whole re-renders."""

    def __init__(self, formatter: ChatFormatter, messages: list[Message], *,
                 on_mismatch: MismatchPolicy = "keep") -> None:
        if on_mismatch not in MISMATCH_POLICIES:
            raise ValueError(
                f"template_mismatch={on_mismatch!r}: allowed are {list(MISMATCH_POLICIES)}")
        self.formatter = formatter
        self.on_mismatch = on_mismatch
        self.messages: list[Message] = list(messages)
        prompt = formatter.prompt(self.messages)
        self.ids: list[int] = prompt.ids
        self.reply: Reply = prompt.reply  # how the template frames the reply now awaited
        self.rewrite: Mismatch | None = None
        self.retokenized: Mismatch | None = None
        self.turns = 0

    def add_turn(self, response_ids: list[int], messages: list[Message]) -> list[int]:
        """Append a response and the messages that answer it; return the ids appended after it."""
        fmt = self.formatter
        self.messages.append(fmt.assistant_message(self.reply.content(fmt.decode(response_ids))))
        after = fmt.continuation(self.messages, messages, response_ids=response_ids)
        self.messages.extend(messages)
        self.ids = self.ids + list(response_ids) + after.ids
        self.reply = after.reply
        self.turns += 1
        self._check()
        return after.ids

    def fork(self) -> Conversation:
        """An independent copy that shares nothing mutable with this one."""
        twin = object.__new__(Conversation)
        twin.__dict__.update(self.__dict__)
        twin.messages = [dict(m) for m in self.messages]
        twin.ids = list(self.ids)
        return twin

    def _check(self) -> None:
        if self.rewrite is not None:  # once rewritten, every later render differs as well
            return
        fmt = self.formatter
        text = fmt.render_text(self.messages)
        seen = _decode(fmt.tokenizer, self.ids)
        if text != seen:
            at = _first_difference(seen, text)
            self.rewrite = Mismatch(self.turns - 1, "rewrite", at, seen[max(0, at - 24):at + 24],
                                    text[max(0, at - 24):at + 24])
            if self.on_mismatch == "fail":
                raise TemplateMismatch(
                    f"after turn {self.rewrite.turn} {fmt.name} renders the conversation "
                    f"differently from the ids the engine saw ({_evidence(self.rewrite)}); the "
                    "template rewrites history, e.g. drops earlier reasoning. Set "
                    "template_mismatch='keep' to train on the engine's ids.")
            return
        # Re-tokenisation drift is what appending ids exists to avoid: recorded, never fatal.
        if self.retokenized is None:
            rendered = list(fmt.tokenizer.encode(text, add_special_tokens=False))
            if rendered != self.ids:
                at = _first_difference(self.ids, rendered)
                window = slice(max(0, at - 4), at + 4)
                self.retokenized = Mismatch(
                    self.turns - 1, "retokenize", at, _decode(fmt.tokenizer, self.ids[window]),
                    _decode(fmt.tokenizer, rendered[window]))


def _evidence(mismatch: Mismatch) -> str:
    return (f"character {mismatch.position}: the engine saw {mismatch.incremental!r}, a whole "
            f"re-render gives {mismatch.rendered!r}")


def _roles(messages: list[Message]) -> str:
    return "/".join(m["role"] for m in messages) + " messages"


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _first_difference(a, b) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
