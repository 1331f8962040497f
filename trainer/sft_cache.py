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
from .dist import World

SINGLE = World()  # one process

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


def sft_cache_path(cfg: Config, model_path: str | Path, demos: Sequence,
                   world: World = SINGLE) -> Path:
    """Where the SFT'd policy of this config and these demonstrations lives (it may not exist).
    Under DeepSpeed each rank passes its own share: the key covers every rank's, in order."""
    digests = world.gather(demonstrations_digest(demos))
    key = {
        "version": CACHE_VERSION,
        "model": str(Path(model_path).resolve()) if Path(model_path).exists() else str(model_path),
        "dtype": cfg.model.dtype,
        "demonstrations": digests[0] if len(digests) == 1 else digests,
        "sft": cfg.sft.model_dump(exclude={"cache", "seed"}),
        "seed": sft_seed(cfg),
        # What shapes SFT's optimizer steps and numerics (the RL schedule does not). Threads and
        # device too: the same seed gave 20% greedy household success with 1 thread, 7% with 2.
        "train": cfg.train.model_dump(include={"weight_decay", "grad_clip", "micro_batch_tokens",
                                                "precision", "packing", "share_prefix",
                                                "threads", "device"}),
    }
    if cfg.train.backend == "deepspeed":  # its own numerics (ZeRO stage, offload)
        key["deepspeed"] = cfg.deepspeed.model_dump()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return cache_root().parent / "sft" / f"{cfg.env.name}-{digest[:16]}"


def check_cacheable(cfg: Config) -> None:
    """`sft.cache` saves whole models: refuse what that cannot serve."""
    if cfg.lora.enabled and cfg.sft.cache and cfg.sft.episodes:
        raise ValueError("sft.cache=true with lora.enabled=true; the cache holds whole models, "
                         "allowed: sft.cache=false with LoRA")


def save_sft(backend, tokenizer, path: Path, cfg: Config) -> None:
    """Write the SFT'd policy to `path` atomically (concurrent runs never see half a folder).
    Under DeepSpeed every rank joins in gathering the weights and rank 0 writes them."""
    world = backend.world

    def write(folder: Path) -> None:
        world.broadcast(str(folder))  # the other ranks gather the weights into it with us
        backend.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        (folder / "turnwise_sft.json").write_text(json.dumps(
            {"recipe": cfg.name, "env": cfg.env.name, "sft": cfg.sft.model_dump(),
             "seed": sft_seed(cfg)}, indent=2, default=str))

    if world.is_main:
        publish_folder(path, write)
    else:
        backend.save_pretrained(world.broadcast(None))
    world.barrier()  # published before any rank goes on
