"""Trainer weights handed to vLLM as a safetensors file: names and shapes checked first.

Both vLLM engines load new weights through turnwise's worker extension (`vllm_worker.py`),
which reads a safetensors file; the in-process engine calls it directly, the server engine
through each server's `/collective_rpc`. The checks run before any server sees a tensor: vLLM
takes its layers apart to reload them, and a bad name or shape found there leaves a server
half-updated.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def checkpoint_shapes(model: str) -> dict[str, tuple[int, ...]] | None:
    """Names and shapes of the tensors in a local model folder (None for a hub id)."""
    from safetensors import safe_open

    files = sorted(Path(model).glob("*.safetensors")) if Path(model).is_dir() else []
    shapes = {}
    for file in files:
        with safe_open(file, framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not iterable
                shapes[name] = tuple(f.get_slice(name).get_shape())
    return shapes or None


def checked_tensors(named_tensors: Iterable[tuple[str, Any]],
                    shapes: dict[str, tuple[int, ...]] | None) -> dict[str, Any]:
    """The tensors on CPU, contiguous, each checked against the model's names and shapes."""
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in named_tensors}
    if not tensors:
        raise ValueError("load_weights: no tensors given")
    for name, tensor in tensors.items() if shapes is not None else ():
        if name not in shapes:
            raise KeyError(f"load_weights: the engine's model has no tensor named {name!r}")
        if tuple(tensor.shape) != shapes[name]:
            raise ValueError(f"load_weights: {name} has shape {tuple(tensor.shape)}, "
                             f"engine expects {shapes[name]}")
    return tensors


def model_tensors(model: str) -> dict[str, Any]:
    """Every tensor of a local model folder, all shards together."""
    from safetensors.torch import load_file

    tensors: dict[str, Any] = {}
    for file in sorted(Path(model).glob("*.safetensors")):
        tensors.update(load_file(file))
    if not tensors:
        raise FileNotFoundError(f"{model}: no *.safetensors files to load weights from")
    return tensors


def handover_folder(parent: str | None = None) -> str:
    """A new private folder for weight files: in `parent`, else /dev/shm (memory) if it exists."""
    if parent is None and os.path.isdir("/dev/shm"):
        parent = "/dev/shm"
    if parent is not None:
        os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix="turnwise-weights-", dir=parent)


def write_weights(tensors: dict[str, Any], folder: str, name: str) -> str:
    """Save `tensors` as `folder/name.safetensors`; its path."""
    from safetensors.torch import save_file

    path = os.path.join(folder, f"{name}.safetensors")
    save_file(tensors, path)
    return path
