"""Incremental templating with the real chat templates: every template TRL 1.16.0 ships under
`trl/chat_templates/`, vLLM's hermes and Mistral tool templates (copies of their behaviour in
tests/chat_templates/, as the vLLM wheel does not ship its examples) and Hermes 2 Pro's tool
messages. Each drives a multi-turn episode (tool calls, tool results, <think> blocks, user turns)
through `Conversation` with a tokenizer trained here in which every marker of the template is one
token; the verdict of each template is pinned in VERDICTS and documented in
docs/chat_templates.md.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import trl
from turnwise.agent.chat import ChatFormatter, Conversation, TemplateError
from turnwise.agent.chat_template import skeleton

TRL = Path(trl.__file__).parent / "chat_templates"
OURS = Path(__file__).parent / "chat_templates"

# (eos, bos) by template family, as the models' tokenizers set them; eos is the token that ends
# an assistant turn (for GLM one of its stop tokens, <|user|>).
TOKENS = {
    "cohere": ("<|END_OF_TURN_TOKEN|>", "<BOS_TOKEN>"),
    "deepseek": ("<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>"),
    "diffusion_gemma": ("<turn|>", "<bos>"), "gemma4": ("<turn|>", "<bos>"),
    "gemma": ("<end_of_turn>", "<bos>"),
    "glm4moe": ("<|user|>", None),
    "gptoss": ("<|return|>", "<|startoftext|>"),
    "idefics3": ("<end_of_utterance>", "<|begin_of_text|>"),
    "smolvlm": ("<end_of_utterance>", "<|im_start|>"),
    "lfm2": ("<|im_end|>", "<|startoftext|>"),
    "llama3": ("<|eot_id|>", "<|begin_of_text|>"),
    "llava_next": ("</s>", "<s>"), "mistral": ("</s>", "<s>"),
    "muse_glimmer": ("<|eot|>", "<|begin_of_text|>"),
    "phi3": ("<|end|>", "<s>"),
    "qwen": ("<|im_end|>", None), "nemotron": ("<|im_end|>", None), "hermes": ("<|im_end|>", None),
}
# Markup a template writes: <|x|>, <｜x｜>, [X], [/X], <|x>, <x|>, <x>, </x>, <|"|>, [gMASK].
MARKUP = re.compile(r"<\|[^|<>\s'\"]{1,40}\|>|<｜[^｜]{1,40}｜>|\[/?[A-Z_]{3,20}\]|<\|[a-z_]{1,20}>"
                    r"|<[a-z_]{1,20}\|>|</?[a-z_]{2,20}>|<\|\"\|>|\[gMASK\]")

# What each template does with and without `tools` (template-native tool calling):
#   "exact": the appended ids equal a whole render after every turn, with and without thinking;
#   "keep": they do except that the template drops or respaces earlier reasoning, which is
#       recorded as a rewrite (the run goes on with template_mismatch=keep, stops with fail);
#   "rewrites": every reply with reasoning is a recorded rewrite, as the template renders reasoning
#       from a field into a channel and cannot take the generated channel text back;
#   anything else: a phrase of the error that refuses the template at start.
NO_SYSTEM = "System role not supported"
NO_TOOLS_LISTED = "does not list the tools"
NO_TOOL_RESULTS = "cannot carry tool results"
VISION_ONLY = "drops the content of an assistant turn given as plain text"
HARMONY = "gpt-oss's harmony format"
MOVES_SYSTEM = "differently once the reply is there"
GLM_EOS = "does not directly follow the assistant's content when a tool message follows"
VERDICTS: dict[str, tuple[str, str]] = {  # template: (without tools, with tools)
    "cohere": ("exact", NO_TOOLS_LISTED), "cohere2": ("exact", NO_TOOLS_LISTED),
    "deepseek_r1_distill": ("keep", NO_TOOLS_LISTED), "deepseekv3": ("keep", NO_TOOLS_LISTED),
    "diffusion_gemma": ("keep", NO_TOOL_RESULTS),
    "gemma": (NO_SYSTEM, NO_SYSTEM), "gemma3": ("exact", NO_TOOLS_LISTED),
    "gemma4": ("exact", NO_TOOL_RESULTS), "gemma4_v2": ("exact", "exact"),
    "gemma4_v3": ("exact", NO_TOOL_RESULTS), "gemma4_v4": ("exact", NO_TOOL_RESULTS),
    "gemma4_v5": ("keep", NO_TOOL_RESULTS),
    "glm4moe": (GLM_EOS, GLM_EOS),
    "gptoss": (HARMONY, HARMONY),
    "idefics3": (VISION_ONLY, NO_TOOLS_LISTED),
    "lfm2": ("exact", "exact"), "lfm2_v2": ("exact", "exact"),
    "lfm2_2_5": ("keep", "keep"), "lfm2_2_5_v2": ("keep", "keep"), "lfm2_2_5_vl": ("keep", "keep"),
    "llama3": ("exact", NO_TOOLS_LISTED), "llama3_1": ("exact", "exact"),
    "llama3_2": ("exact", "exact"),
    "llava_next": ("has no attribute 'text'", "has no attribute 'text'"),
    "muse_glimmer": ("rewrites", "rewrites"),
    "nemotron_3_nano": ("keep", "keep"), "nemotron_3_super": ("keep", "keep"),
    "nemotron_3_ultra": ("keep", "keep"), "nemotron_3_5_lightning": ("keep", "keep"),
    "phi3": ("exact", NO_TOOLS_LISTED), "phi3_5": ("exact", NO_TOOLS_LISTED),
    "qwen2_5": ("exact", "exact"), "qwen2_5_vl": ("exact", NO_TOOLS_LISTED),
    "qwen3": ("keep", "keep"), "qwen3_instruct_2507": ("exact", "exact"),
    "qwen3_5_think": ("keep", "keep"), "qwen3_5_nothink": ("keep", "keep"),
    "qwen3_6": ("keep", "keep"), "qwen3_8": ("exact", "exact"),
    "qwen3_vl": ("exact", "exact"),
    "smolvlm": (VISION_ONLY, NO_TOOLS_LISTED),
    # tests/chat_templates: vLLM's hermes and Mistral templates, Hermes 2 Pro's tool messages
    "hermes_vllm": ("keep", "keep"), "hermes_2_pro": ("exact", "exact"),
    "mistral_vllm": (MOVES_SYSTEM, MOVES_SYSTEM),
}
# TRL's training variants (generation markers for SFT masks, prefix-preserving patches) behave
# as their originals except where listed.
TRAINING = {"glm4moe_training": ("keep", "ends a turn that calls tools with"),
            "deepseek_r1_distill_training": ("exact", NO_TOOLS_LISTED),
            "qwen3_training": ("exact", "exact"), "qwen3_5_think_training": ("exact", "exact"),
            "qwen3_5_nothink_training": ("exact", "exact"), "qwen3_6_training": ("exact", "exact"),
            "qwen3_8_training": ("exact", "exact")}

SEARCH = {"type": "function", "function": {
    "name": "search", "description": "Search the web.",
    "parameters": {"type": "object", "properties": {
        "query": {"type": "string", "description": "the search query"}}, "required": ["query"]}}}
FIRST = [{"role": "system", "content": "Answer questions; search when unsure."},
         {"role": "user", "content": "What is the capital of France?"}]
CALL = '<tool_call>\n{"name": "search", "arguments": {"query": "%s"}}\n</tool_call>'
# (reasoning, reply, observation): a tool loop, a user turn, another tool call, a final answer.
SCRIPT = [
    ("I should search.", CALL % "capital of France",
     [{"id": "call_0a1b2c3d4e5f", "name": "search", "result": "Paris is the capital of France."},
      {"id": "call_5f4e3d2c1b0a", "name": "search", "result": "France is in Europe."}]),
    ("The result says Paris.", "The capital is Paris.", "Invalid response: no <answer> found"),
    ("Check the population too.", CALL % "Paris population",
     [{"id": "call_00112233aabb", "name": "search", "result": "Paris has 2.1 million people."}]),
    ("Done.", "<answer>Paris</answer>", "Answer recorded."),
]


def text_of(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def all_templates() -> dict[str, Path]:
    return {p.stem: p for p in [*sorted(TRL.glob("*.jinja")), *sorted(OURS.glob("*.jinja"))]}


def verdict(stem: str, tools: bool) -> str:
    pair = TRAINING.get(stem) or VERDICTS.get(stem.removesuffix("_training"))
    return pair[tools]


@pytest.fixture(scope="session")
def base_tokenizer(tmp_path_factory):
    """A byte-level BPE trained here, saved and loaded back through `from_pretrained`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    corpus = [FIRST[0]["content"], FIRST[1]["content"], *(r + " " + a for r, a, _ in SCRIPT),
              "Paris is the capital of France. France is in Europe. 2.1 million people."]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    folder = tmp_path_factory.mktemp("bpe")
    PreTrainedTokenizerFast(tokenizer_object=bpe).save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def tokenizer_for(base, stem: str, *, eos: str | None = None):
    """`base` with `stem`'s chat template; each of its markers, its eos and bos one special token."""
    source = all_templates()[stem].read_text()
    family = max((k for k in TOKENS if stem.startswith(k)), key=len)
    default_eos, bos = TOKENS[family]
    eos = eos or default_eos
    specials = sorted(set(MARKUP.findall(source)) | {eos} | ({bos} if bos else set()))
    tokenizer = copy.deepcopy(base)
    tokenizer.add_special_tokens({"additional_special_tokens": specials, "eos_token": eos,
                                  **({"bos_token": bos} if bos else {})})
    tokenizer.chat_template = source
    tokenizer.name_or_path = stem
    return tokenizer


def model_reply(fmt: ChatFormatter, conv: Conversation, answer: str,
                reasoning: str | None) -> list[int]:
    """Ids a model trained on this template generates: the template's own rendering of the reply
    (reasoning as the structured field its template reads) after the prompt, closing included.
    A template that renders no reasoning gets it as a raw <think> block, as distilled models
    write it."""
    prompt = text_of(fmt.tokenizer, conv.ids)
    if prompt.rstrip().endswith("</think>"):  # the prompt closed the thought: thinking is off
        reasoning = None
    message = {"role": "assistant", "content": answer}
    if reasoning:
        message.update(reasoning_content=reasoning, thinking=reasoning, reasoning=reasoning)
    text = fmt.render_text([*conv.messages, message], add_generation_prompt=False)
    end = text.rfind(answer) + len(answer)
    generated = text[len(prompt):end] if text.startswith(prompt) else None
    if generated is None or (reasoning and reasoning not in generated):
        lead = prompt + conv.reply.lead()
        opened = lead.rfind("<think>") > lead.rfind("</think>")
        thought = (f"{reasoning}\n</think>\n\n" if opened else f"<think>\n{reasoning}\n</think>\n\n"
                   ) if reasoning else ("</think>" if opened else "")
        generated = conv.reply.lead() + thought + answer
    return fmt.tokenizer.encode(generated, add_special_tokens=False) + fmt.closing_ids


def play(fmt: ChatFormatter, *, think: bool, policy: str = "keep") -> tuple[Conversation, list]:
    """The SCRIPT through a Conversation; returns it and each turn's (response, appended) ids."""
    conv = Conversation(fmt, FIRST, on_mismatch=policy)
    prompt, turns = list(conv.ids), []
    for reasoning, answer, observation in SCRIPT[:3]:
        response = model_reply(fmt, conv, answer, reasoning if think else None)
        if isinstance(observation, list) and fmt.tool_messages != "none":
            text = "\n".join(f"<tool_response>\n{c['result']}\n</tool_response>"
                             for c in observation)
            messages = fmt.observation_messages("tool", text, observation)
        else:
            text = observation if isinstance(observation, str) else observation[0]["result"]
            messages = fmt.observation_messages("user", text)
        turns.append((response, conv.add_turn(response, messages)))
    assert conv.ids == prompt + [i for response, after in turns for i in response + after]
    return conv, turns


@pytest.mark.parametrize("tools", [False, True], ids=["plain", "tools"])
@pytest.mark.parametrize("stem", sorted(all_templates()))
def test_real_template_is_token_exact_or_refused_at_start(base_tokenizer, stem, tools):
    tokenizer = tokenizer_for(base_tokenizer, stem)
    expected = verdict(stem, tools)
    if expected not in ("exact", "keep", "rewrites"):
        with pytest.raises(TemplateError, match=re.escape(expected)) as refused:
            ChatFormatter(tokenizer, tools=[SEARCH] if tools else None)
        assert f"the chat template of {stem} " in str(refused.value)  # names the template
        return
    fmt = ChatFormatter(tokenizer, tools=[SEARCH] if tools else None)
    rewrites = []
    for think in (False, True):
        conv, turns = play(fmt, think=think)
        seen = text_of(tokenizer, conv.ids)
        whole = fmt.render_text(conv.messages)
        # The engine's response ids are in the context as generated; what follows each is the
        # template's own text for the closing and the next messages.
        for response, _ in turns:
            assert text_of(tokenizer, response) in seen
        if expected != "rewrites":
            assert skeleton(seen) == skeleton(whole)  # at most reasoning and spacing differ
        rewrites.append(conv.rewrite)
        if conv.rewrite is None:
            assert seen == whole and conv.ids == tokenizer.encode(whole, add_special_tokens=False)
    if expected == "exact":
        assert rewrites == [None, None]
    elif expected == "keep":
        assert rewrites[1] is not None  # the reasoning of an earlier turn is dropped or respaced
    else:
        assert rewrites[0] is None and rewrites[1] is not None


def test_every_shipped_template_has_a_verdict():
    shipped = {p.stem for p in TRL.glob("*.jinja")}
    assert len(shipped) == 72  # trl==1.16.0
    assert {s for s in shipped if s not in TRAINING and s.removesuffix("_training")
            not in VERDICTS} == set()


# ---------------------------------------------------------------- the bugs of issue 36


def test_glm_with_a_stop_token_that_opens_the_next_turn_is_refused(base_tokenizer):
    """GLM closes no turn: its stop tokens open the next one (<|user|>, <|observation|>), so the
    eos does not directly follow the reply before a tool result; the stand-in's own text must
    never be appended as it once was."""
    for eos in ("<|user|>", "<|endoftext|>"):
        with pytest.raises(TemplateError, match=r"the chat template of glm4moe \(GLM-4\): eos "
                                                 f"{re.escape(repr(eos))} does not directly follow"):
            ChatFormatter(tokenizer_for(base_tokenizer, "glm4moe", eos=eos))


def test_gpt_oss_is_refused_naming_its_format(base_tokenizer):
    with pytest.raises(TemplateError, match=r"turnwise refuses the chat template of gptoss "
                                             r"\(gpt-oss harmony\): it is gpt-oss's harmony"):
        ChatFormatter(tokenizer_for(base_tokenizer, "gptoss"))


def test_mistral_is_refused_as_its_system_prompt_moves(base_tokenizer):
    with pytest.raises(TemplateError) as refused:
        ChatFormatter(tokenizer_for(base_tokenizer, "mistral_vllm"))
    assert "the chat template of mistral_vllm (Mistral [INST])" in str(refused.value)
    assert "[INST] Qz7System\\n\\nQz7Task[/INST]" in str(refused.value)  # the prompt has it
    assert "[INST] Qz7Task[/INST] Qz7Frame" in str(refused.value)  # and then it is gone


@pytest.mark.parametrize("stem", ["qwen2_5", "qwen3", "qwen3_instruct_2507"])
def test_tool_results_are_wrapped_once_as_qwen_was_trained(base_tokenizer, stem):
    fmt = ChatFormatter(tokenizer_for(base_tokenizer, stem), tools=[SEARCH])
    assert fmt.tool_messages == "native"
    conv, _ = play(fmt, think=False)
    text = text_of(fmt.tokenizer, conv.ids)
    assert ("<|im_start|>user\n<tool_response>\nParis is the capital of France.\n</tool_response>\n"
            "<tool_response>\nFrance is in Europe.\n</tool_response><|im_end|>") in text
    assert "<tool_response>\n<tool_response>" not in text


def test_tool_messages_carry_name_and_call_id(base_tokenizer):
    fmt = ChatFormatter(tokenizer_for(base_tokenizer, "hermes_2_pro"), tools=[SEARCH])
    calls = SCRIPT[0][2]
    assert fmt.observation_messages("tool", "ignored", calls) == [
        {"role": "tool", "content": "Paris is the capital of France.", "name": "search",
         "tool_call_id": "call_0a1b2c3d4e5f"},
        {"role": "tool", "content": "France is in Europe.", "name": "search",
         "tool_call_id": "call_5f4e3d2c1b0a"}]
    conv, _ = play(fmt, think=False)  # Hermes 2 Pro raises on a tool message without a name
    assert ('<tool_response>\n{"name": "search", "content": "Paris is the capital of France."}\n'
            "</tool_response>") in text_of(fmt.tokenizer, conv.ids)
    # Without template-native tools, one message carries the parser's text, named when it can be.
    plain = ChatFormatter(tokenizer_for(base_tokenizer, "hermes_2_pro"))
    assert plain.observation_messages("tool", "<r>x</r>", calls[:1]) == [
        {"role": "tool", "content": "<r>x</r>", "name": "search", "tool_call_id": "call_0a1b2c3d4e5f"}]
    # Mistral keeps the last 9 characters of a call id of at least 9.
    mistral = tokenizer_for(base_tokenizer, "mistral_vllm")
    call = {"id": "call_0a1b2c3d4e5f", "type": "function",
            "function": {"name": "search", "arguments": {"query": "capital of France"}}}
    text = mistral.apply_chat_template(
        [FIRST[1], {"role": "assistant", "content": "", "tool_calls": [call]},
         *fmt.observation_messages("tool", "", calls[:1])], tokenize=False)
    assert text.endswith('[TOOL_RESULTS] {"content": Paris is the capital of France., '
                         '"call_id": "2c3d4e5f"}[/TOOL_RESULTS]'.replace('"2c3d', '"b2c3d'))


def test_tool_observation_on_a_template_without_tool_messages_is_refused(base_tokenizer):
    fmt = ChatFormatter(tokenizer_for(base_tokenizer, "phi3"))
    assert fmt.tool_messages == "none"
    with pytest.raises(TemplateError, match=r"phi3 \(Phi-3\) cannot carry a tool-role observation: "
                                             "it drops tool messages"):
        fmt.observation_messages("tool", "result")


def test_llama_trims_only_what_the_model_wrote(base_tokenizer):
    """Llama 3.1 trims every message: observations stay exact (the appended text went through the
    same template), a reply ending in a newline is a real rewrite and is recorded."""
    fmt = ChatFormatter(tokenizer_for(base_tokenizer, "llama3_1"), tools=[SEARCH])
    conv = Conversation(fmt, FIRST)
    conv.add_turn(fmt.tokenizer.encode("Paris.", add_special_tokens=False) + fmt.closing_ids,
                  [{"role": "user", "content": "  Are you sure?\n"}])
    assert conv.rewrite is None and "<|end_header_id|>\n\nAre you sure?<|eot_id|>" in \
        text_of(fmt.tokenizer, conv.ids)
    conv.add_turn(fmt.tokenizer.encode("Yes.\n", add_special_tokens=False) + fmt.closing_ids,
                  [{"role": "user", "content": "Thanks."}])
    assert conv.rewrite is not None and conv.rewrite.turn == 1
    assert "Yes.\n<|eot_id|>" in conv.rewrite.incremental and "Yes.<|eot_id|>" in conv.rewrite.rendered


def test_a_closing_of_two_tokens_is_completed_after_a_cut_reply(base_tokenizer):
    """Cohere 2 ends a reply with <|END_RESPONSE|><|END_OF_TURN_TOKEN|>: whatever part of it a
    reply cut at max_tokens lacks is appended as context."""
    fmt = ChatFormatter(tokenizer_for(base_tokenizer, "cohere2"))
    assert fmt.closing_text == "<|END_RESPONSE|><|END_OF_TURN_TOKEN|>"
    end_response = fmt.closing_ids[0]
    for cut, missing in ([[], fmt.closing_ids], [[end_response], fmt.closing_ids[1:]]):
        conv = Conversation(fmt, FIRST, on_mismatch="fail")
        reply = fmt.tokenizer.encode("Paris", add_special_tokens=False) + cut
        after = conv.add_turn(reply, [{"role": "user", "content": "Sure?"}])
        assert after[:len(missing)] == missing
        assert conv.messages[2]["content"] == "Paris" and conv.rewrite is None


# ---------------------------------------------------------------- through the episode loop


def search_tool():
    from turnwise.tools import tool

    @tool
    def search(query: str) -> str:
        """Search the web.

        Args:
            query: the search query.
        """
        return {"capital of France": "Paris is the capital of France."}.get(query, "No result.")

    return search


@pytest.mark.parametrize("stem, rewrite", [("qwen2_5", None), ("qwen3", 1), ("qwen3_8", None),
                                           ("llama3_1", None), ("hermes_vllm", 1)])
def test_tool_episode_row_is_what_the_engine_saw_and_produced(base_tokenizer, stem, rewrite):
    import asyncio

    from turnwise.agent.engines.base import Completion
    from turnwise.envs.base import Task
    from turnwise.envs.tool_env import ToolEnvFactory
    from turnwise.rollouts.batch import build_batch
    from turnwise.rollouts.episode import EpisodeSettings, run_episode

    factory = ToolEnvFactory([search_tool()], lambda answer, task: float(answer == task.answer),
                             parser="hermes", parser_options={"list_tools": False})
    fmt = ChatFormatter(tokenizer_for(base_tokenizer, stem), tools=factory.registry.schemas())
    tok = fmt.tokenizer
    # Qwen3.8's prompt opens the thought, which every reply closes.
    opened = stem == "qwen3_8"
    thought = ("" if opened else "<think>\n") + "I should search.\n</think>\n\n"
    blank = "\n</think>\n\n" if opened else ""
    replies = [thought + CALL % "capital of France", blank + "I am not sure.",
               blank + CALL % "capital of France", blank + "<answer>Paris</answer>"]
    prompts = []

    async def act(prompt_ids, obs, params):
        prompts.append(list(prompt_ids))
        ids = tok.encode(replies[len(prompts) - 1], add_special_tokens=False) + fmt.closing_ids
        return Completion(token_ids=ids, logprobs=[-0.5] * len(ids), finish_reason="stop")

    task = Task(id="q", answer="Paris", data={"question": "What is the capital of France?"})
    traj = asyncio.run(run_episode(act, factory(), task, fmt, EpisodeSettings(max_turns=6),
                                   uid="u", traj_id="t"))
    assert traj.status == "done" and traj.success and len(traj.turns) == 4
    assert prompts == [traj.context_ids(t) for t in range(4)]  # the engine saw the row's prefix
    batch = build_batch([traj], pad_id=0)
    row = batch.input_ids[0, :int(batch.attention_mask[0].sum())].tolist()
    assert row == traj.full_ids()
    generated = [i for t in traj.turns for i in t.response_ids]
    mask = batch.loss_mask[0, :len(row)].tolist()
    assert [i for i, m in zip(row, mask) if m == 1.0] == generated  # the mask is the replies
    assert sum(mask) == len(generated)
    assert traj.info.get("template_rewrite") == rewrite
    text = text_of(tok, row)
    assert text.count("Paris is the capital of France.") == 2
    if fmt.tool_messages == "native":  # each result as the template formats a tool message
        assert "<tool_response>\n<tool_response>" not in text
