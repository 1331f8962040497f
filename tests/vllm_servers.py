"""Real vLLM servers for the tests that need them, on 127.0.0.1 with free ports, stopped after:
started from this interpreter where it has vLLM (.venv-vllm, where `make test` runs the engine
tests), else from ./.venv-vllm (tests of whole runs, which need the main venv's packages)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from turnwise.agent.engines.server_launch import LaunchedServer, launch, vllm_python, wait_ready

MAX_MODEL_LEN = 256
KV_CACHE_BYTES = 128 << 20


@contextlib.contextmanager
def running_servers(model: str, count: int, tmp_dir: str, *,
                    max_model_len: int = MAX_MODEL_LEN) -> Iterator[list[LaunchedServer]]:
    """`count` servers of `model`, each pinned to its own core where there are enough."""
    python = vllm_python()
    cores = os.cpu_count() or 1
    servers = []
    try:
        for i in range(count):
            servers.append(launch(
                model, python=python, log_path=f"{tmp_dir}/vllm-{i}.log",
                cpu_bind=str(i % cores) if count > 1 else None, max_model_len=max_model_len,
                kv_cache_bytes=KV_CACHE_BYTES, max_num_seqs=64, enforce_eager=True))
        wait_ready(servers)
        yield servers
    finally:
        for server in servers:
            server.stop()


def has_vllm_python() -> bool:
    """Whether a Python with vLLM can be found (this one, or ./.venv-vllm)."""
    try:
        vllm_python()
        return True
    except RuntimeError:
        return False
