"""The GPU check's generation section: the `hf` engine serving N concurrent requests against
one batched `model.generate` on the same prompts, the same model and the same token count."""

from __future__ import annotations

import asyncio
import time

import torch

from benchmarks.engine_overhead import engine_run, make_prompts
from benchmarks.gpu_common import Context, Result, interleaved_medians
from benchmarks.gpu_models import build_model, free_memory


def batched_generate(model, prompts: list[list[int]], tokens: int, pad_id: int,
                     device: str) -> int:
    """One left-padded, sampled `model.generate` of exactly `tokens` new tokens per prompt;
    the number of tokens generated."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0,
                             top_k=0, top_p=1.0, max_new_tokens=tokens, min_new_tokens=tokens,
                             pad_token_id=pad_id)
    return int(out[:, width:].numel())


def generation(ctx: Context, budget_s: float) -> Result:
    """Tokens/s of the engine and of batched generate at each concurrency, and their ratio."""
    spec, sizes = ctx.specs[0], ctx.sizes
    model = build_model(spec, ctx.tokenizer, ctx.device).eval()
    result = Result(figures={"model": spec.name, "tokens_per_response": sizes.gen_tokens,
                             "rows": []})
    started = time.perf_counter()
    try:
        for i, n in enumerate(sizes.concurrency):
            # Each concurrency gets an even share of what is left of the section's time.
            share = (budget_s - (time.perf_counter() - started)) / (len(sizes.concurrency) - i)
            row = _one_concurrency(ctx, model, n, share)
            result.figures["rows"].append(row)
            result.rows.append((f"N={n}: engine tokens/s (batched generate)",
                                (f"{row['engine_tokens_per_s']:.0f} "
                                 f"({row['generate_tokens_per_s']:.0f})")))
            result.rows.append((f"N={n}: engine / batched generate (time)",
                                f"{row['engine/generate']:.2f}x"))
            result.ratios[f"hf_engine_over_generate_n{n}"] = row["engine/generate"]
            result.ratios[f"hf_engine_tokens_per_s_n{n}"] = row["engine_tokens_per_s"]
    finally:
        del model
        free_memory()
    return result


def _one_concurrency(ctx: Context, model, n: int, budget_s: float) -> dict:
    from turnwise.agent.engines import make_engine

    tokens, pad_id = ctx.sizes.gen_tokens, ctx.tokenizer.pad_token_id
    prompts = make_prompts(ctx.tokenizer, n, seed=n)
    # The engine serves this same module (it switches it to eval and no-grad, as we want here).
    engine = make_engine("hf", model, ctx.tokenizer, device=ctx.device, dtype="bfloat16",
                         max_batch=n)
    try:
        contenders = {"engine": lambda: engine_run(engine, prompts, tokens),
                      "generate": lambda: batched_generate(model, prompts, tokens, pad_id,
                                                           ctx.device)}
        started = time.perf_counter()
        counts = {name: fn() for name, fn in contenders.items()}  # warm-up, and equal work
        if len(set(counts.values())) != 1:
            raise RuntimeError(f"unequal work at N={n}: tokens generated {counts}")
        warm_up = time.perf_counter() - started
        # One warm-up round took `warm_up`: start another only while it fits in the share.
        seconds = interleaved_medians(contenders, ctx.device, repeats=ctx.sizes.repeats,
                                      budget_s=budget_s - 2 * warm_up)
    finally:
        asyncio.run(engine.close())
    total = counts["engine"]
    return {"concurrency": n, "tokens": total, "seconds": seconds,
            "engine_tokens_per_s": total / seconds["engine"],
            "generate_tokens_per_s": total / seconds["generate"],
            "engine/generate": seconds["engine"] / seconds["generate"]}
