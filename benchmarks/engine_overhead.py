"""Engine overhead: turnwise's engines serving concurrent requests vs their library's batch call.

Episodes reach an engine one request at a time, through `await engine.generate(...)` from many
asyncio tasks; a library's offline call gets the whole batch at once. The gap between the two
is what the engine layer costs (queueing, in-flight batching, bookkeeping), on the same tiny
model, the same N chat prompts (varied lengths) and exactly `--tokens` tokens per response
(EOS ignored), so both sides do identical work:

- hf:   `HFEngine` (N concurrent `generate` calls) vs one left-padded
        `model.generate(..., do_sample=True)` call that also returns the logits the engine's
        logprobs come from ("generate+lp"), and one that returns tokens only ("generate").
- vllm: `VLLMEngine` (AsyncLLM, N concurrent `generate` calls) vs `vllm.LLM.generate` on the
        same token prompts with the same engine settings (float32, eager, no prefix cache,
        processed logprobs of the sampled token). Runs in .venv-vllm.

Contenders take turns, `--repeats` rounds; figures are medians. Target: engine / library <= 1.10.

    .venv/bin/python -m benchmarks.engine_overhead [--concurrency 16 64] [--tokens 32]
    .venv-vllm/bin/python -m benchmarks.engine_overhead --engine vllm
"""

from __future__ import annotations

import argparse
import asyncio
import random

import torch

from benchmarks.common import add_output_args, interleaved, medians, quiet, write_json

WORDS = ("apple", "cabinet", "drawer", "mug", "shelf", "fridge", "lamp", "table", "book", "key")


def make_prompts(tokenizer, count: int, seed: int = 0) -> list[list[int]]:
    """`count` chat prompts of 1..8 sentences each, as token ids."""
    from turnwise.agent.chat import ChatFormatter

    formatter, rng = ChatFormatter(tokenizer), random.Random(seed)
    prompts = []
    for i in range(count):
        sentences = [f"You see a {rng.choice(WORDS)} on the {rng.choice(WORDS)}."
                     for _ in range(rng.randint(1, 8))]
        prompts.append(formatter.encode([
            {"role": "system", "content": "You are an agent in a house."},
            {"role": "user", "content": f"Task {i}: " + " ".join(sentences)}]))
    return prompts


def engine_run(engine, prompts: list[list[int]], tokens: int) -> int:
    """All prompts as concurrent `generate` calls; the number of tokens generated."""
    from turnwise.agent.engines import SamplingParams

    params = SamplingParams(max_tokens=tokens, temperature=1.0, ignore_eos=True)

    async def run() -> list:
        return await asyncio.gather(*(engine.generate(p, params) for p in prompts))

    return sum(len(c.token_ids) for c in asyncio.run(run()))


def hf_generate_run(model, prompts: list[list[int]], tokens: int, pad_id: int, *,
                    logprobs: bool) -> int:
    """One batched `model.generate` (left-padded, sampled); with `logprobs`, also the sampled
    tokens' logprobs from the raw logits, as the engine reports them. Tokens generated."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0,
                             top_k=0, top_p=1.0, max_new_tokens=tokens, min_new_tokens=tokens,
                             pad_token_id=pad_id, return_dict_in_generate=True,
                             output_logits=logprobs)
    generated = out.sequences[:, width:]
    if logprobs:
        logits = torch.stack(out.logits, dim=1).float()
        picked = torch.log_softmax(logits, -1).gather(-1, generated.unsqueeze(-1))
        picked.squeeze(-1).tolist()  # handed back as Python floats, as the engine does
    return int(generated.numel())


def bench_hf(path: str, concurrency: list[int], tokens: int, repeats: int) -> list[dict]:
    """Rows of (N, engine s, generate+lp s, generate s) medians and their ratios."""
    from turnwise.agent.engines import make_engine
    from turnwise.trainer.models import load_policy

    model, tokenizer = load_policy(path)
    model.eval()
    pad_id = tokenizer.pad_token_id
    rows = []
    for n in concurrency:
        prompts = make_prompts(tokenizer, n, seed=n)
        engine = make_engine("hf", model, tokenizer, max_batch=n)
        contenders = {
            "engine": lambda e=engine, p=prompts: engine_run(e, p, tokens),
            "generate+lp": lambda p=prompts: hf_generate_run(model, p, tokens, pad_id,
                                                             logprobs=True),
            "generate": lambda p=prompts: hf_generate_run(model, p, tokens, pad_id,
                                                          logprobs=False),
        }
        counts = {name: fn() for name, fn in contenders.items()}  # warm-up, and equal work
        if len(set(counts.values())) != 1:
            raise RuntimeError(f"unequal work at N={n}: tokens generated {counts}")
        med = medians(interleaved(contenders, repeats))
        asyncio.run(engine.close())
        rows.append({"concurrency": n, "tokens": counts["engine"], **med,
                     "engine/generate+lp": med["engine"] / med["generate+lp"],
                     "engine/generate": med["engine"] / med["generate"]})
    return rows


def vllm_generate_run(llm, prompts: list[list[int]], tokens: int) -> int:
    """One `LLM.generate` call on token prompts; the number of tokens generated."""
    from vllm import SamplingParams as VllmParams
    from vllm.inputs import TokensPrompt

    params = VllmParams(max_tokens=tokens, temperature=1.0, ignore_eos=True, logprobs=0,
                        detokenize=False, skip_special_tokens=False)
    outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params,
                        use_tqdm=False)
    return sum(len(o.outputs[0].token_ids) for o in outs)


def bench_vllm(path: str, concurrency: list[int], tokens: int, repeats: int,
               kv_cache_gib: float) -> list[dict]:
    """Rows of (N, engine s, LLM.generate s) medians and their ratio."""
    from transformers import AutoTokenizer
    from turnwise.agent.engines import make_engine
    from vllm import LLM

    tokenizer = AutoTokenizer.from_pretrained(path)
    width = max(concurrency)
    engine = make_engine("vllm", path, tokenizer, max_batch=width, kv_cache_gib=kv_cache_gib,
                         enable_prefix_caching=False)
    # The engine's own settings (see VLLMEngine), so only the serving path differs.
    llm = LLM(model=path, dtype="float32", seed=0, max_num_seqs=width, enforce_eager=True,
              enable_prefix_caching=False, logprobs_mode="processed_logprobs",
              disable_log_stats=True, kv_cache_memory_bytes=int(kv_cache_gib * (1 << 30)))
    rows = []
    try:
        for n in concurrency:
            prompts = make_prompts(tokenizer, n, seed=n)
            contenders = {"engine": lambda p=prompts: engine_run(engine, p, tokens),
                          "LLM.generate": lambda p=prompts: vllm_generate_run(llm, p, tokens)}
            counts = {name: fn() for name, fn in contenders.items()}
            if len(set(counts.values())) != 1:
                raise RuntimeError(f"unequal work at N={n}: tokens generated {counts}")
            med = medians(interleaved(contenders, repeats))
            rows.append({"concurrency": n, "tokens": counts["engine"], **med,
                         "engine/LLM.generate": med["engine"] / med["LLM.generate"]})
    finally:
        asyncio.run(engine.close())
    return rows


def print_rows(rows: list[dict]) -> None:
    """One line per concurrency: seconds of each contender, then the ratios."""
    keys = [k for k in rows[0] if k not in ("concurrency", "tokens")]
    print(f"{'N':>4}{'tokens':>8}" + "".join(f"{k:>22}" for k in keys))
    for row in rows:
        cells = "".join(f"{row[k]:>21.3f}{'s' if '/' not in k else 'x'}" for k in keys)
        print(f"{row['concurrency']:>4}{row['tokens']:>8}{cells}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["hf", "vllm"], default="hf")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64],
                        help="concurrent requests (N)")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per response")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 keeps a shared CPU machine from thrashing)")
    parser.add_argument("--kv-cache-gib", type=float, default=0.5, help="vllm: KV cache per engine")
    add_output_args(parser, repeats=5)
    args = parser.parse_args()
    quiet()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from turnwise.trainer.config import ModelConfig
    from turnwise.trainer.models import resolve_model

    path = resolve_model(ModelConfig(name="tiny:household"))
    print(f"{args.engine}: N concurrent requests of {args.tokens} tokens each vs one batched "
          f"call; median of {args.repeats} interleaved rounds")
    if args.engine == "hf":
        rows = bench_hf(path, args.concurrency, args.tokens, args.repeats)
    else:
        rows = bench_vllm(path, args.concurrency, args.tokens, args.repeats, args.kv_cache_gib)
    print_rows(rows)
    write_json(args.json, f"engine_overhead_{args.engine}",
               {"rows": rows, "tokens": args.tokens, "repeats": args.repeats})


if __name__ == "__main__":
    main()
