"""Tools that misbehave in every way we know, run through the real executor, ToolEnv and the
orchestrator: each fault becomes an error observation the model reads plus a metric, and every
episode comes back (done + truncated + failed = started)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from fakes import ScriptedEngine
from fault_ledger import record
from turnwise.agent.chat import ChatFormatter
from turnwise.envs.base import Task
from turnwise.envs.tool_env import ToolEnvFactory
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.metrics import summarize
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.tools import Executor, ToolCall, ToolRegistry, tool
from turnwise.tools.base import TransientToolError
from turnwise.tools.python import python_tool

TEN_MB = 10 * 1024 * 1024


def faulty_tools(flaky_failures: int = 2):
    """One tool per fault; each takes a single text argument so the xml parser can call it."""
    attempts = {"flaky": 0}

    @tool
    def boom(text: str) -> str:
        """Raises a plain bug.

        Args:
            text: ignored.
        """
        raise KeyError("the tool has a bug")

    @tool(timeout=0.3)
    async def hang(text: str) -> str:
        """Never returns in time.

        Args:
            text: ignored.
        """
        await asyncio.sleep(3600)
        return "unreachable"

    @tool(timeout=0.3)
    def hang_sync(text: str) -> str:
        """A blocking tool that holds its worker thread past the timeout.

        Args:
            text: ignored.
        """
        time.sleep(1.0)
        return "too late"

    @tool
    def huge(text: str) -> str:
        """Returns 10 MB.

        Args:
            text: ignored.
        """
        return "x" * TEN_MB

    @tool
    def bad_utf8(text: str) -> bytes:
        """Returns bytes that are not UTF-8, and text with a lone surrogate.

        Args:
            text: ignored.
        """
        return b"caf\xe9 \xff\xfe" + "\udcff".encode("utf-8", "surrogatepass")

    @tool
    def surrogate(text: str) -> str:
        """Returns a str holding lone surrogates (what os.fsdecode gives for bad file names).

        Args:
            text: ignored.
        """
        return "file-\udcff\udcfe.txt"

    @tool
    def crash(text: str) -> str:
        """Runs its work in a child process that dies of SIGSEGV.

        Args:
            text: ignored.
        """
        subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), "
                        "signal.SIGSEGV)"], check=True)
        return "unreachable"

    @tool
    def flaky(text: str) -> str:
        """Fails transiently `flaky_failures` times, then answers.

        Args:
            text: ignored.
        """
        attempts["flaky"] += 1
        if attempts["flaky"] <= flaky_failures:
            raise TransientToolError("backend busy, try again")
        return "recovered"

    @tool
    def down(text: str) -> str:
        """Fails transiently on every attempt.

        Args:
            text: ignored.
        """
        raise TransientToolError("backend down")

    return [boom, hang, hang_sync, huge, bad_utf8, surrogate, crash, flaky, down]


FAULTS = ["boom", "hang", "hang_sync", "huge", "bad_utf8", "surrogate", "crash", "flaky", "down"]


def test_every_tool_fault_becomes_a_result_and_a_metric():
    ex = Executor(ToolRegistry(faulty_tools()), retries=2, backoff=(0.01, 0.02),
                  max_output_tokens=256)

    async def go():
        return await ex.call_many([ToolCall(name, {"text": "x"}) for name in FAULTS])

    started = time.perf_counter()
    results = dict(zip(FAULTS, asyncio.run(go())))
    elapsed = time.perf_counter() - started
    ex.close()
    assert elapsed < 5  # the hangs cost their 0.3 s timeout, not an hour

    assert results["boom"].status == "error"
    assert results["boom"].content == "Error: KeyError: 'the tool has a bug'"
    for name in ("hang", "hang_sync"):
        assert results[name].status == "timeout"
        assert results[name].content == f"Error: tool {name!r} timed out after 0.3s"
    assert ex.abandoned == 1  # the sync hang still holds a thread; it is counted

    huge = results["huge"]
    assert huge.ok and huge.truncated and len(huge.content) < 256 * 4 + 200
    assert "output truncated: about" in huge.content and f"of {TEN_MB} characters" in huge.content

    # Undecodable bytes and lone surrogates come out as valid UTF-8 text.
    assert results["bad_utf8"].content == "caf\ufffd \ufffd\ufffd\ufffd\ufffd\ufffd"
    assert results["surrogate"].content == "file-??.txt"
    for name in ("bad_utf8", "surrogate"):
        results[name].content.encode("utf-8")  # would raise on a surrogate

    assert results["crash"].status == "error" and "CalledProcessError" in results["crash"].content
    assert f"died with <Signals.SIGSEGV: {int(signal.SIGSEGV)}>" in results["crash"].content

    assert (results["flaky"].status, results["flaky"].content, results["flaky"].attempts) == (
        "ok", "recovered", 3)
    assert results["down"].status == "error" and results["down"].attempts == 3
    assert results["down"].content == "Error: backend down"

    m = ex.metrics.summary()
    assert [m[f"tools/{n}/errors"] for n in ("boom", "crash", "down")] == [1, 1, 1]
    assert [m[f"tools/{n}/timeouts"] for n in ("hang", "hang_sync")] == [1, 1]
    assert m["tools/huge/truncated"] == 1
    assert (m["tools/flaky/retries"], m["tools/flaky/errors"]) == (2, 0)
    assert m["tools/down/retries"] == 2
    record("tools", "executor: raise/hang/10MB/bad UTF-8/crash/flaky/down", len(FAULTS), len(FAULTS))


class FaultySuite:
    """Tasks ask for one faulty tool each; the env is a real ToolEnv over the faulty tools."""

    name = "faulty"

    def __init__(self) -> None:
        self.factory = ToolEnvFactory(
            faulty_tools(flaky_failures=1), reward=lambda answer, task: float(answer == "done"),
            parser="xml", parser_options={"think": False},
            executor_options={"retries": 1, "backoff": (0.01, 0.02), "max_output_tokens": 64})

    def make(self):
        return self.factory()

    def tasks(self, split, count, seed):
        return [Task(id=f"t{i}", data={"question": f"CALL:{FAULTS[i % len(FAULTS)]} now",
                                       "tool": FAULTS[i % len(FAULTS)]}) for i in range(count)]


def test_faulty_tools_through_toolenv_and_the_orchestrator(tokenizer):
    suite = FaultySuite()
    formatter = ChatFormatter(tokenizer)

    def reply(prompt_ids, index):
        text = tokenizer.decode(prompt_ids)
        # The first turn calls the task's tool; once it has, answer.
        name = text.split("CALL:", 1)[1].split()[0]
        return "<answer>done</answer>" if f"<{name}>go" in text else f"<{name}>go</{name}>"

    engine = ScriptedEngine(tokenizer, reply)
    settings = EpisodeSettings(mode="full_trajectory", max_turns=3, max_tokens_per_turn=64,
                               max_episode_tokens=4096)
    orch = Orchestrator(engine, suite, formatter, settings, quiet=True)
    tasks = suite.tasks("train", len(FAULTS), 0)
    trajs = asyncio.run(orch.rollout(tasks, group_size=2, tag="faults", seed=0))
    suite.factory.executor.close()

    assert len(trajs) == 2 * len(FAULTS)
    last = orch.last
    assert last["episodes_started"] == 18
    assert last["status_done"] + last["status_truncated"] + last["status_failed"] == 18
    assert last["status_done"] == 18  # every episode got to answer despite its tool's fault
    by_tool = {}
    for t in trajs:
        first = t.turns[0]
        assert len(first.tool_calls) == 1, (first.error, first.action, first.observation)
        by_tool.setdefault(first.tool_calls[0]["name"], []).append(first)
    failing = {"boom", "hang", "hang_sync", "crash", "down"}
    for name, turns in by_tool.items():
        for turn in turns:
            status = turn.tool_calls[0]["status"]
            if name in failing:
                assert status in ("error", "timeout") and turn.error.startswith(f"{name}: ")
                assert "Error: " in turn.observation
            else:
                assert status == "ok" and turn.error is None, (name, turn.error)
    tools = suite.factory.metrics()
    assert sum(tools[f"tools/{n}/errors"] + tools[f"tools/{n}/timeouts"] for n in failing) == 10
    summary = summarize(trajs)
    assert summary["rollout/tool_error_rate"] == 10 / 18
    assert summary["rollout/status_done"] == 18
    record("tools", "the same faults in 18 episodes via ToolEnv", 18, int(last["status_done"]))


def test_a_python_tool_whose_sandbox_process_dies_is_reported_and_restarts():
    py = python_tool(stateful=True, limits={"wall_seconds": 5.0})
    ex = Executor(ToolRegistry([py]))

    async def go():
        from turnwise.tools import ToolContext

        ctx = ToolContext()
        out = [await ex.call(ToolCall("python", {"code": code}), ctx) for code in (
            "x = 1", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
            "import os\nos.kill(1, 9)", "print('alive')")]
        await ctx.aclose()
        return out

    first, killed, init_killed, after = asyncio.run(go())
    assert first.ok and after.ok and after.content == "alive"
    # The process is gone, the model is told, the next call gets a fresh sandbox.
    assert killed.status == "error" and killed.content == ("Error: The sandbox was stopped (SIGKILL (a hard limit: memory, CPU time or "
                              "the wall clock)); variables from earlier calls are gone.")
    # Its init (the namespace's pid 1) is out of the unprivileged sandbox user's reach.
    assert init_killed.content.endswith("PermissionError: [Errno 1] Operation not permitted")
    record("tools", "python tool: sandbox killed itself / tried its init", 2, 2)
