"""Incremental templating, with two chat templates: the tiny ChatML one, and a Qwen3-style one
that drops the reasoning of earlier assistant turns when a conversation is rendered whole."""

from __future__ import annotations

import copy

import pytest
from turnwise.agent.chat import ChatFormatter, Conversation, TemplateError, TemplateMismatch

# Written for these tests: ChatML, except that an assistant message before the last user
# message loses everything up to its closing </think>, as Qwen3's template does.
THINK_DROPPING_TEMPLATE = (
    "{%- set ns = namespace(last_user=-1) -%}"
    "{%- for m in messages -%}{%- if m['role'] == 'user' -%}"
    "{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'assistant' -%}"
    "{%- set text = m['content'] -%}"
    "{%- if loop.index0 < ns.last_user and '</think>' in text -%}"
    "{%- set text = text.split('</think>')[-1] -%}{%- endif -%}"
    "{{- '<|im_start|>assistant\\n' + text + '<|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

FIRST = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "look"}]


@pytest.fixture()
def thinking_tokenizer(tokenizer):
    twin = copy.deepcopy(tokenizer)
    twin.chat_template = THINK_DROPPING_TEMPLATE
    return twin


def response(tokenizer, text):
    """Ids as an engine might produce them: the canonical encoding, closed with eos."""
    return tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]


def test_continuation_equals_whole_render(tokenizer):
    fmt = ChatFormatter(tokenizer)
    context = fmt.encode(FIRST)
    reply = response(tokenizer, "<action>go to desk 1</action>")
    observation = [{"role": "user", "content": "You arrive at desk 1."}]
    context += reply + fmt.continuation(observation, response_ids=reply)
    whole = fmt.encode(FIRST + [{"role": "assistant", "content": "<action>go to desk 1</action>"}]
                       + observation)
    assert context == whole


def test_continuation_closes_a_response_cut_short(tokenizer):
    fmt = ChatFormatter(tokenizer)
    cut = tokenizer.encode("<action>go to", add_special_tokens=False)  # no eos: hit max_tokens
    ids = fmt.continuation([{"role": "tool", "content": "ok"}], response_ids=cut)
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


def test_think_dropping_template_extends_incrementally(thinking_tokenizer):
    fmt = ChatFormatter(thinking_tokenizer)
    reply = response(thinking_tokenizer, "<think>the desk</think><action>go to desk 1</action>")
    observation = [{"role": "user", "content": "You arrive at desk 1."}]
    ids = fmt.continuation(observation, response_ids=reply)
    assert thinking_tokenizer.decode(ids) == (
        "\n<|im_start|>user\nYou arrive at desk 1.<|im_end|>\n<|im_start|>assistant\n")


def test_history_rewrite_is_kept_with_keep(thinking_tokenizer):
    conv = Conversation(ChatFormatter(thinking_tokenizer), FIRST, on_mismatch="keep")
    prompt = list(conv.ids)
    reply = response(thinking_tokenizer, "<think>the desk</think><action>go to desk 1</action>")
    after = conv.add_turn(reply, [{"role": "user", "content": "You arrive at desk 1."}])
    assert conv.ids == prompt + reply + after  # the reasoning the engine saw stays in context
    rendered = thinking_tokenizer.decode(ChatFormatter(thinking_tokenizer).encode(conv.messages))
    assert "<think>" not in rendered  # while a whole re-render would have dropped it
    assert conv.rewrite is not None and conv.rewrite.turn == 0
    assert "<think>" in conv.rewrite.incremental and "<think>" not in conv.rewrite.rendered


def test_history_rewrite_fails_loudly_with_fail(thinking_tokenizer):
    conv = Conversation(ChatFormatter(thinking_tokenizer), FIRST, on_mismatch="fail")
    reply = response(thinking_tokenizer, "<think>the desk</think><action>go to desk 1</action>")
    with pytest.raises(TemplateMismatch, match="rewrites history"):
        conv.add_turn(reply, [{"role": "user", "content": "You arrive at desk 1."}])


def test_unknown_mismatch_policy_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="template_mismatch='ignore'"):
        Conversation(ChatFormatter(tokenizer), FIRST, on_mismatch="ignore")


def test_fork_shares_nothing_mutable(tokenizer):
    conv = Conversation(ChatFormatter(tokenizer), FIRST)
    twin = conv.fork()
    twin.add_turn(response(tokenizer, "look"), [{"role": "user", "content": "nothing"}])
    assert len(conv.messages) == 2 and len(twin.messages) == 4
    assert len(twin.ids) > len(conv.ids)
