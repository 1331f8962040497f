"""One server's control plane: what it serves, and loading new weights into it, versioned.

A weight update on one server: `/pause?mode=keep` (requests in flight freeze where they are;
new ones queue), `/collective_rpc` into turnwise's worker extension with the path of a
safetensors file, `/reset_prefix_cache?reset_running_requests=true` (cached prefixes and the
frozen requests' keys and values were computed by the old weights: they are recomputed),
`/update_weight_version`, `/resume`. No step is served by a half-updated model, and vLLM labels
each output token with the weights version current when it was sampled. If any step fails the
server stays paused (so it never serves a half-loaded model) and the caller takes it out.

These routes need `VLLM_SERVER_DEV_MODE=1`; without a GPU only this file-based path works (vLLM's
NCCL and CUDA IPC weight transfer need one), and the file must be readable by the server: same
host, or a shared folder (`engine.sync_dir`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .server_http import HttpLoop, ServerDown, ServerRefused
from .server_launch import WORKER_EXTENSION


@dataclass(frozen=True)
class Served:
    """What a server reports about itself."""

    model: str  # the --model it was started with
    max_model_len: int
    label: str  # its weights version label ("default" until someone sets one)
    paused: bool


class ServerMisconfigured(RuntimeError):
    """A server lacks a flag the `server` engine needs; the message says which and how."""


async def inspect(http: HttpLoop, url: str, *, dtype: str, timeout: float,
                  probe: bool = True) -> Served:
    """What `url` serves, after checking it was started the way the engine needs (`probe`:
    also send it one token, which a paused server would hold)."""
    models = await http.request("GET", f"{url}/v1/models", timeout=timeout)
    entry = models["data"][0]
    try:
        info = await http.request("GET", f"{url}/server_info",
                                  params={"config_format": "json"}, timeout=timeout)
    except ServerRefused as exc:
        raise ServerMisconfigured(
            f"{url} has no /server_info ({exc}); start it with VLLM_SERVER_DEV_MODE=1, which "
            "weight sync needs (`turnwise serve` does)") from None
    config = info["vllm_config"]
    needs = {
        "--logprobs-mode processed_logprobs": config["model_config"].get("logprobs_mode")
        == "processed_logprobs",
        f"--worker-extension-cls {WORKER_EXTENSION}":
            config["parallel_config"].get("worker_extension_cls") == WORKER_EXTENSION,
        f"--dtype {dtype}": str(config["model_config"].get("dtype")).replace("torch.", "")
        == dtype,
    }
    missing = [flag for flag, ok in needs.items() if not ok]
    if missing:
        raise ServerMisconfigured(f"{url} was started without {', '.join(missing)}; "
                                  "`turnwise serve` starts servers with every flag needed")
    try:  # the token endpoint answers 403 unless the server runs with --enable-scale-out
        if probe:
            await http.request("POST", f"{url}/inference/v1/generate", timeout=timeout, body={
                "token_ids": [0], "sampling_params": {"max_tokens": 1, "detokenize": False}})
    except ServerRefused as exc:
        raise ServerMisconfigured(f"{url} refuses token ids ({exc}); start it with "
                                  "--enable-scale-out") from None
    label = (await http.request("GET", f"{url}/weight_info", timeout=timeout))["weight_version"]
    paused = (await http.request("GET", f"{url}/is_paused", timeout=timeout))["is_paused"]
    return Served(entry["root"], int(entry["max_model_len"]), label, bool(paused))


async def load_into(http: HttpLoop, url: str, path: str, *, tensors: int, version: int,
                    timeout: float) -> None:
    """Serve the weights in safetensors file `path` as `version` (see the module docstring)."""
    await http.request("POST", f"{url}/pause", params={"mode": "keep"}, timeout=timeout)
    answer = await http.request("POST", f"{url}/collective_rpc", timeout=timeout, body={
        "method": "turnwise_load_weights", "args": [path], "timeout": timeout})
    loaded = [int(n) for n in answer["results"]]
    if any(n != tensors for n in loaded):
        raise ServerDown(f"{url}: workers loaded {loaded} tensors of {tensors}")
    await set_label(http, url, version, timeout=timeout)


async def set_label(http: HttpLoop, url: str, version: int, *, timeout: float) -> None:
    """Drop cached keys and values, label the weights `version` and resume (from a pause)."""
    reset = await http.request("POST", f"{url}/reset_prefix_cache",
                               params={"reset_running_requests": "true"}, timeout=timeout)
    if not reset.get("success"):
        raise ServerDown(f"{url}: /reset_prefix_cache did not succeed: {reset}")
    await http.request("POST", f"{url}/update_weight_version",
                       body={"new_version": str(version)}, timeout=timeout)
    await http.request("POST", f"{url}/resume", timeout=timeout)
