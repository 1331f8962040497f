"""Real vLLM servers for the tests that need them: started from this interpreter (the .venv-vllm
one, where `make test` runs the vllm-marked tests) on 127.0.0.1 with free ports, stopped after."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from turnwise.agent.engines.server_launch import LaunchedServer, launch, wait_ready

MAX_MODEL_LEN = 256
KV_CACHE_BYTES = 128 << 20


@contextlib.contextmanager
def running_servers(model: str, count: int, tmp_dir: str) -> Iterator[list[LaunchedServer]]:
    """`count` servers of `model`, each pinned to its own core where there are enough."""
    cores = os.cpu_count() or 1
    servers = []
    try:
        for i in range(count):
            servers.append(launch(
                model, python=sys.executable, log_path=f"{tmp_dir}/vllm-{i}.log",
                cpu_bind=str(i % cores) if count > 1 else None, max_model_len=MAX_MODEL_LEN,
                kv_cache_bytes=KV_CACHE_BYTES, max_num_seqs=64, enforce_eager=True))
        wait_ready(servers)
        yield servers
    finally:
        for server in servers:
            server.stop()
