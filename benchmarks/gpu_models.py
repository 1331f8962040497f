"""Real-size models without a download, for benchmarks/gpu_check.py: architectures written out
as transformers config dicts, random weights made on the device in bf16, the tiny household
tokenizer (locally trained) beside them; and the peak bf16 throughput of the GPUs we may get.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

# Qwen/Qwen2.5-1.5B-Instruct's config.json (the household_gigpo gpu preset's model), less the
# token ids, which come from the tokenizer the model is paired with here.
QWEN25_1_5B: dict[str, Any] = {
    "model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960,
    "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
    "max_position_embeddings": 32768, "max_window_layers": 21, "sliding_window": 32768,
    "use_sliding_window": False, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "hidden_act": "silu", "attention_dropout": 0.0, "initializer_range": 0.02,
    "tie_word_embeddings": True, "vocab_size": 151936,
}
# Qwen/Qwen3-4B's config.json, likewise.
QWEN3_4B: dict[str, Any] = {
    "model_type": "qwen3", "hidden_size": 2560, "intermediate_size": 9728,
    "num_hidden_layers": 36, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "max_position_embeddings": 40960, "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0, "hidden_act": "silu", "attention_bias": False,
    "attention_dropout": 0.0, "initializer_range": 0.02, "tie_word_embeddings": True,
    "vocab_size": 151936,
}
# The dry run's stand-ins: the same architectures, a few thousand times smaller.
_TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1024}

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, TFLOP/s. Matched against
# torch.cuda.get_device_name in order, so the more specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, str, float], ...] = (
    ("H100 PCIe", "H100 PCIe", 756.0),
    ("H100 NVL", "H100 NVL", 835.0),
    ("H100", "H100 SXM", 989.0),
    ("GH200", "GH200", 989.0),
    ("H200 NVL", "H200 NVL", 835.0),
    ("H200", "H200 SXM", 989.0),
    ("H800", "H800 SXM", 989.0),
    ("B200", "B200", 2250.0),
    ("A100", "A100", 312.0),
    ("A800", "A800", 312.0),
    ("L40S", "L40S", 362.0),
    ("L40", "L40", 181.0),
    ("L4", "L4", 121.0),
    ("A10G", "A10G", 70.0),
    ("A10", "A10", 125.0),
)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model to build: its name in the tables, its key in the record, its transformers config."""

    name: str
    key: str
    config: dict[str, Any]

    def tiny(self) -> ModelSpec:
        """The same architecture at dry-run size (same key: the dry run fills the same record)."""
        config = {**self.config, **_TINY}
        if "head_dim" in config:
            config["head_dim"] = _TINY["hidden_size"] // _TINY["num_attention_heads"]
        return ModelSpec(f"{self.name} (tiny)", self.key, config)


REAL = (ModelSpec("Qwen2.5-1.5B", "qwen2.5_1.5b", QWEN25_1_5B),
        ModelSpec("Qwen3-4B", "qwen3_4b", QWEN3_4B))


def peak_bf16(device_name: str) -> tuple[str, float] | None:
    """(table entry, dense bf16 TFLOP/s) of the GPU named `device_name`; None if not listed."""
    for needle, entry, tflops in PEAK_BF16_TFLOPS:
        if needle.lower() in device_name.lower():
            return entry, tflops
    return None


def household_tokenizer():
    """The tiny household model's tokenizer: trained here on the environment's text."""
    from transformers import AutoTokenizer
    from turnwise.trainer.config import ModelConfig
    from turnwise.trainer.models import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(ModelConfig(name="tiny:household")))


def build_model(spec: ModelSpec, tokenizer, device: str) -> torch.nn.Module:
    """`spec`'s causal LM with random weights, made directly on `device` in bf16."""
    from transformers import AutoConfig, AutoModelForCausalLM

    values = {k: v for k, v in spec.config.items() if k != "model_type"}
    if tokenizer is not None and len(tokenizer) > values["vocab_size"]:
        raise ValueError(f"{spec.name}: vocab_size={values['vocab_size']} is below the "
                         f"tokenizer's {len(tokenizer)} tokens")
    config = AutoConfig.for_model(spec.config["model_type"], **values,
                                  eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    return model.train()


def parameter_count(model: torch.nn.Module) -> int:
    """Parameters, a tied embedding counted once."""
    return sum(p.numel() for p in model.parameters())


class Folders:
    """The check's folders under one temporary root, removed at the end: `from_pretrained`
    folders of the specs, written once on first use (the engine, the DeepSpeed workers and
    `turnwise train` load models by path), and scratch folders (run folders, worker output)."""

    def __init__(self, tokenizer, device: str) -> None:
        self.tokenizer, self.device = tokenizer, device
        self.root = Path(tempfile.mkdtemp(prefix="gpu_check_"))
        self.paths: dict[str, str] = {}

    def scratch(self, prefix: str) -> Path:
        """A new empty folder under the root."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root))

    def path(self, spec: ModelSpec) -> str:
        """The folder of `spec`'s model, written on first use."""
        if spec.name not in self.paths:
            folder = self.root / spec.key
            model = build_model(spec, self.tokenizer, self.device)
            model.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)
            del model
            free_memory()
            self.paths[spec.name] = str(folder)
        return self.paths[spec.name]

    def remove(self) -> None:
        """Delete the folders (a few GiB each at real size)."""
        shutil.rmtree(self.root, ignore_errors=True)


def free_memory() -> None:
    """Return what dropped objects held to the device (between sections and variants)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
