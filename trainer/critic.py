"""A critic that is a language model: critiques for `kind: critique` feedback turns, written by
any engine kind (hf, vllm, server, openai) built through the engine factory.

    critic: {kind: model, model: Qwen/Qwen2.5-7B-Instruct, engine: {kind: vllm},
             max_tokens: 256, temperature: 0.0, reveal_answer: false}

The critic reads the question, the wrong response and the verifier's reason (the rule critic's
verdict), and the gold answer with `reveal_answer`; its reply is the feedback the agent sees.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field, ValidationError

from ..agent.chat import ChatFormatter
from ..agent.engines.base import ChatPrompt, InferenceEngine, SamplingParams
from ..envs.feedback.critics import CritiqueRequest, RuleCritic
from .config import EngineConfig, ModelConfig, Section
from .engine_factory import build_engine
from .models import load_tokenizer, pick_device, resolve_model

SYSTEM = ("You review a student's answer to a task. The answer is wrong. In two or three "
          "sentences, say what is wrong and how to fix it. Do not write the corrected answer "
          "unless you are given it.")


class CriticConfig(Section):
    """`env.options.critic` with kind 'model' (the engine section is a recipe's `engine`)."""

    model: str  # a hub id, a local folder, or tiny:<env>
    engine: EngineConfig = Field(default_factory=EngineConfig)
    dtype: Literal["float32", "bfloat16"] = "float32"
    max_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.0, ge=0)  # 0: greedy, the same critique for the same answer
    reveal_answer: bool = False
    seed: int = 0


def critic_messages(request: CritiqueRequest, *, verdict: str,
                    reveal_answer: bool) -> list[dict[str, str]]:
    """The chat the critic model answers: the task, the wrong response, the verifier's reason."""
    parts = [f"Task:\n{request.question}", f"Student's response:\n{request.response}",
             f"Verifier: {verdict}"]
    if reveal_answer and request.task.answer is not None:
        parts.append(f"Correct answer: {request.task.answer}")
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": "\n\n".join(parts) + "\n\nCritique:"}]


class ModelCritic:
    """Critiques from a model. The engine starts at the first critique, not at construction:
    a recipe is checked (which builds its suite) before it runs, and loading a served model
    twice, or onto a GPU the run has not arranged yet, is what that must not do."""

    def __init__(self, cfg: CriticConfig, *, verdict: RuleCritic) -> None:
        self.cfg, self.verdict = cfg, verdict
        self.engine: InferenceEngine | None = None
        self.formatter: ChatFormatter | None = None
        self._starting = asyncio.Lock()

    @classmethod
    def from_options(cls, options: dict[str, Any], *, verdict: RuleCritic) -> ModelCritic:
        """From `env.options.critic` (kind removed); bad keys name key, value and the allowed."""
        try:
            cfg = CriticConfig.model_validate(options)
        except ValidationError as exc:
            problems = "; ".join(
                f"env.options.critic.{'.'.join(map(str, e['loc']))}"
                f"{'=' + repr(e['input']) if e['type'] != 'missing' else ''}: {e['msg']}"
                for e in exc.errors())
            raise ValueError(f"{problems} (allowed keys: {sorted(CriticConfig.model_fields)})") \
                from None
        return cls(cfg, verdict=verdict)

    async def critique(self, request: CritiqueRequest) -> tuple[str, str]:
        """(the model's critique, the verifier's reason); the verdict itself when the model
        writes nothing (reason `empty_critique`, so it shows in the metrics)."""
        engine, formatter = await self._start()
        verdict, reason = self.verdict.verdict(request)
        messages = critic_messages(request, verdict=verdict,
                                   reveal_answer=self.cfg.reveal_answer)
        prompt = ChatPrompt(formatter.encode(messages), messages)
        params = SamplingParams(max_tokens=self.cfg.max_tokens,
                                temperature=self.cfg.temperature, seed=self.cfg.seed)
        completion = await engine.generate(prompt, params)
        text = completion.info.get("text") or formatter.decode(completion.token_ids)
        text = text.strip()
        return (text, reason) if text else (verdict, "empty_critique")

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.close()

    async def _start(self) -> tuple[InferenceEngine, ChatFormatter]:
        async with self._starting:
            if self.engine is None:
                cfg = self.cfg
                path = resolve_model(ModelConfig(name=cfg.model, dtype=cfg.dtype))
                tokenizer = load_tokenizer(path)
                self.formatter = ChatFormatter(tokenizer)
                self.engine = build_engine(cfg.engine, path, tokenizer, dtype=cfg.dtype,
                                           device=pick_device(cfg.engine.device), seed=cfg.seed)
        return self.engine, self.formatter
