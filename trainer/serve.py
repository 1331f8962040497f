"""`turnwise serve RECIPE`: start the vLLM servers a recipe's `engine.kind=server` drives.

Each server serves the recipe's model (or `--model`) with the flags weight sync and token-exact
rollouts need (see `agent.engines.server_launch`), the recipe's dtype and `engine.max_batch`
as its batch size. On a CPU machine the servers split the cores; with GPUs, the GPUs. The
command prints the URLs and the override that points a run at them, then waits until it is
stopped (Ctrl-C), and stops the servers with it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from ..agent.engines.server_launch import LaunchedServer, launch, vllm_python, wait_ready
from .config import Config


def serve(cfg: Config, *, servers: int = 1, port: int = 8000, host: str = "127.0.0.1",
          model: str | None = None, python: str | None = None, kv_cache_gib: float | None = None,
          gpus: str | None = None, gpu_memory_utilization: float | None = None,
          log_dir: str | None = None, echo=print) -> int:
    """Start `servers` servers on ports `port`, `port + 1`, ...; block until interrupted.
    `gpus`: the GPU ids they share out (default: all), e.g. the ones the trainer leaves free."""
    from .models import resolve_model

    if servers < 1:
        raise ValueError(f"--servers={servers}: must be >= 1")
    python = python or vllm_python()
    path = model or resolve_model(cfg.model)
    devices = gpus.split(",") if gpus else [str(i) for i in range(_gpu_count())]
    if not devices and gpu_memory_utilization is not None:
        raise ValueError("--gpu-memory-utilization without a GPU")
    slices = _device_slices(servers, devices or [str(c) for c in range(os.cpu_count() or 1)])
    folder = Path(log_dir or cfg.log.dir) / "servers"
    folder.mkdir(parents=True, exist_ok=True)
    if not devices and kv_cache_gib is None:
        kv_cache_gib = 1.0  # vLLM cannot size the KV cache on CPU by itself
    started: list[LaunchedServer] = []
    try:
        for i, share in enumerate(slices):
            started.append(launch(
                path, port=port + i, host=host, python=python,
                log_path=folder / f"vllm-{port + i}.log", dtype=cfg.model.dtype,
                max_num_seqs=cfg.engine.max_batch, enforce_eager=not devices,
                kv_cache_bytes=None if kv_cache_gib is None else int(kv_cache_gib * (1 << 30)),
                gpu_memory_utilization=gpu_memory_utilization,
                gpu_ids=share if devices else None, cpu_bind=None if devices else share,
                extra=("--tensor-parallel-size", str(len(share.split(",")))) if devices else ()))
        echo(f"starting {servers} vLLM server(s) for {path}; logs in {folder}")
        wait_ready(started)
        urls = ",".join(s.url for s in started)
        echo(f"ready: {urls}")
        echo(f"point a run at them with: engine.kind=server engine.urls=[{urls}]")
        return _wait(started, echo)
    finally:
        for server in started:
            server.stop()


def _device_slices(servers: int, devices: list[str]) -> list[str]:
    """Each server's share of the GPU or CPU core ids, disjoint, as a comma list."""
    per = len(devices) // servers
    if per < 1:
        raise ValueError(f"--servers={servers} on {len(devices)} GPUs or cores: at most one "
                         "server per device")
    return [",".join(devices[i * per:(i + 1) * per]) for i in range(servers)]


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def _wait(started: list[LaunchedServer], echo) -> int:
    """Until SIGINT/SIGTERM (0) or a server exits on its own (1)."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    try:
        while not stop:
            for server in started:
                if server.process.poll() is not None:
                    echo(f"server {server.url} exited with code {server.process.returncode}; "
                         f"log {server.log_path}:\n{server.log_tail()}")
                    return 1
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    echo("stopping the servers")
    return 0
