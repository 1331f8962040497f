"""The GPU check's sections that run turnwise's own loop on the household_gigpo recipe (gpu
preset, real-size model): one full iteration with its time split, and the engine/trainer
logprob gap in bf16 with what `train.old_logprobs: recompute` and `loss.is_correction` do."""

from __future__ import annotations

import asyncio
import time

import torch

from benchmarks.gpu_common import Context, Result

# The gpu preset as it stands, except what one GPU without vLLM or DeepSpeed needs: the `hf`
# engine and the torch backend (the deepspeed section compares backends), one iteration, no
# evaluation, no SFT, no tensorboard or wandb; micro-batches of 8192 tokens as in the update
# section (see gpu_common.Sizes.micro_tokens).
_COMMON = ["preset=gpu", "engine.kind=hf", "train.backend=torch", "train.iterations=1",
           "train.micro_batch_tokens=8192", "eval.tasks=0", "sft.episodes=0", "log.quiet=true",
           "log.tensorboard=false", "log.wandb.mode=disabled"]


def overrides(shape: tuple[int, int, int, int]) -> list[str]:
    """household_gigpo's gpu preset cut to `shape` = (tasks, group size, turns, tokens per
    turn); turns and tokens are cut from 50 x 512 so that an iteration takes seconds."""
    tasks, group, turns, tokens = shape
    return [*_COMMON, f"rollout.tasks_per_iteration={tasks}", f"rollout.group_size={group}",
            f"rollout.max_turns={turns}", f"rollout.max_tokens_per_turn={tokens}"]


def _recipe(ctx: Context, shape: tuple[int, int, int, int], *extra: str):
    """The recipe on the small model's folder, its run folder a fresh scratch one."""
    from turnwise.trainer.recipe import load_recipe

    return load_recipe("household_gigpo", [
        *overrides(shape), *extra, f"model.name={ctx.folders.path(ctx.specs[0])}",
        f"log.dir={ctx.folders.scratch('runs_')}"])


# (figure, metric) of one iteration's record, as docs/metrics.md names them.
_SPLIT = (("rollout (waiting for groups)", "time/rollout"), ("  of it generation", "time/generation"),
          ("  of it tools / env", "time/tools"), ("credit", "time/credit"),
          ("trajectory sample", "time/sample"), ("update", "time/update"), ("sync", "time/sync"))


def iteration(ctx: Context, budget_s: float) -> Result:
    """`turnwise train household_gigpo preset=gpu` for one iteration, through trainer.loop."""
    from turnwise.trainer.loop import train

    cfg = _recipe(ctx, ctx.sizes.iteration)
    started = time.perf_counter()
    record = train(cfg, echo=lambda *_args, **_kw: None).history[0]
    wall = time.perf_counter() - started
    total = record["time/iteration"]
    result = Result(figures={"model": ctx.specs[0].name, "overrides": overrides(ctx.sizes.iteration),
                             "wall_s": wall, "record": record})
    result.rows.append(("start-up (load engine, backend, reference)", f"{wall - total:.1f} s"))
    result.rows.append(("iteration", (f"{total:.1f} s ({record['rollout/episodes']:.0f} "
                                      f"episodes, {record['train/trained_tokens']:.0f} trained "
                                      "tokens)")))
    for label, key in _SPLIT:
        if key in record:
            result.rows.append((label, f"{record[key]:.2f} s ({record[key] / total:.0%})"))
    result.rows.append(("generation / update tokens/s",
                        f"{record['perf/gen_tokens_per_s']:.0f} / "
                        + f"{record['perf/train_tokens_per_s']:.0f}"))
    result.rows.append(("train/rollout_logprob_diff (bf16)",
                        f"{record['train/rollout_logprob_diff']:.2e}"))
    result.ratios.update({
        "iteration_s": total, "iteration_update_share": record["time/update"] / total,
        "iteration_rollout_share": record["time/rollout"] / total,
        "iteration_rollout_logprob_diff": record["train/rollout_logprob_diff"]})
    return result


def _variants():
    from turnwise.trainer.losses import Correction

    return (("old_logprobs: rollout", "rollout", None),
            ("old_logprobs: recompute", "recompute", None),
            ("recompute + is_correction mask, cap 2", "recompute",
             Correction("mask", "token", 2.0)),
            ("recompute + is_correction truncate, cap 2", "recompute",
             Correction("truncate", "token", 2.0)))


def logprob_gap(ctx: Context, budget_s: float) -> Result:
    """One rollout by the bf16 `hf` engine, then each way of forming old logprobs: the gap the
    run logs, where PPO's ratio starts, and what the correction weights do."""
    from turnwise.trainer.build import basics, build_run

    # No KL: a reference policy would change nothing here and cost a model's memory.
    cfg = _recipe(ctx, ctx.sizes.gap, "kl.coef=0")
    path = cfg.model.name
    base = basics(cfg, path)
    run = build_run(cfg, base, path)
    try:
        tasks, group = ctx.sizes.gap[:2]
        trajectories = asyncio.run(run.orchestrator.rollout(
            base.suite.tasks(cfg.env.train_split, tasks, cfg.seed), group_size=group, tag="gap"))
        return _gap_variants(cfg, base, run.backend, trajectories)
    finally:
        asyncio.run(run.close())


def _gap_variants(cfg, base, backend, trajectories) -> Result:
    from turnwise.rollouts.batch import build_batch
    from turnwise.trainer.credit_stage import CreditStage
    from turnwise.trainer.update import LRSchedule

    # lr 0: the updates below leave the weights as they are, so every variant scores the same.
    backend.begin_phase(LRSchedule(0.0))
    behaviour = build_batch(trajectories, pad_id=base.pad_id)
    result = Result(figures={"trained_tokens": behaviour.num_tokens(), "variants": []})
    for label, proximal, correction in _variants():
        stage = CreditStage(cfg.credit, cfg.kl, backend=backend, tokenizer=base.tokenizer,
                            pad_id=base.pad_id, temperature=cfg.rollout.temperature,
                            proximal=proximal, correction=correction)
        credited = stage(trajectories)
        trained = backend.update(credited.batch)
        # What the run logs: the credit stage's measurement under recompute, else the update's.
        logged = credited.metrics.get("train/rollout_logprob_diff", trained["rollout_logprob_diff"])
        row = {"variant": label, "logged_rollout_logprob_diff": logged,
               "ppo_start_abs_logratio": trained["rollout_logprob_diff"],
               "clipfrac": trained.get("clipfrac"),
               **{k: v for k, v in credited.metrics.items() if k.startswith("offpolicy/")}}
        if proximal == "recompute":
            row.update(_gap_spread(credited.batch.old_logprobs, behaviour))
        result.figures["variants"].append(row)
        result.rows.append((label, _describe(row)))
    rows = result.figures["variants"]
    result.ratios.update({"rollout_logprob_diff_bf16": rows[0]["logged_rollout_logprob_diff"],
                          "ppo_start_abs_logratio_rollout": rows[0]["ppo_start_abs_logratio"],
                          "ppo_start_abs_logratio_recompute": rows[1]["ppo_start_abs_logratio"]})
    for row in rows[2:]:
        for key in ("offpolicy/weight_mean", "offpolicy/masked_frac", "offpolicy/truncated_frac"):
            if key in row:
                mode = "mask" if "mask" in row["variant"] else "truncate"
                result.ratios[f"is_correction_{mode}_{key.split('/')[1]}"] = row[key]
    return result


def _gap_spread(proximal: torch.Tensor, behaviour) -> dict[str, float]:
    """The 99th percentile and the largest |trainer - engine| logprob over trained tokens."""
    on = behaviour.loss_mask > 0
    gaps = (proximal[on] - behaviour.old_logprobs[on]).abs().float()
    if not len(gaps):
        return {}
    return {"gap_p99": float(torch.quantile(gaps, 0.99)), "gap_max": float(gaps.max())}


def _describe(row: dict) -> str:
    text = (f"logged gap {row['logged_rollout_logprob_diff']:.2e}, PPO start |dlogp| "
            f"{row['ppo_start_abs_logratio']:.2e}")
    if row.get("clipfrac") is not None:
        text += f", clipfrac {row['clipfrac']:.3f}"
    for key in ("offpolicy/weight_mean", "offpolicy/masked_frac", "offpolicy/truncated_frac"):
        if key in row:
            text += f", {key.split('/')[1]} {row[key]:.3f}"
    return text
