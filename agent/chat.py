"""Chat formatting that appends token ids instead of re-rendering a conversation.

A multi-turn context is built once from the first messages, then grows only by appending: the
engine's response ids exactly as generated, then the ids of the next messages (tool results,
observations) plus the opening of the next assistant turn. The trainer therefore sees the very
ids the engine saw, even for templates that rewrite earlier turns when rendered whole.

`Conversation` also re-renders the whole chat after each turn and compares, so that a template
that rewrites history (say, one that drops earlier <think> blocks) is noticed: either the
engine's ids are kept and the difference is recorded, or the run stops with the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Message = dict[str, Any]
MismatchPolicy = Literal["keep", "fail"]
MISMATCH_POLICIES: tuple[str, ...] = ("keep", "fail")

# A stand-in conversation whose rendering is the common prefix of every delta we compute.
_BASE: list[Message] = [
    {"role": "user", "content": "x"},
    {"role": "assistant", "content": "y"},
]


class TemplateError(ValueError):
    """The chat template cannot be extended incrementally (its renderings are not prefixes)."""


class TemplateMismatch(TemplateError):
    """A whole re-render of the conversation differs from the ids the engine saw."""


class ChatFormatter:
    """Renders chat messages to ids with a tokenizer's chat template, incrementally."""

    def __init__(self, tokenizer: Any, *, tools: list[dict] | None = None) -> None:
        self.tokenizer = tokenizer
        self.tools = tools or None
        eos = tokenizer.eos_token_id
        if eos is None:
            raise TemplateError("the tokenizer has no eos_token; set one that ends assistant turns")
        self.eos_id: int = eos
        base = self._render(_BASE, add_generation_prompt=False)
        if self.eos_id not in base:
            raise TemplateError(
                f"the chat template does not end assistant turns with eos "
                f"{tokenizer.eos_token!r}; generation could never stop at a turn boundary"
            )
        last_eos = len(base) - 1 - base[::-1].index(self.eos_id)
        self._base_ids = base
        # What the template writes after an assistant's end-of-turn token (ChatML: a newline).
        self.after_eos: list[int] = base[last_eos + 1 :]

    @property
    def vocab_size(self) -> int:
        """|V| as the tokenizer counts it, added tokens included (ARPO normalises by ln |V|)."""
        return len(self.tokenizer.get_vocab())

    def encode(self, messages: list[Message], *, add_generation_prompt: bool = True) -> list[int]:
        """Ids of a whole conversation, rendered by the template (used for the first prompt)."""
        return self._render(messages, add_generation_prompt=add_generation_prompt)

    def render_text(self, messages: list[Message], *, add_generation_prompt: bool = True) -> str:
        """The template's text for a whole conversation."""
        return self.tokenizer.apply_chat_template(
            messages, tools=self.tools, add_generation_prompt=add_generation_prompt, tokenize=False
        )

    def continuation(self, messages: list[Message], *, response_ids: list[int]) -> list[int]:
        """Ids to append after an assistant response so the context goes on with `messages`.

        The result closes the response if the engine stopped without eos, adds what the template
        writes between turns, the new messages, and the opening of the next assistant turn.
        """
        full = self._render(_BASE + messages, add_generation_prompt=True)
        if full[: len(self._base_ids)] != self._base_ids:
            raise TemplateError(
                "the chat template renders earlier messages differently once new ones follow; "
                "incremental templating cannot append to it"
            )
        closing = [] if response_ids and response_ids[-1] == self.eos_id else [self.eos_id]
        return closing + self.after_eos + full[len(self._base_ids) :]

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, end-of-turn token removed; for parsing actions, never for training."""
        if ids and ids[-1] == self.eos_id:
            ids = ids[:-1]
        return _decode(self.tokenizer, ids)

    def _render(self, messages: list[Message], *, add_generation_prompt: bool) -> list[int]:
        text = self.render_text(messages, add_generation_prompt=add_generation_prompt)
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
        self.ids: list[int] = formatter.encode(self.messages)
        self.rewrite: Mismatch | None = None
        self.retokenized: Mismatch | None = None
        self.turns = 0

    def add_turn(self, response_ids: list[int], messages: list[Message]) -> list[int]:
        """Append a response and the messages that answer it; return the ids appended after it."""
        self.messages.append(
            {"role": "assistant", "content": self.formatter.decode(response_ids)})
        self.messages.extend(messages)
        after = self.formatter.continuation(messages, response_ids=response_ids)
        self.ids = self.ids + list(response_ids) + after
        self.turns += 1
        self._check()
        return after

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
                    f"after turn {self.rewrite.turn} the chat template renders the conversation "
                    f"differently from the ids the engine saw (character {at}: the engine saw "
                    f"{self.rewrite.incremental!r}, a whole re-render gives "
                    f"{self.rewrite.rendered!r}); the template rewrites history, e.g. drops "
                    "earlier reasoning. Set template_mismatch='keep' to train on the engine's ids."
                )
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


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _first_difference(a, b) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
