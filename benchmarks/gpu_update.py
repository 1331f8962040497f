"""The GPU check's update sections: the torch backend's update on real-size models (tokens/s,
TFLOP/s, MFU, peak memory) padded, with gradient checkpointing, packed and with shared
prefixes; and DeepSpeed ZeRO-2 / ZeRO-3 against the torch backend, each in a fresh process."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import torch

from benchmarks.gpu_common import (Context, Result, SectionSkipped, SectionTimeout, gib,
                                   interleaved_medians, mfu, peak_memory, peak_memory_reset)
from benchmarks.gpu_models import ModelSpec, build_model, free_memory, parameter_count
from benchmarks.train_backends import synthetic_batch

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of running the same update."""

    label: str
    batch: str = "ragged"  # ragged: rows of 50-100% length; grouped: rows sharing a prefix
    packing: bool = False
    checkpointing: bool = False
    share_prefix: bool = False
    attention: str | None = None  # an attention implementation other than the default (sdpa)


def small_variants() -> list[Variant]:
    """Every variant for the small model; packed with flash attention where it is installed."""
    variants = [Variant("padded"), Variant("padded, checkpointing", checkpointing=True),
                Variant("packed, sdpa", packing=True)]
    if find_spec("flash_attn") is not None:
        variants.append(Variant("packed, flash_attention_2", packing=True,
                                attention="flash_attention_2"))
    return variants + [Variant("groups, prefix run per row", batch="grouped"),
                       Variant("groups, prefix shared", batch="grouped", share_prefix=True)]


LARGE_VARIANTS = [Variant("padded"), Variant("padded, checkpointing", checkpointing=True)]


def grouped_batch(groups: int, group_size: int, prefix: int, suffix: int, vocab: int,
                  seed: int = 0):
    """Groups of rows that share their first `prefix` tokens (a GRPO group's prompt), then
    50-100% of `suffix` tokens of their own, which are trained on."""
    from turnwise.rollouts.batch import RolloutBatch

    g = torch.Generator().manual_seed(seed)
    rows, width = groups * group_size, prefix + suffix
    ids = torch.randint(1, vocab, (rows, width), generator=g)
    ids[:, :prefix] = torch.randint(1, vocab, (groups, prefix), generator=g).repeat_interleave(
        group_size, 0)
    lens = prefix + torch.randint(suffix // 2, suffix + 1, (rows,), generator=g)
    positions = torch.arange(width).unsqueeze(0)
    attention = (positions < lens.unsqueeze(1)).long()
    loss_mask = (attention.bool() & (positions >= prefix)).float()
    return RolloutBatch(
        input_ids=ids * attention, attention_mask=attention, loss_mask=loss_mask,
        old_logprobs=torch.zeros_like(loss_mask),
        advantages=torch.randn(rows, width, generator=g) * loss_mask,
        turn_index=torch.where(loss_mask > 0, 0, -1), row_traj=torch.arange(rows),
        row_group=torch.arange(rows) // group_size, row_version=torch.zeros(rows, dtype=torch.long))


def batches(ctx: Context, vocab: int) -> dict:
    """The ragged and the grouped batch, old logprobs those of a uniform policy (random weights
    are close to one), so PPO's ratios start near 1 as in training."""
    s = ctx.sizes
    made = {"ragged": synthetic_batch(s.update_rows, s.update_length, vocab),
            "grouped": grouped_batch(s.groups, s.group_size, s.prefix, s.suffix, vocab)}
    for batch in made.values():
        batch.old_logprobs = -math.log(vocab) * batch.loss_mask
    return made


def update(ctx: Context, spec: ModelSpec, variants: list[Variant], micro_tokens: int,
           budget_s: float) -> Result:
    """Each variant on a fresh model: one warm-up update, then timed updates."""
    vocab = spec.config["vocab_size"]
    made = batches(ctx, vocab)
    result = Result(figures={"model": spec.name, "micro_batch_tokens": micro_tokens,
                             "batches": {k: {"rows": b.num_rows, "tokens": int(b.attention_mask.sum()),
                                             "trained": b.num_tokens()} for k, b in made.items()},
                             "variants": []})
    started = time.perf_counter()
    for i, variant in enumerate(variants):
        share = (budget_s - (time.perf_counter() - started)) / (len(variants) - i)
        try:
            row = _run_variant(ctx, spec, variant, made[variant.batch], micro_tokens, share)
        except SectionTimeout:
            raise
        except Exception as exc:  # noqa: BLE001 - an OOM or unsupported setting: the next runs
            row = {"variant": variant.label, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        finally:
            free_memory()
        result.figures["variants"].append(row)
        result.rows.append((f"{spec.name} {variant.label}", _describe(row)))
    _headlines(result, spec.key)
    return result


def _run_variant(ctx: Context, spec: ModelSpec, variant: Variant, batch, micro_tokens: int,
                 budget_s: float) -> dict:
    from turnwise.trainer.backends.torch_backend import TorchBackend
    from turnwise.trainer.config import LossConfig, TrainConfig

    model = build_model(spec, ctx.tokenizer, ctx.device)
    if variant.attention:
        model.set_attn_implementation(variant.attention)
    params = parameter_count(model)
    train = TrainConfig(lr=1e-6, micro_batch_tokens=micro_tokens, packing=variant.packing,
                        gradient_checkpointing=variant.checkpointing,
                        share_prefix=variant.share_prefix)
    backend = TorchBackend(model, train, LossConfig(), device=ctx.device)
    del model  # the backend holds it; the caller frees the memory once the backend is gone
    backend.update(batch)  # warm-up: optimizer states allocated, kernels chosen
    peak_memory_reset(ctx.device)
    seconds = interleaved_medians({"update": lambda: backend.update(batch)}, ctx.device,
                                  repeats=ctx.sizes.repeats, budget_s=budget_s)["update"]
    peak = peak_memory(ctx.device)
    tokens = float(batch.attention_mask.sum())
    tflops, utilisation = mfu(params, tokens, seconds, ctx.peak)
    return {"variant": variant.label, "params": params, "tokens": tokens, "seconds": seconds,
            "tokens_per_s": tokens / seconds, "tflops": tflops, "mfu": utilisation,
            "peak_gib": None if peak is None else gib(peak)}


def _describe(row: dict) -> str:
    if "error" in row:
        return f"FAILED {row['error'][:80]}"
    text = f"{row['tokens_per_s']:.0f} tok/s, {row['tflops']:.1f} TFLOP/s"
    if row["mfu"] is not None:
        text += f", MFU {row['mfu']:.1%}"
    if row["peak_gib"] is not None:
        text += f", peak {row['peak_gib']:.1f} GiB"
    return text


def _headlines(result: Result, key: str) -> None:
    """MFU and tokens/s padded; what checkpointing, packing and prefix sharing change."""
    rows = {r["variant"]: r for r in result.figures["variants"] if "error" not in r}
    padded = rows.get("padded")
    if padded:
        result.ratios[f"update_tokens_per_s_{key}"] = padded["tokens_per_s"]
        if padded["mfu"] is not None:
            result.ratios[f"update_mfu_{key}"] = padded["mfu"]
    pairs = {"checkpointing_time": ("padded, checkpointing", "padded", "seconds"),
             "checkpointing_memory": ("padded, checkpointing", "padded", "peak_gib"),
             "padded_over_packed_time": ("padded", "packed, sdpa", "seconds"),
             "shared_prefix_speedup": ("groups, prefix run per row", "groups, prefix shared",
                                       "seconds")}
    for name, (top, bottom, field) in pairs.items():
        if top in rows and bottom in rows and rows[top][field] and rows[bottom][field]:
            result.ratios[f"{name}_{key}"] = rows[top][field] / rows[bottom][field]


def deepspeed_vs_torch(ctx: Context, budget_s: float) -> Result:
    """The small model's update under the torch backend, ZeRO-2 and ZeRO-3, one process each
    (train_backends' worker: fp32 weights, bf16 compute on the GPU), one after the other; the
    dry run starts all three at once (on the CPU their figures mean nothing, and the processes
    spend their time starting)."""
    if find_spec("deepspeed") is None:
        raise SectionSkipped("deepspeed is not installed here (docs/gpu.md says how to carry it)")
    spec, s = ctx.specs[0], ctx.sizes
    path = ctx.folders.path(spec)
    result = Result(figures={"model": spec.name, "rows": s.ds_rows, "length": s.update_length,
                             "micro_batch_tokens": s.micro_tokens[0], "configs": []})
    configs = (("torch", 0), ("deepspeed", 2), ("deepspeed", 3))
    deadline = time.perf_counter() + budget_s
    outs = ([_Worker(ctx, path, b, stage) for b, stage in configs] if ctx.dry else None)
    base = None
    for i, (backend, stage) in enumerate(configs):
        label = "torch" if backend == "torch" else f"ZeRO-{stage}"
        # A worker may use what is left but 20 s for each one after it (the baseline first).
        share = deadline - time.perf_counter() - (0 if ctx.dry else 20 * (len(configs) - i - 1))
        try:
            row = {"config": label, **(outs[i] if outs else _Worker(ctx, path, backend, stage)
                                       ).finish(share)}
        except SectionTimeout:
            for worker in outs or ():
                worker.kill()
            raise
        except Exception as exc:  # noqa: BLE001 - reported; the next configuration still runs
            row = {"config": label, "error": f"{type(exc).__name__}: {str(exc)[-400:]}"}
        result.figures["configs"].append(row)
        if "error" in row:
            result.rows.append((f"{spec.name} {label}", f"FAILED {row['error'][-80:]}"))
            continue
        base = base or (row["tokens_per_s"] if backend == "torch" else None)
        ratio = row["tokens_per_s"] / base if base else float("nan")
        result.rows.append((f"{spec.name} {label}: tok/s, / torch, peak",
                            (f"{row['tokens_per_s']:.0f}, {ratio:.2f}x, "
                             f"{gib(row['peak_bytes']):.1f} GiB")))
        if backend != "torch" and base:
            result.ratios[f"zero{stage}_over_torch_tokens_per_s"] = ratio
    return result


class _Worker:
    """train_backends' worker in a session of its own (a DeepSpeed rank of one needs no
    launcher); past its time the whole process group is killed."""

    def __init__(self, ctx: Context, path: str, backend: str, stage: int) -> None:
        s = ctx.sizes
        folder = ctx.folders.scratch(f"{backend}{stage}_")
        self.out, self.log = folder / "result.json", folder / "stderr.txt"
        cuda = ctx.device.startswith("cuda")
        command = [sys.executable, "-m", "benchmarks.train_backends", "--worker",
                   "--backend", backend, "--stage", str(stage), "--model", path,
                   "--out", str(self.out), "--rows", str(s.ds_rows),
                   "--length", str(s.update_length), "--repeats", str(max(1, s.repeats - 1)),
                   "--micro-tokens", str(s.micro_tokens[0]), "--device", "cuda" if cuda else "cpu",
                   "--threads", "4" if cuda else "1"]
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        # stderr into a file: a pipe nobody reads yet would stall a worker started early.
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                            stderr=log, start_new_session=True)

    def finish(self, timeout_s: float) -> dict:
        """The worker's figures once it exits (tokens_per_s, peak_bytes, params, seconds)."""
        try:
            self.process.wait(timeout=max(timeout_s, 1.0))
        except BaseException:
            self.kill()
            raise
        if self.process.returncode != 0:
            stderr = self.log.read_text(errors="replace")
            raise RuntimeError(f"exit {self.process.returncode}: {stderr[-600:]}")
        return json.loads(self.out.read_text())

    def kill(self) -> None:
        """End the worker and anything it started."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
