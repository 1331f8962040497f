"""Inference engines behind one contract (`InferenceEngine`): `hf` (embedded), `vllm`
(in-process) and `server` (vLLM servers over HTTP); `openai` (any OpenAI-compatible chat
endpoint) is text only, for evaluation."""

from __future__ import annotations

from typing import Any

from .base import ChatPrompt, Completion, FinishReason, InferenceEngine, SamplingParams

ENGINES = ("hf", "vllm", "server", "openai")


def make_engine(kind: str, model: Any, tokenizer: Any = None, **options: Any) -> InferenceEngine:
    """Build the engine `kind` serving `model` (a path or, for `hf`, a loaded module);
    `server` needs `urls`, the vLLM servers started with `turnwise serve`."""
    if kind == "hf":
        from .hf import HFEngine

        return HFEngine(model, tokenizer, **options)
    if kind == "vllm":
        from .vllm import VLLMEngine

        return VLLMEngine(model, tokenizer, **options)
    if kind == "server":
        from .server import ServerEngine

        return ServerEngine(model, tokenizer, **options)
    if kind == "openai":
        from .openai_chat import OpenAIChatEngine

        return OpenAIChatEngine(model, tokenizer, **options)
    raise ValueError(f"engine.kind={kind!r}: allowed are {list(ENGINES)}")


__all__ = ["ChatPrompt", "Completion", "FinishReason", "InferenceEngine", "SamplingParams",
           "make_engine"]
