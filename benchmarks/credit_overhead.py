"""What credit assignment costs, measured side by side with a real tiny-model iteration.

1. Each registered estimator on 512 groups x 8 trajectories x 50 steps (204,800 turns), called
   through `credit.compute` on `Trajectory` objects as the loop calls it (median of repeats).
2. A tiny-model RL iteration on CPU (household, per-step, GiGPO): rollout, credit, update,
   weight sync (median over iterations); each estimator on that iteration's own trajectories.
3. IGPO's scoring pass on full-trajectory episodes against the training step on the same batch,
   against one trainer forward over those rows, and against scoring without prefix reuse (one
   forward per turn prefix).

    .venv/bin/python -m benchmarks.credit_overhead [--repeats 5] [--iterations 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np
import torch
from turnwise import credit
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines import SamplingParams, make_engine
from turnwise.envs.base import make_suite
from turnwise.rollouts import build_batch
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.rollouts.trajectory import Trajectory, Turn
from turnwise.trainer.backends.torch_backend import TorchBackend
from turnwise.trainer.config import LossConfig, ModelConfig, TrainConfig
from turnwise.trainer.igpo_scoring import make_probe, score_answer_logprobs
from turnwise.trainer.models import load_policy, resolve_model

from benchmarks.common import add_output_args, median_time, write_json

PAPER_ITERATION_S = 363.0  # GiGPO paper: one ALFWorld iteration; GiGPO's own share 0.54 s
ESTIMATORS = [("grpo", {}), ("rloo", {}), ("reinforce_pp", {}), ("gigpo", {}),
              ("gigpo", {"similarity": 0.95}), ("igpo", {}), ("arpo", {"attribution": "soft"}),
              ("arpo", {"attribution": "hard"})]


def synthetic(groups: int, per_group: int, steps: int, seed: int = 0) -> list[Trajectory]:
    """Household-like episodes: anchors from 40 observation strings per task, sparse success
    reward, 10% invalid steps, IGPO log-probs, and every 4th trajectory an ARPO branch."""
    rng = np.random.default_rng(seed)
    out = []
    for g in range(groups):
        states = [f"task {g}: you are in room {s}; you see {s % 7} objects and a door." for s in range(40)]
        for k in range(per_group):
            visited = rng.integers(0, 40, steps)
            success = rng.random() < 0.3
            turns = [Turn(response_ids=[5], response_logprobs=[-1.0], anchor=states[v],
                          reward=10.0 if success and t == steps - 1 else 0.0,
                          invalid=bool(rng.random() < 0.1), answer_logprob=float(-3 + t * 0.01))
                     for t, v in enumerate(visited)]
            parent = f"{g}/{k - 1}" if k % 4 == 3 else None
            out.append(Trajectory(uid=str(g), traj_id=f"{g}/{k}", mode="per_step", prompt_ids=[1],
                                  turns=turns, outcome_reward=10.0 if success else 0.0,
                                  parent_id=parent, branch_turn=steps // 2 if parent else None,
                                  answer_logprob_prompt=-3.0))
    return out


def label(name: str, options: dict) -> str:
    return name + "".join(f" {k}={v}" for k, v in options.items())


def bench_estimators(trajs: list[Trajectory], repeats: int) -> dict[str, float]:
    return {label(n, o): median_time(lambda n=n, o=o: credit.compute(n, trajs, o), repeats)
            for n, o in ESTIMATORS}


def answer_tasks(suite, count: int, seed: int):
    tasks = suite.tasks("train", count, seed)
    for task in tasks:
        task.answer = "the mug is in the cabinet"
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser()
    add_output_args(parser, repeats=5)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--groups", type=int, default=512, help="groups of the at-scale batch")
    parser.add_argument("--tasks", type=int, default=4, help="tasks (groups of 8) per tiny iteration")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)

    print(f"== 1. estimators at {args.groups} groups x 8 trajectories x 50 steps "
          f"({args.groups * 400:,} turns) ==")
    big = synthetic(args.groups, 8, 50)
    at_scale = bench_estimators(big, args.repeats)
    del big

    print(f"== 2. tiny-model iteration (household, per_step, {args.tasks} tasks x 8, <= 12 turns, "
          "GiGPO) ==")
    path = resolve_model(ModelConfig(name="tiny:household"))
    model, tokenizer = load_policy(path)
    engine = make_engine("hf", path, tokenizer)
    formatter = ChatFormatter(tokenizer)
    suite = make_suite("household", max_steps=12, task_types=["pick_and_place_simple"])
    settings = EpisodeSettings(mode="per_step", max_turns=12, max_tokens_per_turn=24,
                               sampling=SamplingParams(temperature=1.0))
    orch = Orchestrator(engine, suite, formatter, settings)
    backend = TorchBackend(model, TrainConfig(lr=1e-5), LossConfig(clip_high=0.28))
    iteration_s, trajs = [], []
    for it in range(args.iterations):
        started = time.perf_counter()
        trajs = [t for t in asyncio.run(orch.rollout(suite.tasks("train", args.tasks, it), group_size=8,
                                                     tag=f"it{it}")) if t.turns]
        batch = build_batch(trajs, pad_id=tokenizer.pad_token_id)
        credit.assign_advantages(batch, credit.compute("gigpo", trajs, {}))
        backend.update(batch)
        engine.load_weights(backend.state_dict_for_engine(), version=it + 1)
        iteration_s.append(time.perf_counter() - started)
    iteration = statistics.median(iteration_s)
    for t in trajs:  # model-free estimators only need numbers here
        t.answer_logprob_prompt = -3.0
        for k, turn in enumerate(t.turns):
            turn.answer_logprob = -3.0 + 0.1 * k
    turns = sum(len(t.turns) for t in trajs)
    on_iteration = bench_estimators(trajs, args.repeats)

    print(f"tiny iteration: median {iteration:.2f} s over {args.iterations} "
          f"({', '.join(f'{s:.2f}' for s in iteration_s)}); its batch: {len(trajs)} episodes, {turns} turns")
    print(f"{'estimator':<30}{f'{args.groups * 400:,} turns':>15}{'/ paper 363 s':>15}{'/ tiny iter':>13}"
          f"{'its own batch':>15}{'/ tiny iter':>13}")
    for key in at_scale:
        print(f"{key:<30}{at_scale[key]:>13.3f} s{at_scale[key] / PAPER_ITERATION_S:>14.3%}"
              f"{at_scale[key] / iteration:>13.2%}{on_iteration[key] * 1e3:>12.2f} ms"
              f"{on_iteration[key] / iteration:>13.3%}")

    print(f"== 3. IGPO scoring pass vs the training step (full_trajectory, {args.tasks} tasks x 8, "
          "<= 6 turns) ==")
    full = EpisodeSettings(mode="full_trajectory", max_turns=6, max_tokens_per_turn=24,
                           max_episode_tokens=2048, sampling=SamplingParams(temperature=1.0))
    orch = Orchestrator(engine, suite, formatter, full)
    trajs = [t for t in asyncio.run(orch.rollout(answer_tasks(suite, args.tasks, 99), group_size=8, tag="igpo"))
             if t.turns]
    batch = build_batch(trajs, pad_id=tokenizer.pad_token_id)
    batch.advantages = torch.randn_like(batch.old_logprobs) * batch.loss_mask
    probes = sum(len(t.turns) for t in trajs)
    scoring = median_time(lambda: score_answer_logprobs(model, tokenizer, trajs), args.repeats)
    step = median_time(lambda: backend.update(batch), args.repeats)
    forward = median_time(lambda: backend.forward_logprobs(batch), args.repeats)
    probe = make_probe(tokenizer, "the mug is in the cabinet")

    def naive() -> None:  # one forward per (trajectory, turn prefix), batched per trajectory
        with torch.no_grad():
            for t in trajs:
                rows = [t.context_ids(k) + probe.ids for k in range(len(t.turns))]
                width = max(len(r) for r in rows)
                ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
                mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
                model(input_ids=ids, attention_mask=mask)

    unshared = median_time(naive, args.repeats)
    print(f"{len(trajs)} episodes, {probes} probes, {batch.num_tokens()} trained tokens")
    print(f"scoring pass {scoring:.3f} s | training step {step:.3f} s | share of the step "
          f"{scoring / step:.1%} | share of a tiny iteration {scoring / iteration:.1%}")
    print(f"one trainer forward over the same rows {forward:.3f} s: scoring / forward "
          f"{scoring / forward:.2f} (the probes ride on one forward of each episode)")
    print(f"without prefix reuse {unshared:.3f} s: packed prefixes are {unshared / scoring:.1f}x faster")
    write_json(args.json, "credit_overhead", {
        "groups": args.groups, "estimators_at_scale_s": at_scale,
        "estimators_on_iteration_s": on_iteration, "tiny_iteration_s": iteration,
        "igpo": {"scoring_s": scoring, "training_step_s": step, "forward_s": forward,
                 "unshared_s": unshared, "share_of_step": scoring / step,
                 "share_of_iteration": scoring / iteration, "probes": probes}})


if __name__ == "__main__":
    main()
