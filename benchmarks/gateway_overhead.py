"""Gateway overhead: a request through the OpenAI-compatible gateway vs the engine called directly.

Both sides play the same conversations (a system prompt and a question, then tool results,
`--turns` model calls each) with the same engine, and both build each prompt the same way, by
appending to the recorded ids (`agent.chat.Conversation`). Direct: what an `Episode` does per
turn, render or `add_turn`, then `engine.generate`. Gateway: the same request as raw HTTP
(aiohttp), which the gateway parses, checks against the session's history, appends, generates,
parses for tool calls and answers; and with the `openai` client that `ProgramOrchestrator` hands
programs (pooled aiohttp transport), whose own cost (building and checking the request, parsing
the reply) a program pays against any endpoint. Overhead = gateway p50 - direct p50 per request.

Two engines: `scripted` answers at once with a fixed tool call (the overhead alone), `hf` is the
tiny model generating `--tokens` tokens (the overhead's share of a real turn). One conversation
at a time measures latency; `--concurrency` conversations at once measure throughput (the excess
wall time per request). CPU seconds per request are measured too (client, gateway and engine
share the process): on a loaded machine every hop between client and server waits for a core,
which inflates wall latency but not CPU. Target: overhead <= 5 ms per request at p50 on CPU.

    .venv/bin/python -m benchmarks.gateway_overhead [--conversations 8] [--turns 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

from benchmarks.common import add_output_args, build_model, quiet, write_json

SYSTEM = "You are an agent in a house. Call tools to act."
TOOL = {"type": "function", "function": {
    "name": "act", "description": "Do something in the house.",
    "parameters": {"type": "object", "properties": {"action": {"type": "string"}},
                   "required": ["action"]}}}
CALL = '<tool_call>{"name": "act", "arguments": {"action": "open the fridge"}}</tool_call>'


class ScriptedEngine:
    """Answers every prompt at once with the same tool call (the overhead alone)."""

    version = 0

    def __init__(self, tokenizer) -> None:
        self.ids = tokenizer.encode(CALL, add_special_tokens=False) + [tokenizer.eos_token_id]

    async def generate(self, prompt_ids, params, *, session=None):
        from turnwise.agent.engines import Completion

        return Completion(list(self.ids), [-0.1] * len(self.ids), "stop")


async def direct(engine, formatter, conversations: int, turns: int, tokens: int,
                 concurrency: int) -> list[float]:
    """Seconds of each turn played as an Episode plays it: render or append, then generate."""
    from turnwise.agent.chat import Conversation
    from turnwise.agent.engines import ChatPrompt, SamplingParams

    params = SamplingParams(max_tokens=tokens)
    seconds: list[float] = []

    async def one(i: int) -> None:
        conversation, response = None, None
        for turn in range(turns):
            started = time.perf_counter()
            if conversation is None:
                conversation = Conversation(formatter, first_messages(i))
            else:
                conversation.add_turn(response, [{"role": "tool", "content": f"done {turn}",
                                                  "tool_call_id": f"call_{turn}"}])
            prompt = ChatPrompt(conversation.ids, conversation.messages)
            response = (await engine.generate(prompt, params, session=str(i))).token_ids
            seconds.append(time.perf_counter() - started)

    await _in_waves(one, conversations, concurrency)
    return seconds


def first_messages(i: int) -> list[dict]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Task {i}: you see a mug on the table and a fridge. "
                                        "Put the mug in the fridge."}]


class Served:
    """A started gateway and the HTTP clients programs would use (openai's, raw aiohttp)."""

    def __init__(self, engine, tokenizer, turns: int, tokens: int) -> None:
        from turnwise.rollouts.episode import EpisodeSettings
        from turnwise.rollouts.gateway import Gateway

        self.engine, self.gateway = engine, Gateway(tokenizer)
        self.settings = EpisodeSettings(max_turns=turns, max_tokens_per_turn=tokens,
                                        max_episode_tokens=100_000)

    async def __aenter__(self) -> Served:  # noqa: PYI034 - never subclassed
        import aiohttp
        import openai

        await self.gateway.start()
        self.openai_http = openai.DefaultAioHttpClient()
        self.raw_http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.raw_http.close()
        await self.openai_http.aclose()
        await self.gateway.close()

    async def play(self, conversations: int, turns: int, concurrency: int, *,
                   raw: bool) -> list[float]:
        """Seconds of each request through the gateway, with the openai client or raw HTTP."""
        import openai
        from turnwise.rollouts.trajectory import Trajectory

        seconds: list[float] = []

        async def policy(prompt, params):
            return await self.engine.generate(prompt, params, session="bench")

        async def one(i: int) -> None:
            session = self.gateway.open(policy=policy, settings=self.settings,
                                        trajectory=Trajectory(uid="b", traj_id=str(i),
                                                              mode="full_trajectory",
                                                              prompt_ids=[]))
            client = openai.AsyncOpenAI(base_url=self.gateway.url, api_key=session.key,
                                        http_client=self.openai_http, max_retries=0)
            messages = first_messages(i)
            for turn in range(turns):
                started = time.perf_counter()
                if raw:
                    message = await self._raw(session.key, messages)
                else:
                    answer = await client.chat.completions.create(
                        model="policy", messages=messages, tools=[TOOL])
                    message = answer.choices[0].message.model_dump(exclude_none=True)
                seconds.append(time.perf_counter() - started)
                messages.append(message)
                call_id = (message.get("tool_calls") or [{"id": "none"}])[0]["id"]
                messages.append({"role": "tool", "content": f"done {turn}",
                                 "tool_call_id": call_id})
            self.gateway.close_session(session.key)

        await _in_waves(one, conversations, concurrency)
        return seconds

    async def _raw(self, key: str, messages: list[dict]) -> dict:
        body = {"model": "policy", "messages": messages, "tools": [TOOL]}
        async with self.raw_http.post(f"{self.gateway.url}/chat/completions", json=body,
                                      headers={"Authorization": f"Bearer {key}"}) as response:
            return (await response.json())["choices"][0]["message"]


async def _in_waves(one: Callable[[int], Awaitable[None]], count: int, concurrency: int) -> None:
    for start in range(0, count, concurrency):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + concurrency))))


CONTENDERS = ("direct", "gateway (openai client)", "gateway (raw HTTP)")


async def measure(engine, tokenizer, formatter, args, concurrency: int) -> dict[str, float]:
    """p50 and mean seconds per request of each contender (after one warm-up round), the
    contenders taking turns `--repeats` times."""
    runs: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    walls: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    cpu: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    requests = args.conversations * args.turns
    async with Served(engine, tokenizer, args.turns, args.tokens) as served:
        for repeat in range(args.repeats + 1):
            for name in CONTENDERS:
                started, cpu_started = time.perf_counter(), time.process_time()
                if name == "direct":
                    got = await direct(engine, formatter, args.conversations, args.turns,
                                       args.tokens, concurrency)
                else:
                    got = await served.play(args.conversations, args.turns, concurrency,
                                            raw=name.endswith("HTTP)"))
                if repeat:  # the first round warms up (formatter, connections, kernels)
                    walls[name].append(time.perf_counter() - started)
                    cpu[name].append((time.process_time() - cpu_started) / requests)
                    runs[name] += got
    return {**{f"p50 {name}": statistics.median(v) for name, v in runs.items()},
            **{f"mean {name}": statistics.fmean(v) for name, v in runs.items()},
            **{f"wall {name}": statistics.median(v) for name, v in walls.items()},
            **{f"cpu {name}": statistics.median(v) for name, v in cpu.items()}}


def row(engine_name: str, concurrency: int, requests: int,
        figures: dict[str, float]) -> dict[str, float]:
    """One engine and concurrency: the figures, the overhead per request and the ratios."""
    base = figures["p50 direct"]
    client, raw = figures["p50 gateway (openai client)"], figures["p50 gateway (raw HTTP)"]
    wall = figures["wall direct"]
    return {"engine": engine_name, "concurrency": concurrency, **figures,
            "overhead_ms_p50": (raw - base) * 1000,
            "overhead_client_ms_p50": (client - base) * 1000,
            # Under concurrency latency includes queueing: the wall time's excess per request
            # is what the gateway costs in throughput.
            "overhead_ms_wall": (figures["wall gateway (raw HTTP)"] - wall) / requests * 1000,
            "overhead_client_ms_wall": (figures["wall gateway (openai client)"] - wall)
            / requests * 1000,
            # CPU seconds per request (client, gateway and engine share this process): what a
            # request costs whatever else shares the machine; the wall time adds the waits for
            # a core that each hop between client and server takes on a loaded machine.
            "overhead_cpu_ms": (figures["cpu gateway (raw HTTP)"] - figures["cpu direct"]) * 1000,
            "overhead_client_cpu_ms": (figures["cpu gateway (openai client)"]
                                       - figures["cpu direct"]) * 1000,
            "gateway/direct": raw / base, "gateway+client/direct": client / base,
            "gateway/direct (wall)": figures["wall gateway (raw HTTP)"] / wall}


def print_rows(rows: list[dict]) -> None:
    print("engine    N  direct p50 | gateway p50: raw HTTP, openai client | overhead p50: raw, "
          "client | overhead per request from wall: raw, client | CPU per request: raw, client")
    for r in rows:
        print(f"{r['engine']:8} {r['concurrency']:3}  {r['p50 direct'] * 1000:7.2f} ms | "
              f"{r['p50 gateway (raw HTTP)'] * 1000:7.2f} ms, "
              f"{r['p50 gateway (openai client)'] * 1000:7.2f} ms | "
              f"{r['overhead_ms_p50']:6.2f} ms, {r['overhead_client_ms_p50']:6.2f} ms | "
              f"{r['overhead_ms_wall']:6.2f} ms, {r['overhead_client_ms_wall']:6.2f} ms | "
              f"{r['overhead_cpu_ms']:6.2f} ms, {r['overhead_client_cpu_ms']:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--turns", type=int, default=4, help="model calls per conversation")
    parser.add_argument("--tokens", type=int, default=16, help="hf engine: tokens per reply")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--engines", nargs="+", default=["scripted", "hf"],
                        choices=["scripted", "hf"])
    add_output_args(parser, repeats=2)
    args = parser.parse_args()
    quiet()
    import torch
    from transformers import AutoTokenizer
    from turnwise.agent.chat import ChatFormatter
    from turnwise.agent.engines import make_engine

    torch.set_num_threads(2)
    path = build_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    formatter = ChatFormatter(tokenizer, tools=[TOOL])
    rows = []
    for name in args.engines:
        for concurrency in args.concurrency:
            engine = ScriptedEngine(tokenizer) if name == "scripted" else \
                make_engine("hf", path, tokenizer)
            try:
                rows.append(row(name, concurrency, args.conversations * args.turns, asyncio.run(
                    measure(engine, tokenizer, formatter, args, concurrency))))
            finally:
                if name == "hf":
                    asyncio.run(engine.close())
    print(f"{args.conversations} conversations x {args.turns} requests, p50 per request over "
          f"{args.repeats} rounds (hf: {args.tokens} tokens per reply)")
    print_rows(rows)
    ratios = {f"{r['engine']}, N={r['concurrency']}: gateway / direct (p50 per request)":
              r["gateway/direct"] for r in rows}
    ratios |= {f"{r['engine']}, N={r['concurrency']}: gateway + openai client / direct (p50)":
               r["gateway+client/direct"] for r in rows}
    overhead = {f"{r['engine']}, N={r['concurrency']}": r["overhead_ms_p50"] for r in rows}
    ratios |= {f"{r['engine']}, N={r['concurrency']}: gateway / direct (CPU per request)":
               r["cpu gateway (raw HTTP)"] / r["cpu direct"] for r in rows}
    write_json(args.json, "gateway_overhead", {
        "rows": rows, "ratios": ratios, "overhead_ms_p50": overhead,
        "conversations": args.conversations, "turns": args.turns, "tokens": args.tokens,
        "repeats": args.repeats, "target_ms": 5.0})
    print(json.dumps({"overhead_ms_p50": overhead}, indent=None))


if __name__ == "__main__":
    main()
