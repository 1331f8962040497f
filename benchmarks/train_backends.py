"""Training throughput and peak memory: torch backend vs DeepSpeed ZeRO-2 / ZeRO-3, side by side.

    python -m benchmarks.train_backends                      # CPU: tiny model, 2 DeepSpeed ranks
    python -m benchmarks.train_backends --device cuda --hidden 1024 --layers 24 --procs 1

Each configuration runs in fresh processes (DeepSpeed under torchrun) on the same synthetic
rollout batch, split between the ranks; one warm-up update, then the median of `--repeats`
timed updates. Tokens/s counts every input token of the batch (all ranks) per second of
`Backend.update`. Peak memory is per rank and counts what training adds: on CPU the growth of the resident set
size from before the model was loaded, on GPU the max allocated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import build_model, write_json

ROOT = Path(__file__).resolve().parents[1]


def synthetic_batch(rows: int, length: int, vocab: int, seed: int = 0):
    """Rows of 50-100% of `length` tokens, the second half of each trained on."""
    import torch
    from turnwise.rollouts.batch import RolloutBatch

    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(length // 2, length + 1, (rows,), generator=g)
    positions = torch.arange(length).unsqueeze(0)
    attention = (positions < lens.unsqueeze(1)).long()
    loss_mask = (attention.bool() & (positions >= (lens // 2).unsqueeze(1))).float()
    return RolloutBatch(
        input_ids=torch.randint(0, vocab, (rows, length), generator=g) * attention,
        attention_mask=attention, loss_mask=loss_mask,
        old_logprobs=-6.0 * loss_mask, advantages=torch.randn(rows, length, generator=g) * loss_mask,
        turn_index=torch.where(loss_mask > 0, 0, -1), row_traj=torch.arange(rows),
        row_group=torch.arange(rows) // 4, row_version=torch.zeros(rows, dtype=torch.long))


def worker(args) -> None:
    """One process of one configuration: time `repeats` updates, report to `args.out`."""
    import torch
    from turnwise.trainer.backends.base import make_backend
    from turnwise.trainer.config import Config
    from turnwise.trainer.dist import init_world

    if args.backend == "deepspeed" and args.device == "cpu":
        # The CPU shared-memory all-reduce is compiled on first use; gloo is enough here.
        import deepspeed.ops

        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    torch.set_num_threads(args.threads)
    data = {"train": {"backend": args.backend, "lr": 1e-5, "micro_batch_tokens": args.micro_tokens,
                      "precision": "bf16" if args.device == "cuda" else "fp32",
                      "gradient_checkpointing": args.checkpointing}}
    if args.backend == "deepspeed":
        data["deepspeed"] = {"zero_stage": args.stage}
    cfg = Config.model_validate(data)
    world = init_world(args.backend)
    device = f"cuda:{world.local_rank}" if args.device == "cuda" else "cpu"
    # What the process holds before the model exists (libraries, the model's code), so the
    # report shows what training itself costs.
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.from_pretrained(args.model))]
    before = 0 if args.device == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    backend = make_backend(cfg, args.model, world=world, device=device)
    vocab = backend.model.config.vocab_size
    batch = synthetic_batch(args.rows, args.length, vocab)
    share = batch.select(range(world.rank, args.rows, world.size))
    backend.update(share)  # warm-up
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(args.repeats):
        world.barrier()
        if args.device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        backend.update(share)
        if args.device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    peak = (torch.cuda.max_memory_allocated() if args.device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    peaks = world.sum([0.0] * world.rank + [float(peak - before)]
                      + [0.0] * (world.size - world.rank - 1))
    times = world.sum([0.0] * world.rank * args.repeats + seconds
                      + [0.0] * (world.size - world.rank - 1) * args.repeats)
    if world.is_main:
        per_update = [max(times[r * args.repeats + i] for r in range(world.size))
                      for i in range(args.repeats)]
        tokens = float(batch.attention_mask.sum())
        Path(args.out).write_text(json.dumps({
            "tokens_per_s": tokens / statistics.median(per_update),
            "peak_bytes": max(peaks),
            "params": sum(getattr(p, "ds_numel", p.numel()) for p in backend.model.parameters()),
            "seconds": per_update}))


def run_config(args, backend: str, stage: int, procs: int, threads: int) -> dict:
    out = Path(tempfile.mkdtemp()) / "result.json"
    common = ["--worker", "--backend", backend, "--stage", str(stage), "--model", args.model,
              "--out", str(out), "--rows", str(args.rows), "--length", str(args.length),
              "--repeats", str(args.repeats), "--micro-tokens", str(args.micro_tokens),
              "--device", args.device, "--threads", str(threads)]
    if args.checkpointing:
        common.append("--checkpointing")
    if backend == "torch":
        command = [sys.executable, "-m", "benchmarks.train_backends", *common]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", str(procs), "-m", "benchmarks.train_backends", *common]
    # The workers import `benchmarks` from the repository root.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{backend} stage {stage} failed:\n{done.stderr[-4000:]}")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    parser.add_argument("--stage", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--model", help="a model folder; default: built from --hidden/--layers")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--micro-tokens", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--procs", type=int, default=2, help="DeepSpeed processes")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    args.model = args.model or build_model(args.hidden, args.layers)
    # torch twice: one process with the threads of one rank, and with the cores of all ranks.
    configs = [("torch", 0, 1, args.threads), ("torch", 0, 1, args.threads * args.procs),
               ("deepspeed", 2, args.procs, args.threads), ("deepspeed", 3, args.procs, args.threads)]
    results = [(name, stage, procs, threads, run_config(args, name, stage, procs, threads))
               for name, stage, procs, threads in configs]
    base = results[0][4]["tokens_per_s"]
    print(f"model: {results[0][4]['params'] / 1e6:.1f}M parameters, {args.rows} rows x <= "
          f"{args.length} tokens, device {args.device}, median of {args.repeats} updates")
    print(f"{'backend':<20}{'procs':>6}{'threads':>8}{'tokens/s':>11}{'ratio':>7}"
          f"{'peak MB/rank':>14}")
    for name, stage, procs, threads, result in results:
        label = "torch" if name == "torch" else f"deepspeed ZeRO-{stage}"
        print(f"{label:<20}{procs:>6}{threads:>8}{result['tokens_per_s']:>11.0f}"
              f"{result['tokens_per_s'] / base:>7.2f}{result['peak_bytes'] / 2**20:>14.0f}")
    write_json(args.json, "train_backends", {
        "params": results[0][4]["params"], "rows": args.rows, "length": args.length,
        "configs": [{"backend": "torch" if name == "torch" else f"deepspeed ZeRO-{stage}",
                     "procs": procs, "threads": threads, "tokens_per_s": r["tokens_per_s"],
                     "ratio": r["tokens_per_s"] / base, "peak_mib_per_rank": r["peak_bytes"] / 2**20}
                    for name, stage, procs, threads, r in results]})


if __name__ == "__main__":
    main()
