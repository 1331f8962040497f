"""The embedded engine: a transformers model served with in-flight batching on a worker thread.

Requests from concurrent episodes are collected for a few milliseconds (or until a batch
fills), prefilled together, and their KV cache is merged into the running batch between decode
steps; each row leaves the batch the moment it finishes, so a short answer never waits for a
long one.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from .base import Completion, SamplingParams
from .kv import BatchState, cache_argument, left_padded, returned_cache
from .sampling import choose, tempered_logprobs, top_logprobs


@dataclass
class _Request:
    prompt_ids: list[int]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


@dataclass
class _Row:
    request: _Request
    max_tokens: int
    version: int  # the policy version when the row started
    generator: torch.Generator | None
    logits_version: int = 0  # the weights that computed the row's next-token logits
    token_ids: list[int] = field(default_factory=list)
    token_versions: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[int, float]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    finish: tuple[str, Any] | None = None


class HFEngine:
    """A transformers causal LM behind the `InferenceEngine` contract."""

    def __init__(
        self,
        model: str | torch.nn.Module,
        tokenizer: Any = None,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        max_batch: int = 64,
        batch_wait_ms: float = 5.0,
        max_model_len: int | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch_dtype = _DTYPES.get(dtype)
        if torch_dtype is None:
            raise ValueError(f"engine.dtype={dtype!r}: allowed are {sorted(_DTYPES)}")
        if isinstance(model, str):
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype)
        else:
            self.tokenizer = tokenizer
            model = model.to(dtype=torch_dtype)
        self.model = model.to(device).eval().requires_grad_(False)
        self._cache_kw = cache_argument(self.model)  # `cache` from transformers 5.24
        self.device = torch.device(device)
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_ms / 1000.0
        self.max_model_len = max_model_len or int(
            getattr(self.model.config, "max_position_embeddings", 1 << 30))
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.pad_id = _pad_id(self.model, self.tokenizer)
        self.version = 0
        self.stats = {"requests": 0, "decode_steps": 0, "prefills": 0, "tokens": 0, "rows_sum": 0,
                      "peak_rows": 0}
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._lock = threading.Lock()  # held for every forward and every weight load
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._asleep = False
        self._closed = False

    # ----------------------------------------------------------------------------- contract

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *,
                       session: str | None = None) -> Completion:
        """Sample one continuation of `prompt_ids`; many calls in flight are batched together.
        `session` is accepted for the contract and unused (one model, no server to choose)."""
        if self._closed:
            raise RuntimeError("HFEngine.generate after close()")
        if self._asleep:
            raise RuntimeError("HFEngine.generate while asleep; call wake() first")
        if not prompt_ids:
            raise ValueError("HFEngine.generate: empty prompt")
        loop = asyncio.get_running_loop()
        request = _Request(list(prompt_ids), params, loop, loop.create_future())
        self._ensure_worker()
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            self._queue.put(request)
            return await request.future
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]], version: int) -> None:
        """Copy trainer weights into the serving model in place and record the policy version."""
        params = dict(self.model.named_parameters())
        params.update(dict(self.model.named_buffers()))
        with self._lock, torch.no_grad():
            seen = 0
            for name, tensor in named_tensors:
                target = params.get(name)
                if target is None:
                    raise KeyError(f"load_weights: the engine's model has no tensor named {name!r}")
                if tuple(target.shape) != tuple(tensor.shape):
                    raise ValueError(
                        f"load_weights: {name} has shape {tuple(tensor.shape)}, "
                        f"engine expects {tuple(target.shape)}")
                target.copy_(tensor.to(device=target.device, dtype=target.dtype))
                seen += 1
            if seen == 0:
                raise ValueError("load_weights: no tensors given")
            self.version = version

    async def sleep(self) -> None:
        """Refuse new requests, let those in flight finish, then move weights off the GPU."""
        self._asleep = True
        while self._in_flight:
            await asyncio.sleep(0.005)
        with self._lock:
            if self.device.type != "cpu":
                self.model.to("cpu")
                torch.cuda.empty_cache()

    async def wake(self) -> None:
        with self._lock:
            if self.device.type != "cpu":
                self.model.to(self.device)
            self._asleep = False

    async def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    # ----------------------------------------------------------------------------- worker

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._serve, name="hf-engine", daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        rows: list[_Row] = []
        state: BatchState | None = None
        while True:
            # Rows in flight never exceed max_batch; the rest wait in the queue for a free row.
            incoming = self._take_requests(self.max_batch - len(rows), block=not rows)
            if incoming is None:
                for row in rows:
                    _resolve_error(row.request, RuntimeError("engine closed"))
                return
            try:
                with self._lock, torch.no_grad():
                    fits = [r for r in incoming if len(r.prompt_ids) < self.max_model_len]
                    for request in incoming:
                        if len(request.prompt_ids) >= self.max_model_len:
                            _resolve(request, _too_long(request, self.version))
                    if fits:
                        new_rows, new_state = self._prefill(fits)
                        state = new_state if state is None else state.merge(new_state)
                        rows.extend(new_rows)
                    if not rows:
                        continue
                    finished = self._sample_step(rows, state)
                    if finished:
                        for i in sorted(finished):
                            self._finish(rows[i])
                        keep = [i for i in range(len(rows)) if i not in finished]
                        rows = [rows[i] for i in keep]
                        state = state.select(keep) if rows else None
                    if rows:
                        self._decode_step(rows, state)
            except Exception as exc:  # a bug or OOM: fail the requests in flight, keep serving
                for row in rows:
                    _resolve_error(row.request, exc)
                for request in incoming:
                    _resolve_error(request, exc)
                rows, state = [], None

    def _take_requests(self, room: int, *, block: bool) -> list[_Request] | None:
        """Up to `room` waiting requests; when idle, wait for one and then a short window."""
        taken: list[_Request] = []
        if block:
            first = self._queue.get()
            if first is None:
                return None
            taken.append(first)
            deadline = time.perf_counter() + self.batch_wait_s
            while len(taken) < room:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                taken.append(item)
        while len(taken) < room:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            taken.append(item)
        return taken

    def _prefill(self, requests: list[_Request]) -> tuple[list[_Row], BatchState]:
        """Run the prompts of new requests together; their rows and batch state."""
        from transformers import DynamicCache

        self.stats["prefills"] += 1
        self.stats["requests"] += len(requests)
        ids, mask, positions = left_padded([r.prompt_ids for r in requests], self.pad_id,
                                           self.device)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1, **{self._cache_kw: DynamicCache()})
        rows = []
        for request in requests:
            room = self.max_model_len - len(request.prompt_ids)
            generator = None
            if request.params.seed is not None:
                generator = torch.Generator(device=self.device).manual_seed(request.params.seed)
            rows.append(_Row(request, min(request.params.max_tokens, room), self.version,
                             generator, logits_version=self.version))
        return rows, BatchState(returned_cache(out), mask, out.logits[:, -1].float())

    def _sample_step(self, rows: list[_Row], state: BatchState) -> set[int]:
        """Sample one token for every row; return the indices of rows that finished."""
        params = [r.request.params for r in rows]
        logprobs = tempered_logprobs(state.next_logits, params)
        chosen = choose(logprobs, params, [r.generator for r in rows])
        picked = logprobs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1).tolist()
        finished: set[int] = set()
        for i, (row, token) in enumerate(zip(rows, chosen.tolist())):
            if row.request.params.wants_top_logprobs(len(row.token_ids)):
                row.top_logprobs.append(top_logprobs(logprobs[i], row.request.params.top_logprobs))
            row.token_ids.append(token)
            row.token_versions.append(row.logits_version)
            row.logprobs.append(picked[i])
            row.finish = self._stop_reason(row, token)
            if row.finish is not None:
                finished.add(i)
        self.stats["tokens"] += len(rows)
        state.last_tokens = chosen
        return finished

    def _stop_reason(self, row: _Row, token: int) -> tuple[str, Any] | None:
        params = row.request.params
        if token in params.stop_token_ids or (token in self.eos_ids and not params.ignore_eos):
            return ("stop", token)
        if params.stop:
            # A stop string of b bytes lies within the last b tokens (a token is >= 1 byte).
            window = max(len(s.encode()) for s in params.stop)
            tail = self.tokenizer.decode(row.token_ids[-window:], skip_special_tokens=False)
            for stop in params.stop:
                if stop in tail:
                    return ("stop", stop)
        if len(row.token_ids) >= row.max_tokens:
            return ("length", None)
        return None

    def _decode_step(self, rows: list[_Row], state: BatchState) -> None:
        ones = torch.ones((len(rows), 1), dtype=state.mask.dtype, device=state.mask.device)
        state.mask = torch.cat([state.mask, ones], dim=1)
        positions = state.mask.sum(-1, keepdim=True) - 1
        out = self.model(input_ids=state.last_tokens.unsqueeze(-1), attention_mask=state.mask,
                         position_ids=positions, use_cache=True, **{self._cache_kw: state.cache})
        state.cache = returned_cache(out)
        state.next_logits = out.logits[:, -1].float()
        for row in rows:  # weights loaded between steps reach rows in flight (partial rollouts)
            row.logits_version = self.version
        self.stats["decode_steps"] += 1
        self.stats["rows_sum"] += len(rows)
        self.stats["peak_rows"] = max(self.stats["peak_rows"], len(rows))

    def _finish(self, row: _Row) -> None:
        reason, stop = row.finish
        request = row.request
        _resolve(request, Completion(
            token_ids=row.token_ids,
            logprobs=row.logprobs,
            finish_reason=reason,
            version=row.version,
            token_versions=row.token_versions if len(set(row.token_versions)) > 1 else None,
            top_logprobs=row.top_logprobs if request.params.top_logprobs else None,
            stop_reason=stop,
            prompt_tokens=len(request.prompt_ids),
            gen_seconds=time.perf_counter() - row.started,
        ))


def _eos_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    for value in (getattr(config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(value)
    if not ids:
        raise ValueError("HFEngine: neither the model nor the tokenizer defines an eos token")
    return ids


def _pad_id(model, tokenizer) -> int:
    for value in (getattr(tokenizer, "pad_token_id", None), model.config.pad_token_id):
        if isinstance(value, int):
            return value
    return next(iter(_eos_ids(model, tokenizer)))


def _too_long(request: _Request, version: int) -> Completion:
    return Completion(token_ids=[], logprobs=[], finish_reason="length", version=version,
                      prompt_tokens=len(request.prompt_ids), info={"prompt_too_long": True})


def _resolve(request: _Request, completion: Completion) -> None:
    def set_result() -> None:
        if not request.future.done():
            request.future.set_result(completion)

    _call_soon(request, set_result)


def _resolve_error(request: _Request, exc: BaseException) -> None:
    def set_exception() -> None:
        if not request.future.done():
            request.future.set_exception(exc)

    _call_soon(request, set_exception)


def _call_soon(request: _Request, callback) -> None:
    try:
        request.loop.call_soon_threadsafe(callback)
    except RuntimeError:  # the caller's event loop is gone: nobody waits for this answer
        pass


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
