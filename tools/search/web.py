"""Web search over httpx, speaking a configurable JSON API (SearxNG-style or Serper-style).

Failures are classified for the executor: network errors, timeouts, 429 and 5xx, and
responses that are not JSON are transient (retried with backoff); other 4xx and responses of
the wrong shape are not. Results are cached (memory, optionally disk), and identical queries
in flight at once share one request, as the n samples of one prompt tend to ask the same thing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from ..base import Tool, ToolError, TransientToolError
from ..decorator import tool
from ..plugins import closest
from .corpus import Document, Hit, format_hits


@dataclass(frozen=True)
class APIStyle:
    """Where a JSON search API takes the query and puts the results."""

    method: str  # GET: query in the URL; POST: query in a JSON body
    query_key: str
    count_key: str | None  # how many results to ask for (None: the API decides; cut locally)
    results_key: str
    title_key: str
    url_key: str
    snippet_key: str
    fixed: dict[str, Any] = field(default_factory=dict)  # constant params / body fields
    api_key_header: str | None = None
    api_key_env: str | None = None


STYLES = {
    "searxng": APIStyle(method="GET", query_key="q", count_key=None, results_key="results",
                        title_key="title", url_key="url", snippet_key="content",
                        fixed={"format": "json"}),
    "serper": APIStyle(method="POST", query_key="q", count_key="num", results_key="organic",
                       title_key="title", url_key="link", snippet_key="snippet",
                       api_key_header="X-API-KEY", api_key_env="SERPER_API_KEY"),
}


class WebSearch:
    """A client of one search API with a result cache.

    Args:
        url: the search endpoint (SearxNG: https://host/search; Serper: https://google.serper.dev/search).
        style: "searxng" or "serper"; `overrides` changes any `APIStyle` field (results_key, ...).
        api_key: sent in the style's header; defaults to the style's environment variable.
        cache_size: results kept in memory (0: none); `cache_dir` also keeps them on disk.
    """

    def __init__(self, url: str, *, style: str = "searxng", api_key: str | None = None,
                 top_k: int = 5, timeout: float = 10.0, cache_size: int = 4096,
                 cache_dir: str | None = None, headers: dict[str, str] | None = None,
                 params: dict[str, Any] | None = None, **overrides: Any) -> None:
        if style not in STYLES:
            raise ValueError(f"web search style={style!r}: allowed are {sorted(STYLES)}")
        unknown = sorted(set(overrides) - set(APIStyle.__dataclass_fields__))
        if unknown:
            fields = sorted(APIStyle.__dataclass_fields__)
            raise ValueError(f"web search options {unknown} are unknown; "
                             f"{closest(unknown, fields)}style fields are {fields}")
        if top_k < 1 or timeout <= 0 or cache_size < 0:
            raise ValueError(f"web search: top_k={top_k} >= 1, timeout={timeout} > 0, "
                             f"cache_size={cache_size} >= 0 required")
        self.url = url
        self.api = replace(STYLES[style], **overrides)
        self.style = style
        key = api_key or (os.environ.get(self.api.api_key_env) if self.api.api_key_env else None)
        if self.api.api_key_header and not key:
            raise ValueError(f"web search style={style!r} needs an API key: pass api_key or set "
                             f"{self.api.api_key_env}")
        self.headers = dict(headers or {})
        if self.api.api_key_header:
            self.headers[self.api.api_key_header] = key
        self.params = dict(params or {})
        self.top_k = top_k
        self.timeout = timeout
        self.cache_size = cache_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        if self.cache_dir:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[str, list[Hit]] = OrderedDict()
        # Per event loop (clients and futures belong to one): requests in flight, by cache key.
        self._inflight: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.requests = 0  # requests actually sent (cache hits and shared requests excluded)

    async def search(self, query: str) -> list[Hit]:
        """The top hits for `query`, from the cache when possible."""
        query = " ".join(query.split())
        key = self._key(query)
        cached = self._cache_get(key)
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        inflight = self._inflight.setdefault(loop, {})
        if key in inflight:  # someone is already asking this: wait for their answer
            return await asyncio.shield(inflight[key])
        future = loop.create_future()
        inflight[key] = future
        try:
            hits = await self._fetch(query)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters may be none
            raise
        finally:
            del inflight[key]
        future.set_result(hits)
        self._cache_put(key, hits)
        return hits

    async def aclose(self) -> None:
        """Close this event loop's connections."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def _fetch(self, query: str) -> list[Hit]:
        api = self.api
        payload = {**api.fixed, **self.params, api.query_key: query}
        if api.count_key:
            payload[api.count_key] = self.top_k
        client = self._client()
        self.requests += 1
        if api.method == "GET":
            response = await client.get(self.url, params=payload)
        else:
            response = await client.post(self.url, json=payload)
        if response.status_code >= 400:
            if response.status_code == 429 or response.status_code >= 500:
                response.raise_for_status()  # HTTPStatusError: the executor retries these
            hint = " (check the API key)" if response.status_code in (401, 403) else ""
            raise ToolError(f"the search API refused the request: {response.status_code} "
                            f"{response.reason_phrase}{hint}")
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TransientToolError(f"the search API returned something that is not JSON "
                                     f"({exc}): {response.text[:80]!r}") from None
        results = data.get(api.results_key) if isinstance(data, dict) else None
        if not isinstance(results, list):
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ToolError(f"the search API's response has no {api.results_key!r} list "
                            f"(got {keys}); set results_key for this API")
        hits = []
        for item in results[: self.top_k]:
            if not isinstance(item, dict):
                continue
            doc = Document(id=str(item.get(api.url_key) or ""),
                           title=str(item.get(api.title_key) or ""),
                           text=str(item.get(api.snippet_key) or ""))
            hits.append(Hit(doc, score=0.0))
        return hits

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            self._clients[loop] = httpx.AsyncClient(timeout=self.timeout, headers=self.headers,
                                                    follow_redirects=True)
        return self._clients[loop]

    def _key(self, query: str) -> str:
        raw = json.dumps([self.style, self.url, self.params, self.top_k, query], sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()

    def _cache_get(self, key: str) -> list[Hit] | None:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if self.cache_dir and (self.cache_dir / f"{key}.json").is_file():
            rows = json.loads((self.cache_dir / f"{key}.json").read_text())
            hits = [Hit(Document(**row), 0.0) for row in rows]
            self._remember(key, hits)
            return hits
        return None

    def _cache_put(self, key: str, hits: list[Hit]) -> None:
        self._remember(key, hits)
        if self.cache_dir:
            path = self.cache_dir / f"{key}.json"
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps([h.document.__dict__ for h in hits]))
            tmp.replace(path)  # atomic: concurrent writers never leave half a file

    def _remember(self, key: str, hits: list[Hit]) -> None:
        if self.cache_size:
            self._cache[key] = hits
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


def web_search_tool(url: str, *, style: str = "searxng", top_k: int = 5,
                    snippet_chars: int = 300, show_urls: bool = True, name: str = "web_search",
                    **options: Any) -> Tool:
    """A tool that searches the web through `WebSearch` and returns numbered snippets."""
    client = WebSearch(url, style=style, top_k=top_k, **options)

    async def web_search(query: str) -> str:
        """Search the web.

        Args:
            query: what to search for.
        """
        if not query.strip():
            raise ToolError("the query is empty")
        hits = await client.search(query)
        return format_hits(hits, snippet_chars=snippet_chars, urls=show_urls)

    description = f"Search the web; returns the top {top_k} results."
    made = tool(name=name, description=description)(web_search)
    made.metadata["client"] = client
    return made
