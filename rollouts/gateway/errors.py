"""Errors the gateway answers with, in the OpenAI API's shape: `{"error": {message, type, param,
code}}` and the HTTP status the OpenAI client maps to its exception classes."""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """A request the gateway refuses; `body()` is what the client receives."""

    def __init__(self, status: int, message: str, *, code: str, param: str | None = None,
                 kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.kind = kind or _KINDS.get(status, "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}


# The `type` OpenAI's API gives each status.
_KINDS = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          409: "conflict_error", 410: "invalid_request_error", 500: "server_error",
          503: "server_error"}


def invalid(message: str, *, param: str | None = None, code: str = "invalid_value") -> GatewayError:
    """A 400: the request itself is wrong."""
    return GatewayError(400, message, code=code, param=param)
