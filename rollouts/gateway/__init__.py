"""An OpenAI-compatible endpoint in front of turnwise's engines that records exact token ids:
agent programs call it as they would call any chat API, and each conversation (session) becomes
a Trajectory to train on. See docs/gateway.md."""

from .errors import GatewayError
from .request import ChatRequest, parse_request
from .server import HEADER, Gateway
from .session import Formatters, GatewaySession, Policy

__all__ = ["HEADER", "ChatRequest", "Formatters", "Gateway", "GatewayError", "GatewaySession",
           "Policy", "parse_request"]
