"""Server engine: vLLM over HTTP against vLLM in the trainer's process; two servers against one;
weight sync to a server.

- N concurrent `generate` calls (same tiny model, same chat prompts, exactly `--tokens` tokens
  each, EOS ignored) through `ServerEngine` with one server and through the in-process
  `VLLMEngine`, with the same engine settings (float32, eager, no prefix cache, processed
  logprobs, the same KV cache and batch size, compute pinned to core 0). The gap is what HTTP,
  JSON and the server's API process cost. Target: server / in-process <= 1.15. Besides wall
  time, the CPU seconds of every process involved (this one, the in-process engine's core, the
  servers) are summed per round: on a shared machine wall time follows the neighbours' load,
  CPU time much less.
- N = 64 through two servers (cores 0 and 1) against one (core 0).
- `load_weights` of a ~120 MB model into a running server: pause, safetensors file in /dev/shm,
  load through the worker extension, prefix-cache reset, version label, resume; seconds per
  100 MB, with the file write timed apart.

Contenders take turns, `--repeats` rounds; figures are medians. Runs in .venv-vllm:

    .venv-vllm/bin/python -m benchmarks.server_engine [--concurrency 16 64] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

import torch

from benchmarks.common import add_output_args, build_model, interleaved, medians, quiet, write_json
from benchmarks.engine_overhead import engine_run, make_prompts


def tree_cpu() -> float:
    """CPU seconds (user + system) used so far by this process and every live process under
    it: the servers, the engine cores."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def process_cpu(pid: int, *, children: bool) -> float:
    """CPU seconds of process `pid` itself, or of its live descendants."""
    import psutil

    process = psutil.Process(pid)
    procs = process.children(recursive=True) if children else [process]
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def server_cpu_split(server, run, rounds: int) -> dict[str, float]:
    """CPU seconds per round of `run` on each side of a server: this client, the server's API
    process (HTTP, JSON, request checks) and its engine processes (scheduling, the model)."""
    parts = {"client": lambda: process_cpu(os.getpid(), children=False),
             "api_process": lambda: process_cpu(server.process.pid, children=False),
             "engine_processes": lambda: process_cpu(server.process.pid, children=True)}
    before = {name: read() for name, read in parts.items()}
    for _ in range(rounds):
        run()
    return {name: (read() - before[name]) / rounds for name, read in parts.items()}


def timed_cpu(contenders: dict, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall seconds and median CPU seconds of each contender, taking turns."""
    cpu: dict[str, list[float]] = {name: [] for name in contenders}

    def counted(name, fn):
        def run():
            before = tree_cpu()
            fn()
            cpu[name].append(tree_cpu() - before)
        return run

    wall = medians(interleaved({n: counted(n, f) for n, f in contenders.items()}, repeats))
    return wall, medians(cpu)


def start_servers(path: str, binds: list[str], folder: str, *, kv_cache_gib: float,
                  max_batch: int, max_model_len: int | None = None) -> list:
    """Servers of `path`, server i pinned to cores `binds[i]`, with the benchmark's settings."""
    from turnwise.agent.engines.server_launch import launch, wait_ready

    servers = [launch(path, cpu_bind=bind, log_path=f"{folder}/vllm-{i}-{os.getpid()}.log",
                      kv_cache_bytes=int(kv_cache_gib * (1 << 30)), max_num_seqs=max_batch,
                      max_model_len=max_model_len, enforce_eager=True,
                      extra=("--no-enable-prefix-caching",))
               for i, bind in enumerate(binds)]
    try:
        wait_ready(servers)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def bench_serving(path: str, concurrency: list[int], tokens: int, repeats: int,
                  kv_cache_gib: float, folder: str) -> tuple[list[dict], dict]:
    """Rows of (N, server s, in-process s, ratio); then two servers vs one at the largest N."""
    from transformers import AutoTokenizer
    from turnwise.agent.engines import make_engine

    tokenizer = AutoTokenizer.from_pretrained(path)
    width = max(concurrency)
    # The in-process engine's compute runs on core 0 as the first server's does (vLLM's own
    # CPU default also picks core 0 and keeps core 1 for the rest).
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "0"
    local = make_engine("vllm", path, tokenizer, max_batch=width, kv_cache_gib=kv_cache_gib,
                        enable_prefix_caching=False)
    servers = start_servers(path, ["0", "1"], folder, kv_cache_gib=kv_cache_gib, max_batch=width)
    one = make_engine("server", path, tokenizer, urls=[servers[0].url])
    two = make_engine("server", path, tokenizer, urls=[s.url for s in servers])
    rows = []
    try:
        for n in concurrency:
            prompts = make_prompts(tokenizer, n, seed=n)
            contenders = {"server": lambda p=prompts: engine_run(one, p, tokens),
                          "in-process": lambda p=prompts: engine_run(local, p, tokens)}
            counts = {name: fn() for name, fn in contenders.items()}  # warm-up, equal work
            if len(set(counts.values())) != 1:
                raise RuntimeError(f"unequal work at N={n}: tokens generated {counts}")
            med, cpu = timed_cpu(contenders, repeats)
            rows.append({"concurrency": n, "tokens": counts["server"], **med,
                         "server/in-process": med["server"] / med["in-process"],
                         "cpu_s": cpu, "cpu server/in-process": cpu["server"] / cpu["in-process"],
                         "server_cpu_split": server_cpu_split(servers[0], contenders["server"],
                                                              max(1, repeats // 3))})
        prompts = make_prompts(tokenizer, width, seed=width)
        contenders = {"one server": lambda: engine_run(one, prompts, tokens),
                      "two servers": lambda: engine_run(two, prompts, tokens)}
        for fn in contenders.values():
            fn()
        med = medians(interleaved(contenders, repeats))
        share = _share_on_second(two, prompts, tokens, servers[1].url)
        scale = {"concurrency": width, **med, "one/two": med["one server"] / med["two servers"],
                 "share_on_second": share}
    finally:
        for engine in (one, two, local):
            asyncio.run(engine.close())
        for server in servers:
            server.stop()
    return rows, scale


def _share_on_second(engine, prompts, tokens: int, url: str) -> float:
    """The share of one batch's requests that the pool sent to `url`."""
    from turnwise.agent.engines import SamplingParams

    params = SamplingParams(max_tokens=tokens, temperature=1.0, ignore_eos=True)

    async def run():
        return await asyncio.gather(*(engine.generate(p, params) for p in prompts))

    done = asyncio.run(run())
    return sum(c.info["server"] == url for c in done) / len(done)


def bench_sync(repeats: int, folder: str, hidden: int, layers: int) -> dict:
    """Seconds of `load_weights` into one server, per 100 MB of float32 weights."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from turnwise.agent.engines import make_engine

    path = build_model(hidden=hidden, layers=layers)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    tensors = {n: t.detach().contiguous() for n, t in model.named_parameters()}
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    servers = start_servers(path, ["0"], folder, kv_cache_gib=0.25, max_batch=16,
                            max_model_len=512)
    engine = make_engine("server", path, tokenizer, urls=[servers[0].url])
    syncs, writes = [], []
    try:
        for version in range(1, repeats + 1):
            started = time.perf_counter()
            engine.load_weights(model.named_parameters(), version)
            syncs.append(time.perf_counter() - started)
            with tempfile.TemporaryDirectory(dir="/dev/shm") as scratch:
                started = time.perf_counter()
                save_file(tensors, f"{scratch}/w.safetensors")
                writes.append(time.perf_counter() - started)
    finally:
        asyncio.run(engine.close())
        servers[0].stop()
    sync, write = statistics.median(syncs), statistics.median(writes)
    return {"params": sum(t.numel() for t in tensors.values()), "mb": size / 1e6,
            "sync_s": sync, "write_s": write, "sync_s_per_100mb": sync / (size / 1e8),
            "server_s_per_100mb": (sync - write) / (size / 1e8)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64],
                        help="concurrent requests (N)")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per response")
    parser.add_argument("--kv-cache-gib", type=float, default=0.5, help="KV cache per engine")
    parser.add_argument("--sync-hidden", type=int, default=768,
                        help="hidden size of the weight-sync model (768 x 4 layers: ~120 MB)")
    parser.add_argument("--sync-layers", type=int, default=4)
    add_output_args(parser, repeats=5)
    args = parser.parse_args()
    quiet()
    torch.set_num_threads(1)
    from turnwise.trainer.config import ModelConfig
    from turnwise.trainer.models import resolve_model

    path = resolve_model(ModelConfig(name="tiny:household"))
    print(f"server engine: N concurrent requests of {args.tokens} tokens; median of "
          f"{args.repeats} interleaved rounds")
    with tempfile.TemporaryDirectory() as folder:
        rows, scale = bench_serving(path, args.concurrency, args.tokens, args.repeats,
                                    args.kv_cache_gib, folder)
        sync = bench_sync(args.repeats, folder, args.sync_hidden, args.sync_layers)
    print(f"{'N':>4}{'tokens':>8}{'server':>12}{'in-process':>12}{'server/in-process':>20}"
          f"{'CPU server':>12}{'CPU in-proc':>12}{'CPU ratio':>11}")
    for r in rows:
        cpu = r["cpu_s"]
        print(f"{r['concurrency']:>4}{r['tokens']:>8}{r['server']:>11.3f}s{r['in-process']:>11.3f}s"
              f"{r['server/in-process']:>19.2f}x{cpu['server']:>11.3f}s{cpu['in-process']:>11.3f}s"
              f"{r['cpu server/in-process']:>10.2f}x")
    for r in rows:
        split = ", ".join(f"{k} {v:.3f}s" for k, v in r["server_cpu_split"].items())
        print(f"N={r['concurrency']} server path CPU per round: {split}")
    print(f"N={scale['concurrency']}: one server {scale['one server']:.3f}s, two servers "
          f"{scale['two servers']:.3f}s: {scale['one/two']:.2f}x faster "
          f"({scale['share_on_second']:.0%} of requests on the second)")
    print(f"weight sync, {sync['mb']:.0f} MB: {sync['sync_s']:.3f}s "
          f"({sync['sync_s_per_100mb']:.3f} s per 100 MB; the file write {sync['write_s']:.3f}s)")
    write_json(args.json, "server_engine", {"rows": rows, "scale": scale, "sync": sync,
                                            "tokens": args.tokens, "repeats": args.repeats})


if __name__ == "__main__":
    main()
