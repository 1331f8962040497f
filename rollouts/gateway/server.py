"""The gateway: an OpenAI-compatible endpoint on 127.0.0.1 whose sessions record exact tokens.

`POST /v1/chat/completions` and `GET /v1/models`, served with aiohttp on the caller's event
loop. A request names its session with its API key (`Authorization: Bearer <key>`) or the
`X-Turnwise-Session` header; `open` makes a session (a key, a policy, the episode settings and
the Trajectory its turns go into) and `close_session` ends it and hands the Trajectory back.
Refusals are OpenAI error bodies (see `errors.py`); an engine failure is not the program's
fault: it answers 500 and is kept on the session (`crash`) for the caller to raise.
"""

from __future__ import annotations

import json
import secrets
from collections import OrderedDict
from typing import Any

from aiohttp import web

from .errors import GatewayError, invalid
from .replies import stream_chunks
from .request import parse_request
from .session import Formatters, GatewaySession

HEADER = "X-Turnwise-Session"
_CLOSED_KEPT = 4096  # closed keys remembered, so a late request hears "closed", not "unknown"


class Gateway:
    """An OpenAI-compatible chat endpoint in front of per-session policies; see the module."""

    def __init__(self, tokenizer: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.formatters = Formatters(tokenizer)
        self.sessions: dict[str, GatewaySession] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        self.stats = {"requests": 0, "refused": 0}
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL a client takes (`openai.AsyncOpenAI(base_url=gateway.url)`)."""
        if self._runner is None:
            raise RuntimeError("Gateway.url before start()")
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> None:
        """Listen (port 0: a free one, read back into `port`)."""
        @web.middleware
        async def errors(request: web.Request, handler) -> web.StreamResponse:
            return await self._errors(request, handler)

        app = web.Application(middlewares=[errors], client_max_size=64 * 2**20)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening; open sessions stay readable."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def open(self, *, prefix: str = "tw", **session: Any) -> GatewaySession:
        """A new session (`GatewaySession`'s arguments) under a fresh, unguessable key."""
        key = f"{prefix}-{secrets.token_hex(12)}"
        opened = self.sessions[key] = GatewaySession(key, formatters=self.formatters, **session)
        return opened

    def close_session(self, key: str) -> GatewaySession:
        """End session `key`: later requests with it are refused as closed."""
        session = self.sessions.pop(key)
        session.close()
        self._closed[key] = None
        while len(self._closed) > _CLOSED_KEPT:
            self._closed.popitem(last=False)
        return session

    # ----------------------------------------------------------------------------- handlers

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.stats["requests"] += 1
        session = self._session(request)
        try:
            body = await request.json(loads=json.loads)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise invalid(f"the request body is not valid JSON: {exc}", code="invalid_json") \
                from None
        chat = parse_request(body)
        try:
            answer = await session.complete(chat)
        except GatewayError:
            raise
        except Exception as exc:  # the engine or a bug: the caller raises it, the client hears 500
            session.crash = exc
            raise GatewayError(500, f"the gateway failed: {type(exc).__name__}: {exc}",
                               code="internal_error") from exc
        if not chat.stream:
            return web.json_response(answer)
        return await _stream(request, stream_chunks(answer, include_usage=chat.include_usage))

    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": "policy", "object": "model", "created": 0, "owned_by": "turnwise"}]})

    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        """Every refusal as an OpenAI error body, unknown paths and methods included."""
        try:
            return await handler(request)
        except GatewayError as exc:
            self.stats["refused"] += 1
            return web.json_response(exc.body(), status=exc.status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            error = GatewayError(exc.status, f"{request.method} {request.path}: {exc.reason}; "
                                 "the gateway serves POST /v1/chat/completions and GET /v1/models",
                                 code="not_found" if exc.status == 404 else "method_not_allowed")
            return web.json_response(error.body(), status=exc.status)

    def _session(self, request: web.Request) -> GatewaySession:
        key = request.headers.get(HEADER)
        if key is None:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            key = token.strip() if scheme.lower() == "bearer" else None
        if not key:
            raise GatewayError(401, f"no session: send the session key as the API key "
                               f"(Authorization: Bearer <key>) or in the {HEADER} header",
                               code="missing_session")
        if key in self.sessions:
            return self.sessions[key]
        if key in self._closed:
            raise GatewayError(410, f"session {key!r} is closed: its episode has ended",
                               code="session_closed")
        raise GatewayError(401, f"unknown session {key!r}: the gateway hands each episode its "
                           "own key", code="unknown_session")


async def _stream(request: web.Request, chunks: list[dict]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    for chunk in chunks:
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response
