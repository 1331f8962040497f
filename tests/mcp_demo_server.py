"""A small MCP server for the MCP tool tests: stdio by default, streamable HTTP with `http PORT`."""

import os
import sys
import time

from mcp.server.fastmcp import FastMCP

server = FastMCP("demo", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str, times: int = 1) -> str:
    """Upper-case a text, repeated."""
    return " ".join([text.upper()] * times)


@server.tool()
def fail(message: str) -> str:
    """Always fails with the message."""
    raise ValueError(message)


@server.tool()
def crash() -> str:
    """Kills the server in the middle of the call."""
    os._exit(3)


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def nap(seconds: float) -> str:
    """Sleeps, then answers."""
    time.sleep(seconds)
    return "awake"


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.settings.host, server.settings.port = "127.0.0.1", int(sys.argv[2])
        server.run(transport="streamable-http")
    else:
        server.run()
