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
import threading
import time

import torch
from turnwise.agent.engines import SamplingParams, make_engine

from benchmarks.common import build_model

ROWS, LENGTH = 8, 256  # the update's batch


def update_steps(path: str, seconds: float, threads: int, ready=None, go=None) -> float:
    """Training steps (forward, backward, AdamW) per second on a fixed batch for `seconds`.
    The model is loaded and one warm-up step taken first; with `ready`/`go` (events) it says
    when it is ready and starts timing only when told, so the timed window is the update alone."""
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(path).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, model.config.vocab_size, (ROWS, LENGTH),
                        generator=torch.Generator().manual_seed(0))

    def step() -> None:
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # the first step allocates what the others reuse
    if ready is not None:
        ready.set()
        go.wait()
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        steps += 1
    return steps / (time.perf_counter() - started)


def _in_process(path: str, seconds: float, threads: int, ready, go, out) -> None:
    out.put(update_steps(path, seconds, threads, ready, go))


async def _alongside(engine, start_update, ready, go, seconds: float) -> tuple[float, float]:
    """Generation and an update (started by `start_update`, timed from `go`) for `seconds`."""
    pending = start_update()
    await asyncio.to_thread(ready.wait)
    go.set()
    generated = await generate_tokens(engine, seconds)
    return generated, await pending


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
    ready, go = threading.Event(), threading.Event()
    gen_thread, update_thread = await _alongside(
        engine, lambda: asyncio.ensure_future(
            asyncio.to_thread(update_steps, path, seconds, threads, ready, go)),
        ready, go, seconds)
    context = multiprocessing.get_context("spawn")
    queue, ready, go = context.Queue(), context.Event(), context.Event()
    child = context.Process(target=_in_process, args=(path, seconds, threads, ready, go, queue))

    def start_child():
        child.start()
        return asyncio.ensure_future(asyncio.to_thread(queue.get))

    gen_process, update_process = await _alongside(engine, start_child, ready, go, seconds)
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
