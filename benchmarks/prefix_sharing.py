"""Update time with and without shared prefixes (`train.share_prefix`), on real rollouts.

The tiny household model plays household tasks in groups of 8; the batch of each sample mode
is then trained by two torch backends on copies of the same model, one running each group's
common prefix once (trainer/shared_prefix.py), one running every row whole. They take turns;
figures are medians. Token counts say what each computes: model-input tokens of the padded
micro-batches (plain) and what sharing leaves of them.

    .venv/bin/python -m benchmarks.prefix_sharing [--tasks 8 --repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import copy

import torch
from turnwise import credit
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines import SamplingParams, make_engine
from turnwise.envs.base import make_suite
from turnwise.rollouts import build_batch
from turnwise.rollouts.batch import RolloutBatch
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.trainer.backends.torch_backend import TorchBackend
from turnwise.trainer.config import LossConfig, ModelConfig, TrainConfig
from turnwise.trainer.microbatch import micro_batches
from turnwise.trainer.models import load_policy, resolve_model
from turnwise.trainer.shared_prefix import plan

from benchmarks.common import add_output_args, interleaved, medians, quiet, write_json

# (label, sample mode, turns, minibatches): per_step as the household cpu-tiny preset trains.
WORKLOADS = (("per_step, history 2", "per_step", 10, 4),
             ("full_trajectory", "full_trajectory", 6, 1))


def computed_tokens(batch: RolloutBatch, budget: int, minibatches: int) -> tuple[int, int]:
    """Model-input tokens of padded micro-batches cut as the update cuts them: plain, and with
    sharing (the prefix pass counts each group's prefix once, the suffix pass each row's padded
    suffix). Mini-batches are taken in row order here; the update shuffles rows first, so its
    own split differs a little (the timings above are of the update itself)."""
    plain = shared = 0
    for rows in torch.tensor_split(torch.arange(batch.num_rows), minibatches):
        for micro in micro_batches(batch.select(rows), budget, packed=False, by_length=True):
            width = micro.input_ids.shape[1]
            plain += micro.num_rows * width
            sharing = plan(micro.input_ids, micro.attention_mask, micro.loss_mask, micro.row_group)
            if sharing is None:
                shared += micro.num_rows * width
                continue
            prefix, index = sharing
            groups = torch.zeros(int(index.max()) + 1, dtype=torch.long).scatter_reduce(
                0, index, prefix, reduce="amax", include_self=False)
            suffix = int((micro.row_lengths() - prefix).max())
            shared += len(groups) * int(groups.max()) + micro.num_rows * suffix
    return plain, shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=8, help="tasks (groups of 8) per batch")
    parser.add_argument("--threads", type=int, default=1)
    add_output_args(parser, repeats=5)
    args = parser.parse_args()
    quiet()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    path = resolve_model(ModelConfig(name="tiny:household"))
    model, tokenizer = load_policy(path)
    engine = make_engine("hf", path, tokenizer)
    suite = make_suite("household", max_steps=10, task_types=["pick_and_place_simple"],
                       max_receptacles=5, distractors=[1, 3])
    print(f"tiny household model; {args.tasks} tasks x 8 episodes per batch; update with "
          f"torch, {args.threads} thread(s); median of {args.repeats} interleaved runs")
    print(f"{'rows':<22}{'batch':>12}{'plain s':>10}{'shared s':>10}{'plain/shared':>14}"
          f"{'computed tokens':>20}")
    results = []
    for label, mode, turns, minibatches in WORKLOADS:
        settings = EpisodeSettings(mode=mode, max_turns=turns, max_tokens_per_turn=24,
                                   max_episode_tokens=4096,
                                   sampling=SamplingParams(temperature=1.0))
        orch = Orchestrator(engine, suite, ChatFormatter(tokenizer), settings, quiet=True)
        trajs = [t for t in asyncio.run(orch.rollout(suite.tasks("train", args.tasks, 7),
                                                     group_size=8, tag=mode)) if t.turns]
        batch = build_batch(trajs, pad_id=tokenizer.pad_token_id)
        credit.assign_advantages(batch, credit.compute("grpo", trajs, {}))
        backends = {
            share: TorchBackend(copy.deepcopy(model), TrainConfig(
                lr=1e-5, minibatches=minibatches, share_prefix=share), LossConfig())
            for share in (False, True)}
        times = medians(interleaved({"plain": lambda: backends[False].update(batch),
                                     "shared": lambda: backends[True].update(batch)},
                                    args.repeats))
        plain_tokens, shared_tokens = computed_tokens(batch, TrainConfig().micro_batch_tokens,
                                                      minibatches)
        ratio = times["plain"] / times["shared"]
        print(f"{label:<22}{f'{batch.num_rows} x {batch.input_ids.shape[1]}':>12}"
              f"{times['plain']:>10.3f}{times['shared']:>10.3f}{ratio:>13.2f}x"
              f"{f'{plain_tokens} -> {shared_tokens}':>20}")
        results.append({"rows": label, "mode": mode, "batch_rows": batch.num_rows,
                        "real_tokens": int(batch.row_lengths().sum()),
                        "trained_tokens": batch.num_tokens(), "seconds": times,
                        "plain/shared": ratio, "computed_tokens": [plain_tokens, shared_tokens]})
    asyncio.run(engine.close())
    write_json(args.json, "prefix_sharing", {"tasks": args.tasks, "workloads": results})


if __name__ == "__main__":
    main()
