"""What a chat template writes around an assistant turn, found by rendering probe conversations.

A chat template is Jinja code that can be run but not read, so what it does at a turn boundary is
measured: an assistant message whose content is a sentinel is rendered in the conversation, and
the text around the sentinel says where the turn ends (`closing`), what a generation prompt
already writes of the reply (`Reply.prefill`), and what every assistant message starts with
(`Reply.header`). Everything here is text: `agent.chat` turns it into ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]

# Sentinels: no whitespace (templates trim), no "</think>" (templates split on it), no role name.
STAND_IN = "Qz7Reply"  # content of the assistant turn whose end is located
ARGUMENT = "Qz7Argument"  # an argument of a structured tool call
PROBE_NEXT = "Qz7Next"  # a message that follows it
FRAME = "Qz7Frame"  # content of the reply whose frame (prefill, header) is measured
PROBE_RESULT = "Qz7Result"  # a tool result

# Reasoning blocks: <think> (Qwen, DeepSeek, GLM, Nemotron, LFM2.5) and Gemma 4's thought channel.
_THINK = re.compile(r"<think>.*?</think>|<\|channel>.*?<channel\|>", re.DOTALL)
_SPACE = re.compile(r"\s+")
# Markers that tell template families apart, for messages only (never for behaviour).
_FAMILIES = (
    ("<|channel|>", "gpt-oss harmony"), ("<|observation|>", "GLM-4"), ("<｜Assistant｜>", "DeepSeek"),
    ("[INST]", "Mistral [INST]"), ("<|start_header_id|>", "Llama 3"), ("<|turn>", "Gemma 4"),
    ("<start_of_turn>", "Gemma"), ("<|START_OF_TURN_TOKEN|>", "Cohere"), ("<|im_start|>", "ChatML"),
    ("<|assistant|>", "Phi-3"),
)


class TemplateError(ValueError):
    """The chat template cannot be extended by appending ids; the message names it and why."""


@dataclass(frozen=True)
class Reply:
    """How the template frames the next assistant reply.

    `prefill`: what the generation prompt already writes of the reply (DeepSeek-R1's `<think>\\n`);
    `header`: what the template writes at the start of every assistant message (Mistral's space),
    which the model generates itself when the generation prompt does not write it.
    """

    prefill: str = ""
    header: str = ""

    def content(self, generated: str) -> str:
        """The assistant message content that renders as the prompt's tail plus `generated`."""
        text = self.prefill + generated
        return text.removeprefix(self.header)

    def lead(self) -> str:
        """What the model generates before plain content: Mistral's space, Qwen3.5's empty
        thought after the prompt's `<think>`; else ''."""
        return self.header[len(self.prefill):] if self.header.startswith(self.prefill) else ""


def template_name(tokenizer: Any) -> str:
    """A name for messages: the model folder and the template's family."""
    source = getattr(tokenizer, "chat_template", None)
    source = source if isinstance(source, str) else ""
    family = next((f for marker, f in _FAMILIES if marker in source), "unrecognised family")
    return f"the chat template of {getattr(tokenizer, 'name_or_path', '') or 'the tokenizer'} " \
           f"({family})"


def refused_family(tokenizer: Any) -> str | None:
    """Why turnwise refuses this template's family outright, or None.

    Decided per family where no probe can tell: gpt-oss's harmony format puts a reply's channels
    (analysis, commentary, final) in structured fields that its template renders and whose markup
    it rejects inside content, so the model's raw generated text cannot go back into history.
    """
    source = getattr(tokenizer, "chat_template", None)
    if isinstance(source, str) and "<|channel|>" in source and "<|message|>" in source:
        return ("it is gpt-oss's harmony format, which renders a reply's channels (analysis, "
                "commentary, final) from the structured fields `thinking` and `tool_calls`, "
                "rejects channel markup inside content and closes history turns with <|end|> "
                "where generation stops at <|return|> or <|call|>; the model's generated text "
                "cannot be put back into the conversation as it was generated")
    return None


def render(tokenizer: Any, messages: list[Message], *, tools: list[dict] | None,
           add_generation_prompt: bool) -> str:
    """The template's text for `messages`; a template that raises gives a TemplateError."""
    try:
        return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                             add_generation_prompt=add_generation_prompt)
    except Exception as exc:  # Jinja's raise_exception, a missing key, a type error
        roles = [m["role"] for m in messages]
        raise TemplateError(f"{template_name(tokenizer)} cannot render a conversation with roles "
                            f"{roles}: {type(exc).__name__}: {exc}") from exc


def stand_in(history: list[Message]) -> list[Message]:
    """`history` with its last message (an assistant reply) replaced by the stand-in."""
    return [*history[:-1], {"role": "assistant", "content": STAND_IN}]


def locate(text: str, sentinel: str, what: str, name: str) -> int:
    """Index of the one occurrence of `sentinel` in `text`."""
    count = text.count(sentinel)
    if count != 1:
        raise TemplateError(
            f"{name} {'drops' if count == 0 else 'repeats'} the content of an {what} given as "
            f"plain text ({count} copies in the render), so the model's text cannot be put back "
            "into the conversation")
    return text.find(sentinel)


def closing(text: str, *, eos: str, special: set[str], name: str, after: str) -> str:
    """What the template writes between the stand-in's content and the end of its eos.

    Only special tokens may stand between (Cohere 2's `<|END_RESPONSE|>`): anything else means
    the turn's end depends on what follows it (GLM opens the next turn instead of closing).
    """
    start = locate(text, STAND_IN, "assistant turn", name) + len(STAND_IN)
    end = text.find(eos, start)
    between = text[start:end] if end >= 0 else text[start:start + 60]
    if end < 0 or not _only_special(between, special):
        raise TemplateError(
            f"{name}: eos {eos!r} does not directly follow the assistant's content when {after} "
            f"follows (the template writes {between!r} after it), so a generation that stops at "
            "eos does not end the turn; set the tokenizer's eos_token to the token that closes "
            "assistant turns")
    return text[start:end + len(eos)]


def _only_special(text: str, special: set[str]) -> bool:
    for token in sorted(special, key=len, reverse=True):
        text = text.replace(token, "")
    return text == ""


def reply_frame(prompt: str, closed: str, *, history_end: int, name: str) -> Reply | None:
    """The Reply for a generation prompt `prompt`, given `closed`, the same conversation rendered
    with a reply of content FRAME (and maybe a message after it).

    `history_end` is where the last message's content ends in `prompt`. When `closed` renders
    what comes before it differently, the frame is measured only if both end with the same
    text before the reply (a template that respaces a tool result once a reply follows): None
    when they do not.
    """
    at = locate(closed, FRAME, "assistant turn", name)
    common = _common_prefix(prompt, closed[:at])
    if common < history_end:
        same_end = _common_prefix(prompt[::-1], closed[:at][::-1])
        return Reply() if same_end > 0 else None
    # A thought the prompt opens belongs to the reply's content, which templates parse for it.
    opened = prompt.rfind("<think>", history_end, common)
    if opened >= 0 and not prompt[opened + len("<think>"):common].strip():
        common = opened
    return Reply(prefill=prompt[common:], header=closed[common:at])


def skeleton(text: str) -> str:
    """`text` without reasoning blocks and whitespace: what a template may drop or respace in
    earlier turns and still be extended by appending (the rewrite is then recorded at run time)."""
    return _SPACE.sub("", _THINK.sub("", text))


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)
