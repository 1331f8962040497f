"""The `openai` engine: any OpenAI-compatible chat endpoint, for evaluating API models.

A chat endpoint takes messages and returns text, so this engine reads the messages the prompt
ids carry (`ChatPrompt`, built by `rollouts.Episode`) and returns the reply's text in
`Completion.info["text"]`, which the episode hands to the environment's parser as it is. Its
token ids are the text encoded by the recipe's tokenizer plus eos (as the oracle's
demonstrations are) and its logprobs are zeros: the endpoint's own tokens are unknown, so
nothing here can be trained on, and `load_weights` refuses. The API key is read from an
environment variable by the caller and never logged or shown in errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import Completion, SamplingParams
from .server_http import LoopThread


class OpenAIChatEngine:
    """An OpenAI-compatible `/chat/completions` endpoint behind the engine interface (text)."""

    def __init__(self, model_path: str | None, tokenizer: Any, *, base_url: str, model_name: str,
                 api_key: str, max_concurrency: int = 64, timeout_s: float = 600.0,
                 max_retries: int = 3) -> None:
        import asyncio

        if tokenizer is None:
            raise ValueError("engine.kind='openai' needs the recipe's tokenizer: it counts the "
                             "episode's tokens and frames the chat")
        self.tokenizer = tokenizer
        self.model_name = model_name  # what the endpoint serves; model_path gives the tokenizer
        self.base_url = base_url
        self.version = 0
        self.stats = {"requests": 0, "tokens": 0}
        self._asleep = False
        self._loop = LoopThread("turnwise-openai")

        async def open_client():
            import openai

            # aiohttp underneath: httpx's connection pool costs CPU quadratic in kept-alive
            # connections (see server_http.py); the SDK retries rate limits and 5xx itself.
            return openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s,
                                      max_retries=max_retries,
                                      http_client=openai.DefaultAioHttpClient()), \
                asyncio.Semaphore(max_concurrency)

        self._client, self._slots = self._loop.call(open_client())

    async def generate(self, prompt_ids: list[int], params: SamplingParams, *,
                       session: str | None = None) -> Completion:
        """The endpoint's reply to the messages behind `prompt_ids`."""
        messages = getattr(prompt_ids, "messages", None)
        if messages is None:
            raise TypeError("engine.kind='openai' sends chat messages, and these prompt ids carry "
                            "none: it runs episodes (rollouts.Episode builds ChatPrompts), not "
                            "raw token prompts")
        if self._asleep:
            raise RuntimeError("OpenAIChatEngine.generate while asleep; call wake() first")
        check_chat_sampling(params)
        return await self._loop.run(self._chat(messages, params))

    def load_weights(self, named_tensors: Iterable[tuple[str, Any]], version: int) -> None:
        raise RuntimeError("engine.kind='openai' cannot load weights: it evaluates a model behind "
                           "an API; train with engine.kind hf, vllm or server")

    async def sleep(self) -> None:
        self._asleep = True

    async def wake(self) -> None:
        self._asleep = False

    async def close(self) -> None:
        import asyncio

        if self._loop.loop.is_closed():
            return
        await self._loop.run(self._client.close())
        await asyncio.to_thread(self._loop.close)

    async def _chat(self, messages: list[dict], params: SamplingParams) -> Completion:
        request: dict[str, Any] = {"model": self.model_name, "messages": messages, "n": 1,
                                   "max_tokens": params.max_tokens,
                                   "temperature": params.temperature}
        if params.top_p < 1.0:
            request["top_p"] = params.top_p
        if params.seed is not None:
            request["seed"] = params.seed
        if params.stop:
            request["stop"] = list(params.stop)
        async with self._slots:
            answer = await self._client.chat.completions.create(**request)
        choice = answer.choices[0]
        text = choice.message.content or ""
        # The API drops a matched stop string; vLLM names it (`stop_reason`), so it goes back.
        stop = getattr(choice, "stop_reason", None)
        if choice.finish_reason == "stop" and isinstance(stop, str):
            text += stop
        finish = "length" if choice.finish_reason == "length" else "stop"
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        if finish == "stop":
            ids.append(self.tokenizer.eos_token_id)
        self.stats["requests"] += 1
        self.stats["tokens"] += len(ids)
        usage = answer.usage.completion_tokens if answer.usage else None
        return Completion(token_ids=ids, logprobs=[0.0] * len(ids), finish_reason=finish,
                          stop_reason=stop if isinstance(stop, str) else None,
                          info={"text": text, "api_tokens": usage})


def check_chat_sampling(params: SamplingParams) -> None:
    """Refuse what a chat endpoint cannot do: token-level settings and logprobs of token ids."""
    refused = {"top_k": params.top_k, "top_logprobs": params.top_logprobs,
               "stop_token_ids": params.stop_token_ids, "ignore_eos": params.ignore_eos}
    bad = {k: v for k, v in refused.items() if v}
    if bad:
        raise ValueError(f"engine.kind='openai' cannot honour {bad}: the OpenAI chat API has no "
                         "top_k, token ids or per-token top logprobs (ARPO branching needs them)")
