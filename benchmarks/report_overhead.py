"""What the run folder's reporting costs next to the policy update it accompanies.

On one rollout batch of the tiny household model, side by side and repeated (medians):
  update   backend.update(batch)                      the iteration's main cost
  sample   RunLog.save_trajectories (limit N)         whole groups + their trainer log-probs
  plots    write_plots on a 100-iteration metrics.jsonl
and prints sample / update and plots / update.

    .venv/bin/python -m benchmarks.report_overhead [--repeats 5] [--save 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from turnwise import credit
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines import make_engine
from turnwise.envs import make_suite
from turnwise.rollouts import build_batch
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.trainer.backends.torch_backend import TorchBackend
from turnwise.trainer.config import (
    Config,
    LogConfig,
    LossConfig,
    ModelConfig,
    TrainConfig,
    WandbConfig,
)
from turnwise.trainer.models import load_policy, resolve_model
from turnwise.trainer.report.plots import write_plots
from turnwise.trainer.runlog import RunLog

from benchmarks.common import add_output_args, median_time, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output_args(parser, repeats=5)
    parser.add_argument("--save", type=int, default=8, help="log.save_trajectories")
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    args = parser.parse_args()

    path = resolve_model(ModelConfig(name="tiny:household"))
    model, tokenizer = load_policy(path, "float32")
    suite = make_suite("household", max_steps=8, task_types=["pick_and_place_simple"])
    engine = make_engine("hf", path, tokenizer)
    settings = EpisodeSettings(mode="per_step", max_turns=8, max_tokens_per_turn=24)
    orchestrator = Orchestrator(engine, suite, ChatFormatter(tokenizer), settings)
    trajs = asyncio.run(orchestrator.rollout(suite.tasks("train", args.tasks, 0),
                                             group_size=args.group, tag="bench"))
    for i, t in enumerate(trajs):  # distinct scores: non-zero advantages, as in training
        t.outcome_reward = float(i % 3)
    per_turn = credit.compute("grpo", trajs, {})
    batch = build_batch(trajs, pad_id=tokenizer.pad_token_id)
    credit.assign_advantages(batch, per_turn)
    backend = TorchBackend(model, TrainConfig(lr=1e-6), LossConfig())

    with tempfile.TemporaryDirectory() as root:
        cfg = Config(log=LogConfig(dir=root, run_name="bench", save_trajectories=args.save,
                                   tensorboard=False, wandb=WandbConfig(mode="disabled")))
        log = RunLog(cfg.log, name=cfg.name, resolved=cfg.model_dump())
        records = [{"iteration": i, "rollout/reward": i / 100, "rollout/success": i / 200,
                    "train/pg_loss": 0.1, "train/approx_kl": 1e-3, "train/entropy": 1.0,
                    "train/clipfrac": 0.01, "rollout/turns": 5.0, "rollout/response_tokens": 50.0,
                    "rollout/turn_tokens": 10.0, "rollout/tool_calls": 1.0,
                    "rollout/tool_error_rate": 0.1, "time/generation": 1.0, "time/tools": 0.1,
                    "time/credit": 0.01, "time/update": 2.0, "time/sync": 0.1}
                   for i in range(1, 101)]
        (Path(root) / "plots_run").mkdir()
        (Path(root) / "plots_run" / "metrics.jsonl").write_text(
            "\n".join(json.dumps(r) for r in records) + "\n")
        write_plots(Path(root) / "plots_run")  # warm: matplotlib import and font cache
        update = median_time(lambda: backend.update(batch), args.repeats)
        sample = median_time(lambda: log.save_trajectories(1, trajs, per_turn, batch, backend, tokenizer),
                       args.repeats)
        plots = median_time(lambda: write_plots(Path(root) / "plots_run"), args.repeats)
        size = (log.dir / "trajectories" / "iter_00001.jsonl").stat().st_size

    print(f"batch: {len(trajs)} trajectories, {batch.num_rows} rows, "
          f"{batch.num_tokens()} trained tokens; sample: {args.save} trajectories, "
          f"{size / 1024:.0f} KiB")
    print(f"update {update:.3f}s  sample {sample:.3f}s  plots {plots:.3f}s  "
          f"(medians of {args.repeats})")
    print(f"sample / update = {sample / update:.3f}   plots / update = {plots / update:.3f}")
    write_json(args.json, "report_overhead", {
        "update_s": update, "sample_s": sample, "plots_s": plots, "sample_kib": size / 1024,
        "ratios": {"sample / update": sample / update, "plots / update": plots / update}})


if __name__ == "__main__":
    main()
