"""MCP tools against a real MCP server (FastMCP, from the mcp package) that the tests start:
over stdio and streamable HTTP, through the executor, a ToolEnv, and a recipe's tool spec."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from turnwise.tools import Executor, ToolCall
from turnwise.tools.builtin import build_tools
from turnwise.tools.mcp import MCPServer, mcp_tools

SERVER = str(Path(__file__).with_name("mcp_demo_server.py"))


@pytest.fixture(scope="module")
def stdio():
    server = MCPServer(command=[sys.executable, SERVER], timeout=60)
    yield server
    server.close()


def _call(executor, name, **arguments):
    return asyncio.run(executor.call(ToolCall(name, arguments)))


def test_tools_keep_the_servers_names_descriptions_and_schemas(stdio):
    tools = {t.name: t for t in mcp_tools(stdio)}
    assert set(tools) == {"add", "shout", "fail", "crash", "pid", "nap"}
    assert tools["add"].description == "Add two integers."
    assert tools["add"].schema()["function"]["parameters"] == {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"]}
    assert tools["shout"].parameters["properties"]["times"] == {"type": "integer", "default": 1}
    assert [t.name for t in mcp_tools(stdio, include=["add"], prefix="calc_")] == ["calc_add"]
    with pytest.raises(ValueError, match=r"has no tools \['divide'\]; it has \['add', 'crash'"):
        mcp_tools(stdio, include=["divide"])


def test_calls_run_on_the_server_and_failures_are_tool_errors(stdio):
    executor = Executor(mcp_tools(stdio), retries=0, timeout=60)
    assert _call(executor, "add", a=2, b=40).content == "42"
    assert _call(executor, "shout", text="hi", times=2).content == "HI HI"
    bad = _call(executor, "add", a="two", b=1)  # checked against the schema before the call
    assert bad.status == "invalid" and "'a'" in bad.error
    failed = _call(executor, "fail", message="out of paper")
    assert failed.status == "error" and "out of paper" in failed.error
    assert executor.metrics.summary()["tools/fail/errors"] == 1


@pytest.mark.slow
def test_a_server_that_dies_mid_call_is_a_tool_error_and_the_next_call_restarts_it():
    server = MCPServer(command=[sys.executable, SERVER], timeout=60)
    try:
        executor = Executor(mcp_tools(server), retries=0, timeout=60)
        first = int(_call(executor, "pid").content)
        died = _call(executor, "crash")
        assert died.status == "error" and "MCP server" in died.error and "'crash'" in died.error
        assert int(_call(executor, "pid").content) != first  # a new server process
        assert _call(executor, "add", a=1, b=1).content == "2"
    finally:
        server.close()


def test_a_tool_env_and_a_recipe_use_mcp_tools(stdio):
    from turnwise.envs.base import Task
    from turnwise.envs.tool_env import ToolEnvFactory

    factory = ToolEnvFactory(tools=mcp_tools(stdio, include=["add"]), parser="hermes",
                             reward=lambda answer, task: float(answer == task.answer))
    env = factory()

    async def episode():
        await env.reset(Task(id="t", answer="42", data={"question": "What is 2 + 40?"}))
        call = json.dumps({"name": "add", "arguments": {"a": 2, "b": 40}})
        step = await env.step(f"<tool_call>{call}</tool_call>")
        assert step.observation.role == "tool" and "42" in step.observation.text
        assert step.info["tool_calls"][0]["status"] == "ok"
        final = await env.step("<answer>42</answer>")
        await env.close()
        return final

    assert asyncio.run(episode()).reward == 1.0
    spec = {"name": "mcp", "options": {"command": [sys.executable, SERVER], "tool": "shout",
                                       "name": "yell"}}
    (tool,) = build_tools([spec])
    assert tool.name == "yell" and tool.description == "Upper-case a text, repeated."
    result = _call(Executor([tool], retries=0, timeout=60), "yell", text="ok")
    assert result.content == "OK"


@pytest.mark.slow
def test_streamable_http_server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, SERVER, "http", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    server = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        server = MCPServer(url=url, timeout=5)
        executor = Executor(mcp_tools(server), retries=0, timeout=60)
        assert _call(executor, "add", a=20, b=22).content == "42"
        process.kill()
        process.wait(timeout=30)
        gone = _call(executor, "add", a=1, b=2)  # the server went away between calls
        assert gone.status == "error" and "MCP server" in gone.error
    finally:
        if server is not None:
            server.close()
        process.kill()
        process.wait(timeout=30)
