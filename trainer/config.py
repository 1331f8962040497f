"""The recipe schema: every key typed; unknown keys and wrong types stop the run at start."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TinyConfig(Section):
    """Shape of `tiny:<env>` models (ignored for hub models, and rejected if set for them)."""

    arch: Literal["qwen3", "llama"] = "qwen3"
    hidden_size: int = Field(128, ge=16)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(384, ge=16)
    vocab_size: int = Field(4096, ge=512)
    max_positions: int = Field(4096, ge=128)
    seed: int = 0


class ModelConfig(Section):
    name: str = "tiny:household"  # a hub id, a local folder, or tiny:<env>
    dtype: Literal["float32", "bfloat16"] = "float32"
    tiny: TinyConfig | None = None


class EngineConfig(Section):
    kind: Literal["hf", "vllm"] = "hf"
    device: str = "auto"
    max_batch: int = Field(64, ge=1)
    batch_wait_ms: float = Field(5.0, ge=0)


class EnvConfig(Section):
    name: str = "household"
    options: dict[str, Any] = Field(default_factory=dict)
    train_split: str = "train"


class RolloutConfig(Section):
    mode: Literal["per_step", "full_trajectory"] = "per_step"
    history: int = Field(2, ge=0)
    group_size: int = Field(8, ge=1)
    tasks_per_iteration: int = Field(8, ge=1)
    max_turns: int = Field(30, ge=1)
    max_tokens_per_turn: int = Field(64, ge=1)
    max_episode_tokens: int = Field(4096, ge=16)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    show_admissible: bool = True
    max_concurrency: int = Field(128, ge=1)
    # Rollout scheduling and checks (rollouts.orchestrator, agent.chat, rollouts.staleness).
    schedule: Literal["async", "lockstep"] = "async"  # lockstep: verl-agent's loop, a baseline
    max_tool_concurrency: int = Field(64, ge=1)  # environment steps / tool calls in flight
    stop: list[str] = Field(default_factory=list)  # stop sequences for every response
    template_mismatch: Literal["keep", "fail"] = "keep"  # template rewrites history: keep ids
    max_staleness: int = Field(0, ge=0)  # train on samples at most this many versions old


class CreditConfig(Section):
    estimator: str = "grpo"
    options: dict[str, Any] = Field(default_factory=dict)


class LossConfig(Section):
    clip_low: float = Field(0.2, ge=0)
    clip_high: float = Field(0.2, ge=0)
    dual_clip: float | None = Field(3.0, gt=1)
    agg: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"] = "token-mean"


class TrainConfig(Section):
    backend: Literal["torch", "deepspeed"] = "torch"
    device: str = "auto"
    iterations: int = Field(10, ge=0)
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    ppo_epochs: int = Field(1, ge=1)
    minibatches: int = Field(1, ge=1)
    micro_batch_tokens: int = Field(16384, ge=64)
    old_logprobs: Literal["rollout", "recompute"] = "rollout"
    threads: int = Field(0, ge=0)  # torch CPU threads; 0 leaves torch's default


class SFTConfig(Section):
    """Cold start on the environment oracle's demonstrations before RL."""

    episodes: int = Field(0, ge=0)  # 0: no SFT
    epochs: int = Field(2, ge=1)
    lr: float = Field(1e-3, gt=0)
    rows_per_step: int = Field(16, ge=1)


class EvalConfig(Section):
    split: str = "valid_seen"
    tasks: int = Field(32, ge=0)  # 0: no evaluation
    every: int = Field(0, ge=0)  # also every N iterations; 0: only before and after training
    greedy: bool = True


class LogConfig(Section):
    dir: str = "runs"
    run_name: str | None = None
    quiet: bool = False
    save_trajectories: int = Field(4, ge=0)  # trajectories written per iteration


class Config(Section):
    name: str = "run"
    description: str = ""
    seed: int = 0
    model: ModelConfig = Field(default_factory=ModelConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    credit: CreditConfig = Field(default_factory=CreditConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    log: LogConfig = Field(default_factory=LogConfig)

    @model_validator(mode="after")
    def _combinations(self) -> Config:
        if self.model.tiny is not None and not self.model.name.startswith("tiny:"):
            raise ValueError(
                f"model.tiny is set but model.name={self.model.name!r} is not a tiny:<env> model"
            )
        if self.train.backend == "deepspeed":
            raise ValueError("train.backend='deepspeed' is not available yet; allowed: 'torch'")
        return self
