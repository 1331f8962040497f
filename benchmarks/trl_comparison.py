"""Training throughput: one turnwise GRPO iteration vs one step of TRL's `GRPOTrainer`.

Same tiny model (agent/tiny.py), same chat prompts, same group size, same generation length
(exactly `--tokens` tokens per completion: turnwise ignores EOS, TRL sets `min_new_tokens`), same
reward function, same loss (PPO-clip 0.2, token mean over the batch, no KL, no reference model,
old logprobs from the rollout), same optimizer (AdamW, clip 1.0), both on the CPU in fp32,
both generating with transformers (no vLLM). They differ in how: turnwise's update runs each
group's prompt once and shares it with the group's completions (trainer/shared_prefix.py,
`train.share_prefix`), TRL runs it once per completion. An iteration is what produces one
optimizer step:

- turnwise: the orchestrator plays `--prompts` x `--group` single-turn episodes on the `hf`
  engine, GRPO credit, `TorchBackend.update`, then the new weights go to the engine, as
  `trainer/loop.py` does each iteration;
- TRL: one `GRPOTrainer` training step (generation of the same batch, rewards, loss, step),
  timed from `on_step_begin` to `on_step_end`.

They take turns in `--rounds` rounds of `--steps` iterations each (a fresh TRL trainer per round,
its first step a warm-up); figures are medians over the timed iterations. Target: TRL / turnwise
time per iteration >= 1.5.

    .venv/bin/python -m benchmarks.trl_comparison [--prompts 8 --group 8 --tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections import defaultdict

import torch

from benchmarks.common import add_output_args, build_model, quiet, write_json

WORDS = ("apple", "cabinet", "drawer", "mug", "shelf", "fridge", "lamp", "table", "book", "key")
SYSTEM = "You are an agent in a house. Name the objects you see."


def reward(text: str) -> float:
    """The share of the completion's words that name an object of the house (both sides use it)."""
    words = text.split()
    return sum(w.strip(".,") in WORDS for w in words) / max(len(words), 1)


def prompt_messages(count: int, seed: int) -> list[list[dict]]:
    """`count` chat prompts (system + user) of 1..6 sentences."""
    rng = random.Random(seed)
    return [[{"role": "system", "content": SYSTEM},
             {"role": "user", "content": " ".join(
                 f"You see a {rng.choice(WORDS)} on the {rng.choice(WORDS)}."
                 for _ in range(rng.randint(1, 6)))}]
            for _ in range(count)]


class PromptEnv:
    """One turn: the prompt, one response, its reward; then done."""

    system_prompt = SYSTEM

    async def reset(self, task):
        from turnwise.envs.base import Observation

        return Observation(text=task.data["user"], anchor=0)

    async def step(self, action_text: str):
        from turnwise.envs.base import Observation, Step

        return Step(Observation(text="", anchor=1), reward=reward(action_text), done=True,
                    info={"success": False})

    async def close(self) -> None:
        pass


class PromptSuite:
    """The benchmark's prompts as tasks; task k of a seed is the same prompt TRL sees."""

    name = "prompts"

    def make(self) -> PromptEnv:
        return PromptEnv()

    def tasks(self, split: str, count: int, seed: int):
        from turnwise.envs.base import Task

        return [Task(id=f"p{seed}-{i}", data={"user": m[1]["content"]})
                for i, m in enumerate(prompt_messages(count, seed))]

    def oracle(self, task):
        raise NotImplementedError("the benchmark trains from scratch")


class Turnwise:
    """turnwise's iteration (trainer/loop.py's four phases) on the benchmark's prompts."""

    def __init__(self, path: str, args) -> None:
        from turnwise.agent.chat import ChatFormatter
        from turnwise.agent.engines import SamplingParams, make_engine
        from turnwise.rollouts.episode import EpisodeSettings
        from turnwise.rollouts.orchestrator import Orchestrator
        from turnwise.trainer.backends.torch_backend import TorchBackend
        from turnwise.trainer.config import LossConfig, TrainConfig
        from turnwise.trainer.models import load_policy

        model, self.tokenizer = load_policy(path)
        episodes = args.prompts * args.group
        self.engine = make_engine("hf", path, self.tokenizer, max_batch=episodes)
        settings = EpisodeSettings(mode="full_trajectory", max_turns=1,
                                   max_tokens_per_turn=args.tokens,
                                   sampling=SamplingParams(temperature=1.0, ignore_eos=True))
        self.orchestrator = Orchestrator(self.engine, PromptSuite(), ChatFormatter(self.tokenizer),
                                         settings, max_concurrency=episodes, quiet=True)
        self.backend = TorchBackend(model, TrainConfig(lr=args.lr), LossConfig())
        self.args, self.iteration = args, 0
        self.phases: dict[str, list[float]] = defaultdict(list)

    def step(self) -> tuple[float, int]:
        """One iteration; its seconds and trained tokens."""
        from turnwise import credit
        from turnwise.rollouts import build_batch

        a, marks = self.args, [time.perf_counter()]
        tasks = self.orchestrator.suite.tasks("train", a.prompts, seed=10_000 + self.iteration)
        trajs = asyncio.run(self.orchestrator.rollout(tasks, group_size=a.group, tag="bench"))
        marks.append(time.perf_counter())
        batch = build_batch(trajs, pad_id=self.tokenizer.pad_token_id)
        credit.assign_advantages(batch, credit.compute("grpo", trajs, {}))
        marks.append(time.perf_counter())
        metrics = self.backend.update(batch)
        marks.append(time.perf_counter())
        self.iteration += 1
        self.engine.load_weights(self.backend.state_dict_for_engine(), version=self.iteration)
        marks.append(time.perf_counter())
        for name, start, end in zip(("generation", "credit", "update", "sync"), marks, marks[1:]):
            self.phases[name].append(end - start)
        return marks[-1] - marks[0], int(metrics["trained_tokens"])


def trl_round(path: str, args, seed: int) -> tuple[list[float], list[dict]]:
    """A fresh GRPOTrainer trained for 1 + `steps` steps; seconds of each step after the first,
    and the logs of all steps."""
    import tempfile

    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from turnwise.trainer.models import load_policy

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.seconds, self.logs, self.started = [], [], 0.0

        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            self.seconds.append(time.perf_counter() - self.started)

        def on_log(self, _args, _state, _control, logs=None, **__):
            self.logs.append(dict(logs or {}))

    def rewards(completions, **_):
        return [reward(c[0]["content"] if isinstance(c, list) else c) for c in completions]

    model, tokenizer = load_policy(path)
    steps = args.steps + 1
    data = Dataset.from_dict({"prompt": prompt_messages(args.prompts * steps, seed)})
    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, use_cpu=True, bf16=False, seed=seed, max_steps=steps,
            per_device_train_batch_size=args.prompts * args.group, gradient_accumulation_steps=1,
            num_generations=args.group, max_completion_length=args.tokens,
            generation_kwargs={"min_new_tokens": args.tokens}, temperature=1.0,
            learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0,
            weight_decay=0.0, max_grad_norm=1.0, beta=0.0, epsilon=0.2, loss_type="dapo",
            scale_rewards="group", logging_steps=1, report_to="none", save_strategy="no",
            dataloader_num_workers=0, disable_tqdm=True, shuffle_dataset=False)
        trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=config, train_dataset=data,
                              processing_class=tokenizer, callbacks=[clock])
        trainer.remove_callback(PrinterCallback)  # its log lines would bury the table
        trainer.train()
    return clock.seconds[1:], [log for log in clock.logs if "loss" in log]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=8, help="prompts per iteration")
    parser.add_argument("--group", type=int, default=8, help="completions per prompt")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per completion")
    parser.add_argument("--steps", type=int, default=3, help="timed iterations per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-6)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 keeps a shared CPU machine from thrashing)")
    add_output_args(parser, repeats=0)
    args = parser.parse_args()
    quiet()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    path = build_model(args.hidden, args.layers)

    ours = Turnwise(path, args)
    ours.step()  # warm-up
    ours.phases.clear()
    times: dict[str, list[float]] = {"turnwise": [], "trl": []}
    tokens: dict[str, int] = {}
    for r in range(args.rounds):
        for _ in range(args.steps):
            seconds, tokens["turnwise"] = ours.step()
            times["turnwise"].append(seconds)
        seconds, logs = trl_round(path, args, seed=r)
        times["trl"] += seconds
        lengths = {log.get("completions/mean_length") for log in logs}
        if lengths != {float(args.tokens)}:
            raise RuntimeError(f"TRL completions were not {args.tokens} tokens long: {lengths}")
        tokens["trl"] = args.prompts * args.group * args.tokens
    asyncio.run(ours.engine.close())
    if tokens["turnwise"] != tokens["trl"]:
        raise RuntimeError(f"unequal work: trained tokens {tokens}")

    med = {name: statistics.median(values) for name, values in times.items()}
    phases = {name: statistics.median(values) for name, values in ours.phases.items()}
    params = sum(p.numel() for p in ours.backend.model.parameters())
    print(f"model {params / 1e6:.2f}M parameters; {args.prompts} prompts x {args.group} "
          f"completions x {args.tokens} tokens = {tokens['trl']} trained tokens per iteration; "
          f"median of {len(times['turnwise'])} iterations each")
    print(f"{'':<10}{'s / iteration':>15}{'trained tok/s':>15}")
    for name in ("turnwise", "trl"):
        print(f"{name:<10}{med[name]:>15.3f}{tokens[name] / med[name]:>15.0f}")
    print(f"TRL / turnwise time per iteration: {med['trl'] / med['turnwise']:.2f}x")
    print("turnwise split: " + ", ".join(f"{k} {v:.3f}s" for k, v in phases.items()))
    write_json(args.json, "trl_comparison", {
        "prompts": args.prompts, "group": args.group, "tokens_per_completion": args.tokens,
        "params": params, "trained_tokens": tokens["trl"], "iterations": len(times["turnwise"]),
        "seconds": med, "tokens_per_s": {k: tokens[k] / med[k] for k in med},
        "trl/turnwise": med["trl"] / med["turnwise"], "turnwise_phases": phases})


if __name__ == "__main__":
    main()
