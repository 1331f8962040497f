"""A web-search backend on loopback (a real asyncio HTTP server in this test) that drops
connections, answers 429 and 500, stalls mid-body and returns garbage, behind the real
web_search tool, executor, ToolEnv and orchestrator: every episode finishes, each fault is an
error observation (or a retry that recovered) and a metric."""

from __future__ import annotations

import asyncio
import json

from fakes import ScriptedEngine
from fault_ledger import record
from turnwise.agent.chat import ChatFormatter
from turnwise.envs.base import Task
from turnwise.envs.tool_env import ToolEnvFactory
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.tools.search import web_search_tool

# query -> the server's behaviour for every request of that query ("flaky": 500 once, then ok)
FAULTS = ["drop", "429", "500", "stall", "garbage", "truncated", "flaky", "ok"]


class Backend:
    """A minimal HTTP/1.1 server: GET /search?q=<behaviour>..., one response per connection."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/search"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            query = target.split("q=", 1)[1].split("&", 1)[0].split("+")[0]
            self.seen[query] = self.seen.get(query, 0) + 1
            await self.answer(query, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def answer(self, query: str, writer: asyncio.StreamWriter) -> None:
        body = json.dumps({"results": [{"title": f"{query} page", "url": "https://x.org",
                                        "content": f"about {query}"}]}).encode()
        if query == "drop":  # hang up without a word
            writer.transport.abort()
            return
        if query in ("429", "500") or (query == "flaky" and self.seen[query] == 1):
            status = 429 if query == "429" else 500
            return self.send(writer, status, b'{"error": "busy"}')
        if query == "stall":  # headers and half the body, then silence past the client timeout
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
            await writer.drain()
            await asyncio.sleep(30)
            return
        if query == "garbage":
            return self.send(writer, 200, b"\x00\xff<html>upstream exploded</html>")
        if query == "truncated":  # promises more than it sends, then closes
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + body[:20])
            return
        self.send(writer, 200, body)

    @staticmethod
    def send(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
        writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % (status, len(body)) + body)


def test_search_backend_faults_through_episodes(tokenizer):
    async def go():
        backend = Backend()
        url = await backend.start()
        search = web_search_tool(url, top_k=1, timeout=0.5, cache_size=0, name="search")
        factory = ToolEnvFactory(
            [search], reward=lambda answer, task: 1.0, parser="xml",
            parser_options={"think": False},
            executor_options={"retries": 2, "backoff": (0.01, 0.02), "timeout": 3.0})

        class Suite:
            def make(self):
                return factory()

        def reply(prompt_ids, index):
            text = tokenizer.decode(prompt_ids)
            query = text.split("ASK:", 1)[1].split()[0]
            return "<answer>x</answer>" if "<search>" + query in text else \
                f"<search>{query} now</search>"

        settings = EpisodeSettings(mode="full_trajectory", max_turns=3, max_tokens_per_turn=64,
                                   max_episode_tokens=4096, step_timeout=20)
        orch = Orchestrator(ScriptedEngine(tokenizer, reply), Suite(), ChatFormatter(tokenizer),
                            settings, quiet=True)
        tasks = [Task(id=q, data={"question": f"ASK:{q} please"}) for q in FAULTS]
        try:
            trajs = await orch.rollout(tasks, group_size=1, tag="web")
        finally:
            await search.metadata["client"].aclose()
            backend.server.close()
            await backend.server.wait_closed()
        return trajs, orch.last, factory.metrics(), backend.seen

    trajs, last, metrics, seen = asyncio.run(go())
    assert (last["episodes_started"], last["status_done"]) == (len(FAULTS), len(FAULTS))
    calls = {t.task_id: t.turns[0].tool_calls[0] for t in trajs}
    for fault in ("drop", "429", "500", "stall", "garbage", "truncated"):
        call = calls[fault]
        assert call["status"] == "error" and call["result"].startswith("Error: "), call
        assert call["attempts"] == 3 and seen[fault] == 3, (fault, call)  # retried, reported
    assert "429" in calls["429"]["result"] and "500" in calls["500"]["result"]
    assert "not JSON" in calls["garbage"]["result"]
    assert "ReadTimeout" in calls["stall"]["result"] or "timed out" in calls["stall"]["result"]
    assert calls["flaky"]["status"] == "ok" and calls["flaky"]["attempts"] == 2
    assert calls["ok"]["status"] == "ok" and "about ok" in calls["ok"]["result"]
    assert metrics["tools/search/calls"] == len(FAULTS)
    assert metrics["tools/search/errors"] == 6
    assert metrics["tools/search/retries"] == 6 * 2 + 1
    record("tools", "HTTP search: drop/429/500/stall/garbage/short body", 6, 6)
    record("tools", "HTTP search: transient 500 recovered by retry", 1, 1)
