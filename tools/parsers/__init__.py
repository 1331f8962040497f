"""Tool-call formats, each both ways: instructions for the system prompt, and parsing replies."""

from __future__ import annotations

from typing import Any

from ..plugins import check_options
from ..registry import ToolRegistry
from .action import ActionParser
from .base import ParseResult, ToolParser
from .hermes import HermesParser
from .xml import XMLTagParser

PARSERS: dict[str, type] = {"hermes": HermesParser, "xml": XMLTagParser, "action": ActionParser}


def make_parser(name: str, registry: ToolRegistry, **options: Any) -> ToolParser:
    """The parser `name` ("hermes", "xml", "action") for the tools of `registry`."""
    if name not in PARSERS:
        raise ValueError(f"parser={name!r}: allowed are {sorted(PARSERS)}")
    check_options(f"parser options for {name!r}:", PARSERS[name], options)
    try:
        return PARSERS[name](registry, **options)
    except TypeError as exc:
        raise ValueError(f"parser options for {name!r}: {exc}") from exc


__all__ = [
    "PARSERS",
    "ActionParser",
    "HermesParser",
    "ParseResult",
    "ToolParser",
    "XMLTagParser",
    "make_parser",
]
