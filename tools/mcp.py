"""MCP tools: the tools of a Model Context Protocol server as turnwise `Tool`s.

    server = MCPServer(command=["python", "my_server.py"])      # stdio
    server = MCPServer(url="http://127.0.0.1:8000/mcp")          # streamable HTTP
    factory = ToolEnvFactory(tools=mcp_tools(server), reward=...)

Needs `pip install mcp` (the `envs` extra). Each tool keeps the server's name, description and
input schema (cleaned into the plain function-calling form); arguments are checked against it
before the call. A result the server marks as an error, and a server that fails or dies mid-call,
come back as the tool's error (the executor turns it into an error observation and a metric); a
connection that died is opened afresh on the next call. Recipes name one tool of a server as the
built-in `mcp`: `{name: mcp, options: {command: [python, server.py], tool: add}}`.

The connection lives on a background thread's event loop, so tools work from any event loop
(every `asyncio.run`) and thread.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from .base import Tool, ToolError
from .builtin import register_builtin
from .schema import clean_schema

INSTALL = "pip install 'turnwise[envs]' (or mcp>=1.20,<2)"


class MCPServer:
    """One MCP server, reached over stdio (`command`, started here) or streamable HTTP (`url`)."""

    def __init__(self, *, command: Sequence[str] | None = None, url: str | None = None,
                 env: dict[str, str] | None = None, cwd: str | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 30.0) -> None:
        if (command is None) == (url is None):
            raise ValueError("MCPServer: give exactly one of command (stdio) or url (streamable HTTP)")
        if command is not None and (isinstance(command, str) or not command):
            raise ValueError(f"MCPServer command={command!r}: a non-empty list, e.g. "
                             "['python', 'server.py']")
        try:
            import mcp  # noqa: F401
        except ImportError as exc:
            raise ValueError(f"MCP tools need the mcp package ({exc}): {INSTALL}") from None
        self.command, self.url = list(command) if command else None, url
        self.env, self.cwd, self.headers, self.timeout = env, cwd, headers, timeout
        self.label = url or " ".join(self.command)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="turnwise-mcp", daemon=True).start()
        self._session: Any = None
        self._stop: asyncio.Event | None = None
        self._owner: asyncio.Future | None = None
        self._lock: asyncio.Lock | None = None
        self.closed = False
        atexit.register(self.close)

    def list_tools(self) -> list[Any]:
        """The server's tools (`mcp.types.Tool`: name, description, inputSchema)."""
        return self._run(self._list()).result(timeout=self.timeout + 30)

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call tool `name` from any event loop; ToolError when the server fails or dies."""
        return await asyncio.wrap_future(self._run(self._call(name, arguments)))

    def close(self) -> None:
        """Close the connection (a stdio server is stopped) and the background loop."""
        if self.closed:
            return
        self.closed = True
        atexit.unregister(self.close)
        with contextlib.suppress(Exception):
            self._run(self._drop()).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)

    # ------------------------------------------------------------- on the background loop

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    async def _list(self) -> list[Any]:
        session = await self._connect()
        return list((await session.list_tools()).tools)

    async def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        session = await self._connect()
        try:
            return await session.call_tool(name, arguments,
                                           read_timeout_seconds=timedelta(seconds=self.timeout))
        except Exception as exc:  # the server died, hung up or broke the protocol
            await self._drop()
            raise ToolError(f"MCP server {self.label} failed during {name!r} "
                            f"({type(exc).__name__}: {exc or 'connection lost'})") from None

    async def _connect(self) -> Any:
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._session is None:
                ready: asyncio.Future = asyncio.get_running_loop().create_future()
                self._stop = asyncio.Event()
                self._owner = asyncio.ensure_future(self._own(ready, self._stop))
                try:
                    self._session = await asyncio.wait_for(ready, self.timeout)
                except Exception as exc:
                    self._stop.set()
                    raise ToolError(f"cannot connect to MCP server {self.label} "
                                    f"({type(exc).__name__}: {exc})") from None
            return self._session

    async def _own(self, ready: asyncio.Future, stop: asyncio.Event) -> None:
        """Hold one connection open until `stop` (its context managers need one task)."""
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                ready.set_result(session)
                await stop.wait()
        except Exception as exc:  # a failed start; a dead server's close errors are expected
            if not ready.done():
                ready.set_exception(exc)

    @contextlib.asynccontextmanager
    async def _transport(self) -> Any:
        if self.command is not None:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            params = StdioServerParameters(command=self.command[0], args=self.command[1:],
                                           env=self.env, cwd=self.cwd)
            async with stdio_client(params) as (read, write):
                yield read, write
        else:
            import httpx
            from mcp.client.streamable_http import streamable_http_client

            async with (httpx.AsyncClient(headers=self.headers, timeout=self.timeout,
                                          follow_redirects=True) as client,
                        streamable_http_client(self.url, http_client=client) as (read, write, _)):
                yield read, write

    async def _drop(self) -> None:
        """Close the connection (waiting a little for a stdio server to be stopped)."""
        if self._stop is not None:
            self._stop.set()
        if self._owner is not None:
            await asyncio.wait({self._owner}, timeout=5)
        self._session, self._owner = None, None


def mcp_tools(server: MCPServer, *, include: Sequence[str] | None = None, prefix: str = "",
              timeout: float | None = None) -> list[Tool]:
    """The server's tools (those named in `include`, if given) as turnwise Tools named
    `prefix + name`; `timeout` overrides the executor's per-call limit."""
    listed = {t.name: t for t in server.list_tools()}
    missing = sorted(set(include or ()) - set(listed))
    if missing:
        raise ValueError(f"MCP server {server.label} has no tools {missing}; it has {sorted(listed)}")
    return [_tool(server, listed[name], prefix, timeout) for name in (include or listed)]


def _tool(server: MCPServer, spec: Any, prefix: str, timeout: float | None) -> Tool:
    parameters = clean_schema(spec.inputSchema or {"type": "object", "properties": {}})
    parameters.setdefault("type", "object")
    parameters.setdefault("properties", {})

    async def run(**arguments: Any) -> str:
        result = await server.call(spec.name, arguments)
        text = _text(result.content)
        if result.isError:
            raise ToolError(text or f"MCP tool {spec.name!r} failed")
        return text

    return Tool(name=f"{prefix}{spec.name}", description=spec.description or spec.name,
                parameters=parameters, fn=run, timeout=timeout,
                metadata={"mcp_server": server.label, "mcp_tool": spec.name})


def _text(content: Sequence[Any]) -> str:
    """An MCP result's content as text: text parts as they are, others named by type."""
    parts = []
    for item in content:
        if getattr(item, "type", None) == "text":
            parts.append(item.text)
        elif getattr(item, "type", None) == "resource" and hasattr(item.resource, "text"):
            parts.append(item.resource.text)
        else:
            parts.append(f"[{getattr(item, 'type', 'content')}: {getattr(item, 'mimeType', '')}]")
    return "\n".join(parts)


_SERVERS: dict[tuple, MCPServer] = {}


@register_builtin("mcp")
def _builtin(*, tool: str, command: list[str] | None = None, url: str | None = None,
             name: str | None = None, timeout: float = 30.0,
             env: dict[str, str] | None = None, cwd: str | None = None) -> Tool:
    # One connection per server, shared by every tool a recipe takes from it.
    key = (tuple(command or ()), url, tuple(sorted((env or {}).items())), cwd)
    if key not in _SERVERS:
        _SERVERS[key] = MCPServer(command=command, url=url, env=env, cwd=cwd, timeout=timeout)
    built = mcp_tools(_SERVERS[key], include=[tool])[0]
    return built if name is None else dataclasses.replace(built, name=name)
