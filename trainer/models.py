"""Resolving a recipe's model: a hub id, a local folder, or `tiny:<env>` built on the spot."""

from __future__ import annotations

from pathlib import Path

import torch

from ..agent.tiny import TinySpec, build_tiny
from ..envs.base import make_suite
from .config import ModelConfig


def resolve_model(cfg: ModelConfig) -> str:
    """A name `from_pretrained` can load; builds the tiny model first when asked for one."""
    if cfg.name.startswith("tiny:"):
        env = cfg.name.split(":", 1)[1]
        suite = make_suite(env)
        spec = TinySpec(**(cfg.tiny.model_dump() if cfg.tiny else {}))
        return str(build_tiny(f"tiny-{env}", suite.corpus(), spec))
    check_reachable(cfg.name)
    return cfg.name


def check_reachable(name: str, timeout: float = 10.0) -> None:
    """Stop at once, with one message, when hub model `name` is neither a local folder nor in
    the hub cache and the hub cannot serve it (offline, unreachable, no such model, gated):
    otherwise loading it retries for minutes and ends in a long traceback."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from .recipe import RecipeError

    if is_local(name) or isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    fix = (f"download it where the hub can be reached (`hf download {name} --local-dir DIR`) "
           f"and set model.name=DIR, or train a tiny model (preset=cpu-tiny)")
    if constants.HF_HUB_OFFLINE:
        raise RecipeError(f"model.name={name!r}: no such local folder, and not in the hub cache "
                          f"({constants.HF_HUB_CACHE}) with HF_HUB_OFFLINE set; {fix}")
    try:
        get_hf_file_metadata(hf_hub_url(name, "config.json"), timeout=timeout)
    except RepositoryNotFoundError:
        raise RecipeError(f"model.name={name!r}: no such local folder, and {constants.ENDPOINT} "
                          f"has no model of that name (or it is private: log in with "
                          f"`hf auth login`)") from None
    except GatedRepoError:
        raise RecipeError(f"model.name={name!r} is gated on {constants.ENDPOINT}: accept its "
                          f"terms there and log in (`hf auth login`), or {fix}") from None
    except Exception as exc:  # noqa: BLE001 - refused, DNS, timeout, proxy: hub unreachable
        raise RecipeError(f"model.name={name!r}: no such local folder, not in the hub cache, "
                          f"and {constants.ENDPOINT} cannot be reached ({type(exc).__name__}); "
                          f"{fix}") from None


def load_policy(path: str, dtype: str = "float32"):
    """The causal LM and tokenizer at `path`, loaded the way users load any model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    return model, tokenizer


def load_tokenizer(path: str):
    """The tokenizer at `path` (the trainer's model is loaded by its backend)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def pick_device(name: str, local_rank: int = 0) -> str:
    """`auto` means the GPU when there is one; `cuda` means this process's GPU (its local rank)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return f"cuda:{local_rank}" if name == "cuda" else name


def is_local(path: str) -> bool:
    return Path(path).exists()
