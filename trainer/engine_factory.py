"""The one place a recipe's `engine` section becomes an inference engine."""

from __future__ import annotations

import os
from typing import Any

from ..agent.engines import InferenceEngine, make_engine
from .config import EngineConfig
from .recipe import RecipeError


def build_engine(engine: EngineConfig, model_path: str, tokenizer: Any, *, dtype: str,
                 device: str, seed: int = 0) -> InferenceEngine:
    """The engine `engine.kind` serving `model_path` with the recipe's options."""
    kind = engine.kind
    if kind in ("hf", "vllm"):
        options: dict[str, Any] = {"device": device, "dtype": dtype,
                                   "max_batch": engine.max_batch,
                                   "batch_wait_ms": engine.batch_wait_ms}
        if kind == "vllm":
            options["seed"] = seed
    elif kind == "server":  # the servers hold the seed and batch size they were started with
        options = {"urls": list(engine.urls), "dtype": dtype, "sync_dir": engine.sync_dir}
    else:
        options = {"base_url": engine.base_url, "model_name": engine.model,
                   "api_key": api_key(engine.api_key_env), "max_concurrency": engine.max_batch}
    return make_engine(kind, model_path, tokenizer, **options)


def refuse_training(engine: EngineConfig) -> None:
    """Stop a training run at start if its engine cannot serve one."""
    if engine.kind == "openai":
        raise RecipeError("engine.kind='openai' cannot train: a chat endpoint returns text, not "
                         "the token ids and logprobs the update needs, and its weights cannot "
                         "be replaced; use it with `turnwise eval`, and train with engine.kind "
                         "hf, vllm or server")


def api_key(variable: str) -> str:
    """The key in environment variable `variable` (its value never appears in a message)."""
    key = os.environ.get(variable)
    if not key:
        raise RecipeError(f"engine.api_key_env={variable!r}: that environment variable is unset "
                         "or empty; export the endpoint's key in it (a local vLLM server "
                         "started without --api-key accepts any value)")
    return key
