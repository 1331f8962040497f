"""How well a policy update overlaps generation on this machine: the update on a thread of the
engine's process (what `trainer/loop.py` does) or in a process of its own.

For `seconds` each: the hf engine generating alone (tokens/s), training steps alone (steps/s),
then both at once with the update on a thread, then with the update in a spawned process. Each
concurrent rate is given as a share of its rate alone; `overlap` is their sum: 2 is perfect
overlap, 1 is no better than taking turns.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import torch
from turnwise.agent.engines import SamplingParams, make_engine

from benchmarks.common import build_model

ROWS, LENGTH = 8, 256  # the update's batch


def update_steps(path: str, seconds: float, threads: int) -> float:
    """Training steps (forward, backward, AdamW) per second on a fixed batch for `seconds`."""
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(path).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, model.config.vocab_size, (ROWS, LENGTH),
                        generator=torch.Generator().manual_seed(0))
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        steps += 1
    return steps / (time.perf_counter() - started)


def _in_process(path: str, seconds: float, threads: int, out) -> None:
    out.put(update_steps(path, seconds, threads))


async def generate_tokens(engine, seconds: float, concurrency: int = 32) -> float:
    """Engine tokens per second with `concurrency` requests always in flight."""
    params = SamplingParams(max_tokens=32, temperature=1.0, ignore_eos=True)
    prompt = list(range(10, 74))
    tokens, started = 0, time.perf_counter()

    async def client() -> None:
        nonlocal tokens
        while time.perf_counter() - started < seconds:
            tokens += len((await engine.generate(prompt, params)).token_ids)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return tokens / (time.perf_counter() - started)


async def overlap_table(*, seconds: float, threads: int) -> dict[str, dict[str, float]]:
    """Rates alone and together, with the update on a thread and in a process; printed."""
    from transformers import AutoTokenizer

    path = build_model()
    engine = make_engine("hf", path, AutoTokenizer.from_pretrained(path), max_batch=32)
    await generate_tokens(engine, 1.0)  # warm up
    gen_alone = await generate_tokens(engine, seconds)
    update_alone = await asyncio.to_thread(update_steps, path, seconds, threads)
    gen_thread, update_thread = await asyncio.gather(
        generate_tokens(engine, seconds), asyncio.to_thread(update_steps, path, seconds, threads))
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_in_process, args=(path, seconds + 2.0, threads, queue))
    child.start()
    await asyncio.sleep(2.0)  # the child's imports and model load are not the update
    gen_process = await generate_tokens(engine, seconds)
    update_process = await asyncio.to_thread(queue.get)
    child.join()
    await engine.close()
    rows = {}
    for mode, gen, upd in (("thread", gen_thread, update_thread),
                           ("process", gen_process, update_process)):
        rows[mode] = {"engine": gen / gen_alone, "update": upd / update_alone}
        rows[mode]["overlap"] = rows[mode]["engine"] + rows[mode]["update"]
    print(f"update overlapping generation ({seconds:g} s each; alone: engine "
          f"{gen_alone:.0f} tok/s, update {update_alone:.2f} steps/s)")
    print(f"{'update on':>10} {'engine':>8} {'update':>8} {'overlap':>8}")
    for mode, row in rows.items():
        print(f"{mode:>10} {row['engine']:>7.0%} {row['update']:>7.0%} {row['overlap']:>8.2f}")
    return rows
