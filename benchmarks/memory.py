"""Trainer memory: peak RSS of a policy update per thousand tokens trained, by length and turns.

Each configuration runs in a fresh process (peak RSS only grows), builds synthetic episodes as
`Trajectory` objects, lays them out with `build_batch` as the loop does, and runs
`TorchBackend.update` twice. Reported: the resident set size the update adds (peak minus the
RSS just before it: activations, gradients, optimizer moments) and that per 1,000 trained
(loss-mask) tokens. Episodes: `--episodes` of a 128-token prompt and T turns of 64 response
tokens + 64 observation tokens.

- full_trajectory: one row per episode, 128 + 128 T tokens long (Search-R1 / IGPO layout);
- per_step: one row per turn, a prompt window of the task and the last 2 turns (<= 384 tokens)
  plus the response (verl-agent layout);
- prompt sweep: one turn after prompts of 128..2048 tokens (long context, few trained tokens).

    .venv/bin/python -m benchmarks.memory [--turns 1 4 16] [--prompts 512 2048]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import build_model, quiet, write_json

ROOT = Path(__file__).resolve().parents[1]
RESPONSE, OBSERVATION, WINDOW = 64, 64, 2


def rss_bytes() -> int:
    """The resident set size of this process now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The largest resident set size this process has had (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def episodes(mode: str, count: int, turns: int, prompt: int, vocab: int, seed: int = 0) -> list:
    """`count` synthetic episodes of `turns` turns in sample mode `mode` (random token ids)."""
    import torch
    from turnwise.rollouts.trajectory import Trajectory, Turn

    g = torch.Generator().manual_seed(seed)

    def ids(n: int) -> list[int]:
        return torch.randint(10, vocab, (n,), generator=g).tolist()

    out = []
    for e in range(count):
        task = ids(prompt)
        steps = []
        for t in range(turns):
            window = task[:128] + ids((RESPONSE + OBSERVATION) * min(t, WINDOW))
            steps.append(Turn(response_ids=ids(RESPONSE), response_logprobs=[-6.0] * RESPONSE,
                              observation_ids=ids(OBSERVATION) if t < turns - 1 else [],
                              prompt_ids=window if mode == "per_step" else None))
        out.append(Trajectory(uid=str(e // 4), traj_id=str(e), mode=mode, prompt_ids=task,
                              turns=steps, outcome_reward=float(e % 2)))
    return out


def worker(args) -> None:
    """One configuration in this process: two updates; report to `args.out`."""
    import torch
    from turnwise import credit
    from turnwise.rollouts import build_batch
    from turnwise.trainer.backends.torch_backend import TorchBackend
    from turnwise.trainer.config import LossConfig, TrainConfig
    from turnwise.trainer.models import load_policy

    torch.set_num_threads(args.threads)
    model, _ = load_policy(args.model)
    trajs = episodes(args.mode, args.episodes, args.turns_one, args.prompt_one,
                     model.config.vocab_size)
    batch = build_batch(trajs, pad_id=0)
    credit.assign_advantages(batch, credit.compute("grpo", trajs, {}))
    backend = TorchBackend(model, TrainConfig(lr=1e-6, micro_batch_tokens=args.micro_tokens),
                           LossConfig())
    before = rss_bytes()
    for _ in range(2):
        backend.update(batch)
    added = peak_rss_bytes() - before
    tokens = batch.num_tokens()
    Path(args.out).write_text(json.dumps({
        "mode": args.mode, "turns": args.turns_one, "prompt": args.prompt_one,
        "rows": batch.num_rows, "width": int(batch.input_ids.shape[1]),
        "input_tokens": int(batch.attention_mask.sum()), "trained_tokens": tokens,
        "update_peak_mib": added / 2**20, "mib_per_1k_trained": added / 2**20 / (tokens / 1000),
        "rss_before_mib": before / 2**20}))


def run_config(args, mode: str, turns: int, prompt: int) -> dict:
    """One configuration in a fresh process; its figures."""
    out = Path(tempfile.mkdtemp()) / "result.json"
    command = [sys.executable, "-m", "benchmarks.memory", "--worker", "--model", args.model,
               "--mode", mode, "--turns-one", str(turns), "--prompt-one", str(prompt),
               "--episodes", str(args.episodes), "--micro-tokens", str(args.micro_tokens),
               "--threads", str(args.threads), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    if done.returncode != 0:
        raise SystemExit(f"memory: {mode} turns={turns} prompt={prompt} failed:\n"
                         f"{done.stderr[-4000:]}")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--turns-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--prompt-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help="a model folder; default: built from --hidden/--layers")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--turns", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--prompts", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--micro-tokens", type=int, default=16384,
                        help="train.micro_batch_tokens (the default recipe value)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args()
    quiet()
    if args.worker:
        worker(args)
        return
    args.model = args.model or build_model(args.hidden, args.layers)
    configs = ([("full_trajectory", t, 128) for t in args.turns]
               + [("per_step", t, 128) for t in args.turns]
               + [("full_trajectory", 1, p) for p in args.prompts if p != 128])
    rows = []
    print(f"{args.episodes} episodes; turns of {RESPONSE} response + {OBSERVATION} observation "
          f"tokens; micro-batches of <= {args.micro_tokens} tokens")
    print(f"{'mode':<16}{'turns':>6}{'prompt':>7}{'rows':>6}{'width':>7}{'trained':>9}"
          f"{'update MiB':>12}{'MiB / 1k trained':>18}")
    for mode, turns, prompt in configs:
        r = run_config(args, mode, turns, prompt)
        rows.append(r)
        print(f"{mode:<16}{turns:>6}{prompt:>7}{r['rows']:>6}{r['width']:>7}"
              f"{r['trained_tokens']:>9}{r['update_peak_mib']:>12.1f}"
              f"{r['mib_per_1k_trained']:>18.2f}", flush=True)
    write_json(args.json, "memory", {"rows": rows, "episodes": args.episodes,
                                     "micro_batch_tokens": args.micro_tokens})


if __name__ == "__main__":
    main()
