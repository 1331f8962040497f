"""Built-in tools by name, so a recipe can list them: `{name: bm25_search, options: {...}}`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from .base import Tool
from .plugins import TOOLS, closest, load_plugin, plugin_names

_BUILTINS: dict[str, Callable[..., Tool]] = {}


def register_builtin(name: str) -> Callable[[Callable[..., Tool]], Callable[..., Tool]]:
    """Decorator: a factory of keyword options -> Tool, known to recipes as `name`."""

    def decorate(factory: Callable[..., Tool]) -> Callable[..., Tool]:
        if name in _BUILTINS:
            raise ValueError(f"built-in tool {name!r} is registered twice")
        _BUILTINS[name] = factory
        return factory

    return decorate


def builtin_names() -> list[str]:
    """Tool names a recipe may use: built in, registered, and installed packages'."""
    _load()
    return sorted(set(_BUILTINS) | set(plugin_names(TOOLS)))


def make_tool(name: str, /, **options: Any) -> Tool:
    """The built-in tool `name` made with `options`; errors name the option and what is allowed."""
    _load()
    if name not in _BUILTINS:  # an installed package's tool, declared as an entry point
        plugin = load_plugin(TOOLS, name)
        if plugin is not None and name not in _BUILTINS:
            register_builtin(name)(plugin)
    if name not in _BUILTINS:
        raise ValueError(f"tools: unknown built-in tool {name!r}; "
                         f"{closest([name], builtin_names())}allowed are {builtin_names()}")
    factory = _BUILTINS[name]
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            allowed = [p for p in params if params[p].kind is params[p].KEYWORD_ONLY
                       or params[p].kind is params[p].POSITIONAL_OR_KEYWORD]
            raise ValueError(f"tools: {name} options {unknown} are unknown; "
                             f"{closest(unknown, allowed)}allowed are {allowed}")
    return factory(**options)


def build_tools(specs: Sequence[Tool | Callable[..., Any] | dict[str, Any] | str]) -> list[Tool]:
    """Tools from `Tool`s, functions, langchain tools, built-in names and {name, options} specs."""
    from .decorator import tool
    from .langchain import from_langchain, is_langchain_tool

    out: list[Tool] = []
    for i, spec in enumerate(specs):
        if isinstance(spec, Tool):
            out.append(spec)
        elif is_langchain_tool(spec):
            out.append(from_langchain(spec))
        elif isinstance(spec, str):
            out.append(make_tool(spec))
        elif isinstance(spec, dict):
            extra = set(spec) - {"name", "options"}
            if "name" not in spec or extra:
                raise ValueError(f"tools[{i}]: expected {{name: ..., options: {{...}}}}, got "
                                 f"keys {sorted(spec)}")
            options = spec.get("options") or {}
            if not isinstance(options, dict):
                raise ValueError(f"tools[{i}].options: must be a mapping, got "
                                 f"{type(options).__name__}")
            out.append(make_tool(spec["name"], **options))
        elif callable(spec):
            out.append(tool(spec))
        else:
            raise ValueError(f"tools[{i}]: {spec!r} is not a tool, a function or a tool spec")
    return out


@register_builtin("bm25_search")
def _bm25(*, corpus: str, top_k: int = 3, snippet_chars: int = 300, name: str = "search",
          text_field: str = "text", title_field: str | None = "title",
          id_field: str | None = "id") -> Tool:
    from .search.bm25 import bm25_search_tool

    return bm25_search_tool(corpus, top_k=top_k, snippet_chars=snippet_chars, name=name,
                            text_field=text_field, title_field=title_field, id_field=id_field)


@register_builtin("dense_search")
def _dense(*, corpus: str, model_path: str, top_k: int = 3, snippet_chars: int = 300,
           name: str = "search", query_prefix: str = "", document_prefix: str = "",
           device: str = "cpu", embeddings_path: str | None = None, text_field: str = "text",
           title_field: str | None = "title", id_field: str | None = "id") -> Tool:
    from .search.dense import dense_search_tool

    return dense_search_tool(corpus, model_path=model_path, top_k=top_k,
                             snippet_chars=snippet_chars, name=name, query_prefix=query_prefix,
                             document_prefix=document_prefix, device=device,
                             embeddings_path=embeddings_path, text_field=text_field,
                             title_field=title_field, id_field=id_field)


@register_builtin("web_search")
def _web(*, url: str, style: str = "searxng", top_k: int = 5, snippet_chars: int = 300,
         show_urls: bool = True, name: str = "web_search", api_key: str | None = None,
         timeout: float = 10.0, cache_size: int = 4096, cache_dir: str | None = None,
         headers: dict[str, str] | None = None, params: dict | None = None,
         results_key: str | None = None, title_key: str | None = None,
         url_key: str | None = None, snippet_key: str | None = None) -> Tool:
    from .search.web import web_search_tool

    keys = {k: v for k, v in (("results_key", results_key), ("title_key", title_key),
                              ("url_key", url_key), ("snippet_key", snippet_key)) if v is not None}
    return web_search_tool(url, style=style, top_k=top_k, snippet_chars=snippet_chars,
                           show_urls=show_urls, name=name, api_key=api_key, timeout=timeout,
                           cache_size=cache_size, cache_dir=cache_dir, headers=headers,
                           params=params, **keys)


def _load() -> None:
    # The python sandbox, web search and MCP register themselves where they are defined.
    from . import mcp, python, search  # noqa: F401
