"""Reuse a cold start: the SFT'd policy saved under a key of everything that shaped it.

RL comparisons (GiGPO vs GRPO, seed after seed) start from the same SFT model; with
`sft.cache: true` the first run saves it and the others load it instead of training it again.
The key covers the base model folder, a digest of the demonstrations' token ids (so a changed
oracle, environment, prompt format or tokenizer is a new key without anyone remembering to bump
a version), the SFT hyperparameters and its seed, so a changed recipe never picks up a stale model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..agent.tiny import cache_root, publish_folder
from .config import Config

CACHE_VERSION = 3  # bump when SFT's semantics change (the demonstrations are in the key)


def sft_seed(cfg: Config) -> int:
    """The seed of demonstrations and SFT batches (`sft.seed`, else the run's seed)."""
    return cfg.seed if cfg.sft.seed is None else cfg.sft.seed


def demonstrations_digest(demos: Sequence) -> str:
    """A hash of exactly the tokens SFT trains on: every demonstration's prompt, responses and
    observations (per-step prompts too), in order."""
    digest = hashlib.sha256()

    def add(ids) -> None:  # length first, so no two splits of one id stream hash alike
        ids = np.asarray(ids, dtype=np.int64)
        digest.update(np.int64(ids.size).tobytes() + ids.tobytes())

    for traj in demos:
        digest.update(f"{traj.mode}:{len(traj.turns)}".encode())
        add(traj.prompt_ids)
        for turn in traj.turns:
            add(turn.prompt_ids or [])
            add(turn.response_ids)
            add(turn.observation_ids)
    return digest.hexdigest()


def sft_cache_path(cfg: Config, model_path: str | Path, demos: Sequence) -> Path:
    """Where the SFT'd policy of this config and these demonstrations lives (it may not exist)."""
    key = {
        "version": CACHE_VERSION,
        "model": str(Path(model_path).resolve()) if Path(model_path).exists() else str(model_path),
        "dtype": cfg.model.dtype,
        "demonstrations": demonstrations_digest(demos),
        "sft": cfg.sft.model_dump(exclude={"cache", "seed"}),
        "seed": sft_seed(cfg),
        # What shapes SFT's optimizer steps and numerics (the RL schedule does not). Threads and
        # device too: the same seed gave 20% greedy household success with 1 thread, 7% with 2.
        "train": cfg.train.model_dump(include={"weight_decay", "grad_clip", "micro_batch_tokens",
                                                "precision", "packing", "share_prefix",
                                                "threads", "device"}),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return cache_root().parent / "sft" / f"{cfg.env.name}-{digest[:16]}"


def check_cacheable(cfg: Config) -> None:
    """`sft.cache` saves whole models from one process: refuse what that cannot serve."""
    if cfg.lora.enabled:
        raise ValueError("sft.cache=true with lora.enabled=true; the cache holds whole models, "
                         "allowed: sft.cache=false with LoRA")
    if cfg.train.backend != "torch":
        raise ValueError(f"sft.cache=true with train.backend={cfg.train.backend!r}; allowed: "
                         "'torch' (a sharded model is saved by every rank)")


def save_sft(backend, tokenizer, path: Path, cfg: Config) -> None:
    """Write the SFT'd policy to `path` atomically (concurrent runs never see half a folder)."""
    def write(folder: Path) -> None:
        backend.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        (folder / "turnwise_sft.json").write_text(json.dumps(
            {"recipe": cfg.name, "env": cfg.env.name, "sft": cfg.sft.model_dump(),
             "seed": sft_seed(cfg)}, indent=2, default=str))

    publish_folder(path, write)
