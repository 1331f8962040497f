"""Tiny causal LMs for CPU runs and tests: a Qwen3 or Llama config plus a locally trained tokenizer.

Nothing is downloaded. The tokenizer is a byte-level BPE trained with `tokenizers` on text from
the environment the model is for, with a ChatML template that knows system/user/assistant/tool
messages and tool calls. Both are written with `save_pretrained` into a cache folder keyed by a
hash of everything that determines them, and are loaded back through `from_pretrained`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Markup that agents emit; each becomes one token so a tiny model can learn formats quickly.
MARKUP_TOKENS = [
    "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
    "<think>", "</think>", "<action>", "</action>", "<search>", "</search>",
    "<information>", "</information>", "<answer>", "</answer>",
    "<python>", "</python>", "<result>", "</result>",
]

# ChatML, as Qwen models use it. Tool schemas go into the system message; assistant tool calls
# are JSON inside <tool_call> tags; tool results are messages of role "tool".
CHAT_TEMPLATE = (
    "{%- set ns = namespace(first=0) %}"
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- messages[0]['content'] + '\\n\\n' }}{%- set ns.first = 1 %}"
    "{%- endif %}"
    "{{- '# Tools\\nYou may call one or more functions. Function signatures:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools>\\nCall a function with <tool_call>"
    "{\"name\": <name>, \"arguments\": <args>}</tool_call><|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages[ns.first:] %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' + (message['content'] or '') }}"
    "{%- for call in message.get('tool_calls') or [] %}"
    "{%- set fn = call['function'] if call['function'] is defined else call %}"
    "{%- set args = fn['arguments'] if fn['arguments'] is string else fn['arguments'] | tojson %}"
    "{{- '<tool_call>{\"name\": \"' + fn['name'] + '\", \"arguments\": ' + args + '}</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
TEMPLATE_VERSION = 2


@dataclass(frozen=True)
class TinySpec:
    """Shape of a tiny model; every field takes part in the cache key (`digit_group` when set)."""

    arch: str = "qwen3"  # qwen3 | llama
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    vocab_size: int = 4096
    max_positions: int = 4096
    # Spaces become tokens of their own, so a word has one id wherever it stands: after a space
    # in the question and right after `<search>` or `[` in a reply. A model trained from scratch
    # then copies names and numbers from its context with one lookup instead of learning, name by
    # name, which " word" id goes with which "word" id. Sequences get longer (~1.6x on prose).
    space_tokens: bool = False
    # Numbers split into groups of at most this many digits before BPE (Qwen's tokenizers use 1,
    # Llama 3's 3; 0 leaves them to BPE). BPE alone spends most of a small vocabulary on digit
    # chunks ("3", "269", "90"): 2053 of the math_code tokenizer's 2811 ids, most of them seen
    # once or twice in SFT, and a tiny model cannot copy an id it has barely seen.
    digit_group: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ("qwen3", "llama"):
            raise ValueError(f"model.tiny.arch={self.arch!r}: allowed are 'qwen3', 'llama'")
        if self.digit_group < 0:
            raise ValueError(f"model.tiny.digit_group={self.digit_group}: must be >= 0 (0: BPE "
                             "decides; n: numbers split into groups of at most n digits)")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"model.tiny.hidden_size={self.hidden_size} must be a multiple of "
                f"num_heads={self.num_heads}"
            )


def cache_root() -> Path:
    """Folder under which tiny models are kept (TURNWISE_CACHE, else ~/.cache/turnwise)."""
    return Path(os.environ.get("TURNWISE_CACHE", Path.home() / ".cache" / "turnwise")) / "tiny"


def build_tiny(name: str, texts: Iterable[str], spec: TinySpec = TinySpec()) -> Path:
    """Build (or reuse) the tiny model `name` with a tokenizer trained on `texts`; return its folder."""
    corpus = [t for t in texts if t]
    if not corpus:
        raise ValueError(f"tiny model {name!r}: the tokenizer corpus is empty")
    digest = hashlib.sha256()
    fields = asdict(spec)
    if not spec.digit_group:  # added later: unset, it keeps the keys of models built before
        del fields["digit_group"]
    digest.update(json.dumps([name, fields, TEMPLATE_VERSION, CHAT_TEMPLATE]).encode())
    for text in corpus:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    path = cache_root() / f"{name}-{digest.hexdigest()[:16]}"
    if (path / "config.json").exists():
        return path
    def write(folder: Path) -> None:
        tokenizer = _train_tokenizer(corpus, spec.vocab_size, space_tokens=spec.space_tokens,
                                     digit_group=spec.digit_group)
        tokenizer.save_pretrained(folder)
        _init_model(spec, vocab_size=len(tokenizer), tokenizer=tokenizer).save_pretrained(folder)

    publish_folder(path, write)
    return path


def publish_folder(path: Path, write: Callable[[Path], None]) -> None:
    """Fill a `from_pretrained` folder at `path` atomically: `write` fills a hidden staging
    folder beside it, which is then renamed, so concurrent builders never see half a folder
    (when two race, the first rename wins and the other's copy is dropped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        write(staging)
        try:
            staging.rename(path)
        except OSError:
            if not (path / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _train_tokenizer(corpus: list[str], vocab_size: int, *, space_tokens: bool = False,
                     digit_group: int = 0):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    splits = [pre_tokenizers.Split(" ", behavior="isolated")] if space_tokens else []
    if digit_group:
        splits.append(pre_tokenizers.Split(Regex(rf"\d{{1,{digit_group}}}"), behavior="isolated"))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.pre_tokenizer = pre_tokenizers.Sequence([*splits, byte_level]) if splits else byte_level
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        bos_token=None, unk_token=None,
    )
    tokenizer.add_tokens(MARKUP_TOKENS)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _init_model(spec: TinySpec, *, vocab_size: int, tokenizer):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

    common = dict(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if spec.arch == "qwen3":
        config = Qwen3Config(head_dim=spec.hidden_size // spec.num_heads, **common)
    else:
        config = LlamaConfig(**common)
    torch.manual_seed(spec.seed)
    return AutoModelForCausalLM.from_config(config)
