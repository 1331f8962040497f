"""Incremental templating: the tiny ChatML template, then Qwen3's real template (from the
installed `trl`) on the tiny tokenizer, which has Qwen's markup as single tokens."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import trl
from turnwise.agent.chat import ChatFormatter, Conversation, TemplateError, TemplateMismatch

TRL = Path(trl.__file__).parent / "chat_templates"
FIRST = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "look"}]
THOUGHT = "<think>\nthe desk\n</think>\n\n<action>go to desk 1</action>"


@pytest.fixture()
def qwen3(tokenizer):
    twin = copy.deepcopy(tokenizer)
    twin.chat_template = (TRL / "qwen3.jinja").read_text()
    return twin


def response(tokenizer, text):
    """Ids as an engine might produce them: the canonical encoding, closed with eos."""
    return tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]


def test_continuation_equals_whole_render(tokenizer):
    fmt = ChatFormatter(tokenizer)
    context = fmt.encode(FIRST)
    reply = response(tokenizer, "<action>go to desk 1</action>")
    history = [*FIRST, {"role": "assistant", "content": "<action>go to desk 1</action>"}]
    observation = [{"role": "user", "content": "You arrive at desk 1."}]
    context += reply + fmt.continuation(history, observation, response_ids=reply).ids
    assert context == fmt.encode(history + observation)


def test_continuation_closes_a_response_cut_short(tokenizer):
    fmt = ChatFormatter(tokenizer)
    cut = tokenizer.encode("<action>go to", add_special_tokens=False)  # no eos: hit max_tokens
    history = [*FIRST, {"role": "assistant", "content": "<action>go to"}]
    ids = fmt.continuation(history, [{"role": "tool", "content": "ok"}], response_ids=cut).ids
    assert ids[0] == fmt.eos_id  # the turn is closed for the model, as context (mask 0)
    assert tokenizer.decode(ids) == "<|im_end|>\n<|im_start|>tool\nok<|im_end|>\n<|im_start|>assistant\n"


def test_decode_drops_only_the_end_of_turn(tokenizer):
    fmt = ChatFormatter(tokenizer)
    ids = tokenizer.encode("<action>look</action>", add_special_tokens=False)
    assert fmt.decode(ids + [fmt.eos_id]) == "<action>look</action>"


def test_template_without_eos_is_rejected():
    class NoEos:
        eos_token_id = None

    with pytest.raises(TemplateError, match="eos"):
        ChatFormatter(NoEos())


def test_chatml_conversation_matches_the_whole_render_turn_after_turn(tokenizer):
    conv = Conversation(ChatFormatter(tokenizer), FIRST, on_mismatch="fail")
    for turn in range(3):
        reply = response(tokenizer, f"<action>open drawer {turn}</action>")
        conv.add_turn(reply, [{"role": "tool", "content": f"drawer {turn} is open"}])
        assert conv.ids == ChatFormatter(tokenizer).encode(conv.messages)
    assert conv.rewrite is None and conv.retokenized is None


def test_non_canonical_engine_ids_are_kept_and_recorded(tokenizer):
    """An engine may emit ids that re-encoding the same text would merge: keep the engine's."""
    fmt = ChatFormatter(tokenizer)
    conv = Conversation(fmt, FIRST, on_mismatch="fail")
    text = "open drawer 1"
    spelled = [i for ch in text for i in tokenizer.encode(ch, add_special_tokens=False)]
    assert spelled != tokenizer.encode(text, add_special_tokens=False)  # really non-canonical
    prompt = list(conv.ids)
    reply = spelled + [tokenizer.eos_token_id]
    after = conv.add_turn(reply, [{"role": "user", "content": "it is open"}])
    assert conv.ids == prompt + reply + after  # exactly what the engine saw, plus the new turn
    assert conv.rewrite is None  # the text is identical, so "fail" does not fire
    assert conv.retokenized is not None and conv.retokenized.turn == 0
    assert conv.retokenized.position == len(prompt)  # parted where the response starts


def test_qwen3_keeps_reasoning_through_a_tool_loop(qwen3):
    """Issue 36, 1: Qwen3 writes the last reply with an empty thought and earlier ones without,
    so the turn end is located, not taken as a prefix; within a tool loop it renders exactly."""
    fmt = ChatFormatter(qwen3)
    conv = Conversation(fmt, FIRST, on_mismatch="fail")
    for turn in range(3):
        reply = response(qwen3, THOUGHT.replace("desk 1", f"desk {turn}"))
        after = conv.add_turn(reply, [{"role": "tool", "content": f"You arrive at desk {turn}."}])
        assert qwen3.decode(after) == (f"\n<|im_start|>user\n<tool_response>\nYou arrive at desk "
                                       f"{turn}.\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    assert conv.ids == fmt.encode(conv.messages) and conv.rewrite is None


def test_qwen3_history_rewrite_is_kept_with_keep(qwen3):
    conv = Conversation(ChatFormatter(qwen3), FIRST, on_mismatch="keep")
    prompt = list(conv.ids)
    reply = response(qwen3, THOUGHT)
    after = conv.add_turn(reply, [{"role": "user", "content": "You arrive at desk 1."}])
    assert conv.ids == prompt + reply + after  # the reasoning the engine saw stays in context
    rendered = qwen3.decode(ChatFormatter(qwen3).encode(conv.messages))
    assert "the desk" not in rendered  # while a whole re-render drops it before a new query
    assert conv.rewrite is not None and conv.rewrite.turn == 0
    assert "<think>" in conv.rewrite.incremental and "<think>" not in conv.rewrite.rendered


def test_qwen3_history_rewrite_fails_loudly_with_fail(qwen3):
    conv = Conversation(ChatFormatter(qwen3), FIRST, on_mismatch="fail")
    with pytest.raises(TemplateMismatch, match=r"after turn 0 the chat template of .* \(ChatML\) "
                                               "renders the conversation differently"):
        conv.add_turn(response(qwen3, THOUGHT), [{"role": "user", "content": "You arrive."}])


def test_unknown_mismatch_policy_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="template_mismatch='ignore'"):
        Conversation(ChatFormatter(tokenizer), FIRST, on_mismatch="ignore")


def test_fork_shares_nothing_mutable(tokenizer):
    conv = Conversation(ChatFormatter(tokenizer), FIRST)
    twin = conv.fork()
    twin.add_turn(response(tokenizer, "look"), [{"role": "user", "content": "nothing"}])
    assert len(conv.messages) == 2 and len(twin.messages) == 4
    assert len(twin.ids) > len(conv.ids)
