"""The `server` engine: vLLM servers over HTTP behind the `InferenceEngine` contract.

Token ids go in and come back through vLLM's token-in-token-out endpoint
(`/inference/v1/generate`), with each sampled token's logprob under the tempered distribution
and the weights version that sampled it, so a row is exactly what the server generated; one
sample per request (with n > 1 vLLM seeds sample i with seed + i, so rollouts with nearby seeds
would share samples). Requests go to the server with the fewest outstanding requests, and every
request of a session (an episode) to the same server, whose prefix cache holds the episode so
far. A server that fails a request and its health check, or stalls, is taken out and its
requests are retried elsewhere; a background check readmits it once it answers again (after
loading the current weights if it lost them). New weights reach every server through a
safetensors file (see `server_sync.py`). Start servers with `turnwise serve` (docs/servers.md).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from .base import Completion, SamplingParams
from .server_http import HttpLoop, ServerDown, ServerRefused
from .server_pool import NoServerAvailable, Server, ServerPool
from .server_sync import Served, inspect, load_into, set_label
from .vllm import check_sampling
from .weights import (
    checked_tensors,
    checkpoint_shapes,
    handover_folder,
    model_tensors,
    write_weights,
)

GENERATE = "/inference/v1/generate"


class ServerEngine:
    """One or more vLLM servers, started with `turnwise serve`, driven from any event loop."""

    def __init__(
        self,
        model: str,
        tokenizer: Any = None,
        *,
        urls: list[str],
        dtype: str = "float32",
        sync_dir: str | None = None,
        health_interval_s: float = 5.0,
        health_timeout_s: float = 20.0,
        control_timeout_s: float = 600.0,
        max_attempts: int | None = None,
    ) -> None:
        if not isinstance(model, str):
            raise TypeError("engine.kind='server' needs the model folder the trainer writes, not "
                            f"a loaded module ({type(model).__name__})")
        self.model = model
        self.tokenizer = tokenizer
        self.dtype = dtype
        self.version = 0
        self.stats = {"requests": 0, "tokens": 0, "retries": 0, "taken_out": 0,
                      "readmitted": 0, "weight_syncs": 0, "sync_seconds": 0.0}
        self.pool = ServerPool(urls)
        self.health_interval_s, self.health_timeout_s = health_interval_s, health_timeout_s
        self.control_timeout_s = control_timeout_s
        # Each server twice, then give up: a request that failed everywhere is not the servers'.
        self.max_attempts = max_attempts or 2 * len(self.pool.servers) + 1
        self._shapes = checkpoint_shapes(model)
        self._folder = handover_folder(sync_dir)
        self._weights: tuple[str, int] | None = None  # file and tensor count of self.version
        # Request ids are unique across engines too (two runs, or ranks, may share a server).
        self._name, self._ids = uuid.uuid4().hex[:12], itertools.count()
        self._asleep = False
        self._closed = False
        self._http = HttpLoop()
        try:
            self.max_model_len = self._http.call(self._start())
        except BaseException:
            self._http.close()
            shutil.rmtree(self._folder, ignore_errors=True)
            raise

    # ----------------------------------------------------------------------------- contract

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *,
                       session: str | None = None) -> Completion:
        """Sample one continuation of `prompt_ids` on a server (the session's, if it has one)."""
        if self._closed:
            raise RuntimeError("ServerEngine.generate after close()")
        if self._asleep:
            raise RuntimeError("ServerEngine.generate while asleep; call wake() first")
        if not prompt_ids:
            raise ValueError("ServerEngine.generate: empty prompt")
        check_sampling(params, "server")
        if len(prompt_ids) >= self.max_model_len:
            return Completion(token_ids=[], logprobs=[], finish_reason="length",
                              version=self.version, prompt_tokens=len(prompt_ids),
                              info={"prompt_too_long": True})
        return await self._http.run(self._generate(list(prompt_ids), params, session))

    def load_weights(self, named_tensors: Iterable[tuple[str, Any]], version: int) -> None:
        """Serve new weights as policy `version` on every server (from any thread but the
        engine's; requests in flight freeze, then go on with the new weights)."""
        started = time.perf_counter()
        tensors = checked_tensors(named_tensors, self._shapes)
        path = write_weights(tensors, self._folder, f"v{version}")
        try:
            self._http.call(self._push_all(path, len(tensors), version))
        except BaseException:
            os.remove(path)
            raise
        self.stats["weight_syncs"] += 1
        self.stats["sync_seconds"] += time.perf_counter() - started

    async def sleep(self) -> None:
        """Refuse new requests, let those in flight finish, then free the servers' accelerator
        memory (vLLM sleep level 1; on CPU the servers only log that they cannot)."""
        self._asleep = True
        await self._http.run(self._each_server("POST", "/sleep",
                                               {"level": "1", "mode": "wait"}))

    async def wake(self) -> None:
        await self._http.run(self._each_server("POST", "/wake_up", None))
        self._asleep = False

    async def close(self) -> None:
        """Stop the health checks and the HTTP loop; the servers keep running."""
        if self._closed:
            return
        self._closed = True
        self._http.loop.call_soon_threadsafe(self._health.cancel)
        await asyncio.to_thread(self._http.close)
        shutil.rmtree(self._folder, ignore_errors=True)

    # ----------------------------------------------------------------------------- start-up

    async def _start(self) -> int:
        """Check every server, make each serve `self.model` as version 0, start health checks;
        the context length they share."""
        self._lock = asyncio.Lock()  # one weight change at a time (sync, readmission)
        served: dict[Server, Served] = {}
        for server in self.pool.servers:
            try:
                served[server] = await inspect(self._http, server.url, dtype=self.dtype,
                                               timeout=self.health_timeout_s)
            except ServerDown as exc:
                self._take_out(server, str(exc))
        if not served:
            raise NoServerAvailable(f"no server reachable: {self.pool.describe()}")
        lengths = {s.max_model_len for s in served.values()}
        if len(lengths) > 1:
            raise ValueError("engine.urls serve different context lengths: "
                             + ", ".join(f"{k.url}: {v.max_model_len}" for k, v in served.items()))
        for server, state in served.items():
            await self._bring_to_version(server, state)
        self._health = asyncio.ensure_future(self._health_checks())
        return lengths.pop()

    async def _bring_to_version(self, server: Server, state: Served) -> None:
        """Make `server` serve the engine's weights under the engine's version label."""
        if state.label == str(self.version):
            if state.paused:  # an update that failed after labelling left it paused
                await self._http.request("POST", f"{server.url}/resume",
                                         timeout=self.control_timeout_s)
            return
        fresh = state.label == "default" and os.path.realpath(state.model) == \
            os.path.realpath(self.model)
        if self.version == 0 and fresh:  # started from the engine's model, never changed
            await set_label(self._http, server.url, 0, timeout=self.control_timeout_s)
            return
        if self._weights is None:  # version 0 from a server started on another model
            tensors = await asyncio.to_thread(model_tensors, self.model)
            path = await asyncio.to_thread(write_weights, tensors, self._folder, "v0")
            self._weights = (path, len(tensors))
        path, count = self._weights
        await load_into(self._http, server.url, path, tensors=count, version=self.version,
                        timeout=self.control_timeout_s)

    # ----------------------------------------------------------------------------- requests

    async def _generate(self, prompt_ids: list[int], params: SamplingParams,
                        session: str | None) -> Completion:
        started = time.perf_counter()
        version = self.version
        body = request_body(prompt_ids, params, self.max_model_len,
                            f"tw-{self._name}-{next(self._ids)}")
        retrying = AsyncRetrying(retry=retry_if_exception_type(ServerDown),
                                 stop=stop_after_attempt(self.max_attempts),
                                 wait=wait_exponential(multiplier=0.05, max=2.0), reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.stats["retries"] += 1
                    server = await self._pick(session)
                    answer = await self._attempt(server, body)
        except ServerDown as exc:
            raise NoServerAvailable(f"request failed {self.max_attempts} times, last: {exc}; "
                                    f"servers: {self.pool.describe()}") from exc
        completion = parse_answer(answer, params, version, server.url)
        completion.prompt_tokens = len(prompt_ids)
        completion.gen_seconds = time.perf_counter() - started
        self.stats["requests"] += 1
        self.stats["tokens"] += len(completion.token_ids)
        return completion

    async def _pick(self, session: str | None) -> Server:
        """The server for this request; with none up, check them all once more before
        giving up (a server may be back before the next scheduled check)."""
        try:
            return self.pool.pick(session)
        except NoServerAvailable:
            await self._check_all()
            return self.pool.pick(session)

    async def _attempt(self, server: Server, body: dict) -> dict:
        """One try on `server`; ServerDown if it failed (and, if unhealthy, it is taken out)."""
        task = asyncio.ensure_future(self._http.request("POST", server.url + GENERATE,
                                                        body=body))
        server.attempts.add(task)
        server.outstanding += 1
        try:
            return await task
        except asyncio.CancelledError:
            # The pool cancelled the request because it took the server out (retry it), or
            # the caller cancelled this request (let it go).
            cancelling = getattr(asyncio.current_task(), "cancelling", None)
            by_caller = bool(cancelling and cancelling())
            if task.cancelled() and not server.up and not by_caller:
                raise ServerDown(f"{server.url} was taken out: {server.failure}") from None
            raise
        except ServerDown as exc:
            if not await self._healthy(server):
                self._take_out(server, str(exc))
            raise
        finally:
            server.attempts.discard(task)
            server.outstanding -= 1

    # ----------------------------------------------------------------------------- health

    async def _health_checks(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            await self._check_all()

    async def _check_all(self) -> None:
        """Take out servers that do not answer /health; readmit those that answer again."""
        await asyncio.gather(*(self._check(s) for s in self.pool.servers))

    async def _check(self, server: Server) -> None:
        healthy = await self._healthy(server)
        if server.up and not healthy:
            self._take_out(server, f"no answer to /health within {self.health_timeout_s:g} s")
        elif not server.up and healthy:
            try:
                async with self._lock:
                    state = await inspect(self._http, server.url, dtype=self.dtype,
                                          timeout=self.health_timeout_s, probe=False)
                    await self._bring_to_version(server, state)
            except (ServerDown, ServerRefused) as exc:
                server.failure = f"back, but not readmitted: {exc}"
                return
            self.pool.readmit(server)
            self.stats["readmitted"] += 1

    async def _healthy(self, server: Server) -> bool:
        try:
            await self._http.request("GET", f"{server.url}/health",
                                     timeout=self.health_timeout_s)
            return True
        except (ServerDown, ServerRefused):
            return False

    def _take_out(self, server: Server, why: str) -> None:
        if self.pool.take_out(server, why):
            self.stats["taken_out"] += 1

    # ----------------------------------------------------------------------------- weights

    async def _push_all(self, path: str, tensors: int, version: int) -> None:
        """Load `path` into every server in service as `version`; a server that fails is
        taken out (paused, so it serves nothing half-loaded)."""
        async with self._lock:
            servers = self.pool.up
            results = await asyncio.gather(
                *(load_into(self._http, s.url, path, tensors=tensors, version=version,
                            timeout=self.control_timeout_s) for s in servers),
                return_exceptions=True)
            for server, result in zip(servers, results):
                if isinstance(result, ServerRefused):
                    raise result  # a refused update is a bug here, not a server failure
                if isinstance(result, BaseException):
                    self._take_out(server, f"weight update to version {version} failed: "
                                           f"{result}")
            if not self.pool.up:
                raise NoServerAvailable(f"weight update to version {version} failed on every "
                                        f"server: {self.pool.describe()}")
            previous, self._weights = self._weights, (path, tensors)
            self.version = version
        if previous is not None and previous[0] != path:
            os.remove(previous[0])

    async def _each_server(self, method: str, route: str, params: dict | None) -> None:
        await asyncio.gather(*(self._http.request(method, s.url + route, params=params,
                                                  timeout=self.control_timeout_s)
                               for s in self.pool.up))


def request_body(prompt_ids: list[int], params: SamplingParams, max_model_len: int,
                 request_id: str) -> dict:
    """The JSON of one token-in-token-out request: one sample, vLLM's own sampling params."""
    sampling = {
        "n": 1, "max_tokens": min(params.max_tokens, max_model_len - len(prompt_ids)),
        "temperature": params.temperature, "seed": params.seed,
        "stop": list(params.stop), "stop_token_ids": list(params.stop_token_ids),
        "ignore_eos": params.ignore_eos, "skip_special_tokens": False,
        "detokenize": bool(params.stop),  # stop strings are matched on text
        # vLLM lists the sampled token first and cuts the list at `logprobs` entries, so a
        # sampled token outside the top k would push the k-th one out: ask for one more.
        "logprobs": params.top_logprobs + 1 if params.top_logprobs else 0,
    }
    return {"request_id": request_id, "token_ids": prompt_ids, "sampling_params": sampling}


def parse_answer(answer: dict, params: SamplingParams, version: int, url: str) -> Completion:
    """A `Completion` from a token-in-token-out answer, exactly as the server generated it."""
    choice = answer["choices"][0]
    token_ids = list(choice["token_ids"] or [])
    content = (choice.get("logprobs") or {}).get("content") or []
    if len(content) != len(token_ids):
        raise RuntimeError(f"{url} returned {len(content)} logprobs for {len(token_ids)} tokens")
    logprobs = [entry["logprob"] for entry in content]
    if any(lp == -9999.0 for lp in logprobs):  # vLLM's mark for a sampled token it lost
        raise RuntimeError(f"{url} returned no logprob for a sampled token: {logprobs}")
    top = None
    if params.top_logprobs:
        k = params.top_logprobs
        top = [{t["token_id"]: t["logprob"] for t in entry["top_logprobs"]
                if t.get("rank") is not None and t["rank"] <= k}
               for i, entry in enumerate(content) if params.wants_top_logprobs(i)]
    token_versions = _token_versions(choice.get("weight_versions"), len(token_ids), url)
    stop_reason = choice.get("stop_reason")
    if choice["finish_reason"] == "stop" and stop_reason is None and token_ids:
        stop_reason = token_ids[-1]  # vLLM leaves it empty for eos; the contract names it
    return Completion(
        token_ids=token_ids, logprobs=logprobs, finish_reason=choice["finish_reason"],
        version=min(token_versions) if token_versions else version,
        token_versions=token_versions if token_versions and len(set(token_versions)) > 1
        else None,
        top_logprobs=top, stop_reason=stop_reason, info={"server": url})


def _token_versions(spans: list[dict] | None, count: int, url: str) -> list[int] | None:
    """The weights version of each output token, from vLLM's [start, end) spans."""
    if not spans or not count:
        return None
    versions: list[int] = []
    for span in spans:
        try:
            label = int(span["version"])
        except ValueError:
            raise RuntimeError(f"{url} labels its weights {span['version']!r}, not a version "
                               "this engine set: another client changed them") from None
        versions += [label] * (span["end"] - span["start"])
    if len(versions) != count:
        raise RuntimeError(f"{url} gave weight versions for {len(versions)} of {count} tokens")
    return versions
