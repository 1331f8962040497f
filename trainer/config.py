"""The recipe schema: every key typed; unknown keys and wrong types stop the run at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..rollouts.arpo import ArpoSettings

_ARPO = ArpoSettings()


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
    space_tokens: bool = False  # see agent.tiny.TinySpec
    digit_group: int = Field(0, ge=0)  # see agent.tiny.TinySpec
    seed: int = 0


class ModelConfig(Section):
    name: str = "tiny:household"  # a hub id, a local folder, or tiny:<env>
    dtype: Literal["float32", "bfloat16"] = "float32"
    tiny: TinyConfig | None = None


class EngineConfig(Section):
    """The inference engine: `hf` and `vllm` run in the trainer's process; `server` drives vLLM
    servers (`turnwise serve` starts them); `openai` evaluates any OpenAI-compatible chat
    endpoint (text only: no token ids, no weights, so it cannot train). docs/servers.md."""

    kind: Literal["hf", "vllm", "server", "openai"] = "hf"
    device: str = "auto"
    # server: each server's --max-num-seqs (turnwise serve); openai: requests in flight at most
    max_batch: int = Field(64, ge=1)
    batch_wait_ms: float = Field(5.0, ge=0)
    urls: list[str] = Field(default_factory=list)  # server: the vLLM servers' base URLs
    # server: where new weights are written for the servers to read (default /dev/shm, so the
    # same host); servers on other hosts need a folder all of them mount at the same path.
    sync_dir: str | None = None
    base_url: str | None = None  # openai: the endpoint, e.g. https://api.openai.com/v1
    model: str | None = None  # openai: the model name the endpoint serves
    api_key_env: str = "OPENAI_API_KEY"  # openai: the variable holding the key (never logged)
    # Colocated and synchronous: put the engine to sleep for the update (vLLM frees its KV cache
    # and offloads weights), so the trainer has the accelerator's memory.
    sleep_during_update: bool = False

    @model_validator(mode="after")
    def _keys_fit_kind(self) -> EngineConfig:
        kind = self.kind
        used = {"urls": "server", "sync_dir": "server", "base_url": "openai", "model": "openai"}
        for key, owner in used.items():
            if getattr(self, key) not in (None, []) and kind != owner:
                raise ValueError(f"engine.{key} is set with engine.kind={kind!r}; it applies to "
                                 f"engine.kind={owner!r} only")
        if kind == "server" and not self.urls:
            raise ValueError("engine.kind='server' needs engine.urls: the vLLM servers, e.g. "
                             "[http://127.0.0.1:8000] (`turnwise serve RECIPE` prints them)")
        if kind == "openai" and not (self.base_url and self.model):
            raise ValueError("engine.kind='openai' needs engine.base_url and engine.model "
                             f"(got base_url={self.base_url!r}, model={self.model!r})")
        if kind in ("server", "openai"):
            if self.device != "auto":
                raise ValueError(f"engine.device={self.device!r} with engine.kind={kind!r}: "
                                 "the servers choose their devices; allowed: 'auto'")
            if self.batch_wait_ms != 5.0:
                raise ValueError(f"engine.batch_wait_ms={self.batch_wait_ms} applies to "
                                 f"engine.kind='hf' only, not {kind!r}")
        return self


class EnvConfig(Section):
    name: str = "household"
    options: dict[str, Any] = Field(default_factory=dict)
    train_split: str = "train"


class ArpoRolloutConfig(Section):
    """ARPO's entropy-guided branching (rollouts.arpo); group_size is its M. The defaults are
    `ArpoSettings`' (the reference's)."""

    initial: int = Field(_ARPO.initial, ge=1)  # N: episodes each task starts with
    beam: int = Field(_ARPO.beam, ge=2)  # a branching episode spawns beam - 1 copies
    alpha: float = Field(_ARPO.alpha, ge=0, le=1)  # base branch probability
    beta: float = _ARPO.beta  # weight of the entropy change
    entropy_tokens: int = Field(_ARPO.entropy_tokens, ge=1)  # k: tokens whose entropy counts
    top_logprobs: int = Field(_ARPO.top_logprobs, ge=1)


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
    # Asynchronous training: the producer plays up to max_staleness steps' groups ahead of the
    # trainer (0: the synchronous loop). A group older than that when trained on is dropped,
    # or kept and corrected by loss.is_correction (stale_groups: correct).
    max_staleness: int = Field(0, ge=0)
    stale_groups: Literal["drop", "correct"] = "drop"
    arpo: ArpoRolloutConfig | None = None  # null: every episode starts fresh (no branching)
    # Seconds one env.reset/env.step may take before its episode fails (tools time out sooner).
    step_timeout: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _arpo_fits(self) -> RolloutConfig:
        if self.arpo is None:
            return self
        if self.schedule != "async":
            raise ValueError(f"rollout.arpo is set with rollout.schedule={self.schedule!r}; "
                             "ARPO branching needs 'async'")
        if self.group_size < self.arpo.initial:
            raise ValueError(f"rollout.group_size={self.group_size} (ARPO's M) is below "
                             f"rollout.arpo.initial={self.arpo.initial} (N); allowed: "
                             f"group_size >= initial")
        return self


class DumpConfig(Section):
    """DUMP's distribution-level UCB (trainer/task_sampling/dump.py); the reference's defaults."""

    window: int = Field(300, ge=1)  # the last episodes' |advantage| kept per part
    exploration: float = Field(1.0, ge=0)  # c in c * sqrt(2 ln(N + 1) / (n_j + 1))
    temperature: float = Field(0.1, gt=0)  # softmax over the UCB scores


class BandConfig(Section):
    """Online difficulty filtering's band of pass rates (balanced: 0.25 to 0.75)."""

    low: float = Field(0.25, ge=0, le=1)
    high: float = Field(0.75, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> BandConfig:
        if self.low > self.high:
            raise ValueError(f"task_sampling.band.low={self.low} is above task_sampling.band."
                             f"high={self.high}; allowed: low <= high")
        return self


class MoppsConfig(Section):
    """MoPPS: a Beta posterior per prompt, Thompson-sampled towards a target success rate."""

    prior_alpha: float = Field(1.0, gt=0)
    prior_beta: float = Field(1.0, gt=0)
    decay: float = Field(1.0, ge=0, le=1)  # lambda: 1 keeps all evidence, below forgets it
    target: float = Field(0.5, ge=0, le=1)  # gamma*: the success rate to train at
    candidates: int = Field(4, ge=1)  # prompts considered per group a step plays


class TaskSamplingConfig(Section):
    """Which tasks each group plays (trainer/task_sampling, docs/task_sampling.md). `uniform`
    without a pool draws fresh tasks as turnwise always has; the others choose from `pool`
    tasks of env.train_split drawn once, whose task kinds are the parts of the mixture."""

    sampler: Literal["uniform", "dump", "difficulty_band", "mopps"] = "uniform"
    pool: int = Field(0, ge=0)  # tasks drawn once to choose from; 0: fresh tasks (uniform only)
    weights: dict[str, float] = Field(default_factory=dict)  # uniform: task kind -> weight
    dump: DumpConfig = Field(default_factory=DumpConfig)
    band: BandConfig = Field(default_factory=BandConfig)
    mopps: MoppsConfig = Field(default_factory=MoppsConfig)

    @model_validator(mode="after")
    def _fits_sampler(self) -> TaskSamplingConfig:
        if self.sampler != "uniform" and not self.pool:
            raise ValueError(f"task_sampling.sampler={self.sampler!r} chooses from a pool of "
                             f"tasks: set task_sampling.pool (e.g. 256); allowed without a pool: "
                             f"sampler 'uniform'")
        if self.weights and (self.sampler != "uniform" or not self.pool):
            raise ValueError(f"task_sampling.weights is set with sampler={self.sampler!r} and "
                             f"pool={self.pool}; mixture weights need sampler 'uniform' and a "
                             f"pool")
        negative = {k: v for k, v in self.weights.items() if v < 0}
        if negative:
            raise ValueError(f"task_sampling.weights: {negative} below 0; allowed: weights >= 0")
        owners = {"dump": "dump", "band": "difficulty_band", "mopps": "mopps"}
        for key, owner in owners.items():
            section = getattr(self, key)
            # A run folder's config.yaml spells out every default: only changed values count.
            changed = sorted(k for k in section.model_fields_set
                             if getattr(section, k) != type(section).model_fields[k].default)
            if changed and self.sampler != owner:
                raise ValueError(f"task_sampling.{key}.{changed[0]} is set but task_sampling."
                                 f"sampler={self.sampler!r}; it applies to sampler {owner!r}")
        return self


class OverlongConfig(Section):
    """DAPO's soft overlong punishment on an episode's generated tokens (credit.shaping)."""

    max_tokens: int = Field(ge=1)  # the penalty reaches -factor here
    buffer: int = Field(ge=1)  # it starts at max_tokens - buffer
    factor: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _buffer_fits(self) -> OverlongConfig:
        if self.buffer > self.max_tokens:
            raise ValueError(f"credit.overlong.buffer={self.buffer} exceeds max_tokens={self.max_tokens}")
        return self


class DynamicSamplingConfig(Section):
    """DAPO dynamic sampling: drop groups whose rewards are all equal, re-roll fresh tasks."""

    max_rolls: int = Field(3, ge=1)  # rollouts per iteration at most, the first included


class AnswerProbeConfig(Section):
    """IGPO's scoring template: after the opened assistant turn, lead_in + open_tag answer close_tag."""

    lead_in: str = "I have gathered enough information to give the final answer.\n"
    open_tag: str = "<answer>"
    close_tag: str = "</answer>"
    token_budget: int = Field(16384, ge=64)  # rows x packed length of one scoring forward


class CreditConfig(Section):
    estimator: str = "grpo"
    options: dict[str, Any] = Field(default_factory=dict)
    # Composable steps around the estimator (credit.shaping, credit.dynamic_sampling).
    invalid_penalty: float = Field(0.0, ge=0)  # per invalid turn, off the turn and the outcome
    overlong: OverlongConfig | None = None
    dynamic_sampling: DynamicSamplingConfig | None = None
    answer_probe: AnswerProbeConfig = Field(default_factory=AnswerProbeConfig)


class ISCorrectionConfig(Section):
    """Off-policy correction (trainer.losses.correction): truncate = TIS, mask = AReaL's
    decoupled PPO behaviour-weight cap; per token or per row."""

    mode: Literal["truncate", "mask"] = "mask"
    level: Literal["token", "sequence"] = "token"
    cap: float = Field(2.0, gt=1)


class LossConfig(Section):
    policy: str = "ppo_clip"  # a registered policy loss: ppo_clip | gspo
    clip_low: float = Field(0.2, ge=0)
    clip_high: float = Field(0.2, ge=0)
    dual_clip: float | None = Field(3.0, gt=1)
    agg: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"] = "token-mean"
    entropy_coef: float = 0.0  # loss -= entropy_coef * entropy
    # behaviour (engine) -> proximal (trainer) importance weights; needs recompute
    is_correction: ISCorrectionConfig | None = None

    @model_validator(mode="after")
    def _dual_clip_above_the_clip(self) -> LossConfig:
        # Below 1 + clip_high the cap would cut into the clipped surrogate itself.
        if self.dual_clip is not None and self.dual_clip < 1.0 + self.clip_high:
            raise ValueError(f"loss.dual_clip={self.dual_clip} is below 1 + loss.clip_high = "
                             f"{1.0 + self.clip_high:g}; allowed: dual_clip >= 1 + clip_high, or "
                             f"null (off)")
        return self

    @field_validator("policy")
    @classmethod
    def _registered(cls, value: str) -> str:
        from .losses import policy_loss_names

        if value not in policy_loss_names():
            raise ValueError(f"loss.policy={value!r}: allowed are {policy_loss_names()}")
        return value


class KLConfig(Section):
    """KL to a reference policy (the model as RL starts, or the LoRA-disabled base)."""

    coef: float = Field(0.0, ge=0)  # 0: no KL and no reference model
    estimator: Literal["k1", "k2", "k3", "low_var_kl"] = "low_var_kl"
    target: Literal["loss", "reward"] = "loss"  # a loss term, or a penalty on turn rewards
    # TRL 1.16's default (DeepSeek-V3.2): the per-token KL term times the ratio
    # pi / pi_old, which makes its gradient the unbiased reverse-KL gradient (loss target only).
    bias_correction: bool = False

    @model_validator(mode="after")
    def _correction_fits(self) -> KLConfig:
        if self.bias_correction and self.target != "loss":
            raise ValueError("kl.bias_correction=true weighs the KL loss term by pi / pi_old; "
                             f"with kl.target={self.target!r} there is no loss term; allowed: "
                             "target 'loss'")
        return self


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
    # The proximal policy PPO clips against: the engine's log-probs, a forward pass of the
    # trainer before the update, or that pass approximated from versions (losses.correction)
    old_logprobs: Literal["rollout", "recompute", "loglinear"] = "rollout"
    threads: int = Field(0, ge=0)  # torch CPU threads; 0 leaves torch's default
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    # Padding-free micro-batches (rows end to end, positions restart). auto: on with flash
    # attention, whose varlen kernels skip the cross-row blocks; sdpa/eager pay for them.
    packing: bool | Literal["auto"] = "auto"
    gradient_checkpointing: bool = False
    # Rows of a group that start alike (a GRPO group's prompt, a task's system prompt) run their
    # common prefix once, shared as a KV cache. auto: on unless packing or checkpointing is.
    share_prefix: bool | Literal["auto"] = "auto"
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)


class DeepSpeedConfig(Section):
    """Options of `train.backend: deepspeed` (rejected with any other backend)."""

    zero_stage: Literal[0, 1, 2, 3] = 2
    offload_optimizer: bool = False  # optimizer states and step on the CPU (stage >= 1)
    offload_params: bool = False  # parameters on the CPU between uses (stage 3)


class LoRAConfig(Section):
    enabled: bool = False
    rank: int = Field(16, ge=1)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class CheckpointConfig(Section):
    every: int = Field(0, ge=0)  # iterations between checkpoints; 0: none
    keep: int = Field(2, ge=1)  # most recent checkpoints kept


class SFTConfig(Section):
    """Cold start on the environment oracle's demonstrations before RL."""

    episodes: int = Field(0, ge=0)  # 0: no SFT
    epochs: int = Field(2, ge=1)
    lr: float = Field(1e-3, gt=0)
    rows_per_step: int = Field(16, ge=1)
    # constant, or decay to 0 over SFT's steps (cosine, linear): ends in a settled minimum
    # instead of wherever the last steps at the full lr left the weights.
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    seed: int | None = None  # demonstrations and batches; null: the run's seed
    cache: bool = False  # save the SFT'd policy once, reuse it (trainer.sft_cache)


class EvalConfig(Section):
    split: str = "valid_seen"
    tasks: int = Field(32, ge=0)  # 0: no evaluation
    every: int = Field(0, ge=0)  # also every N iterations; 0: only before and after training
    greedy: bool = True
    # seed of the evaluation tasks' draw; null: the run's seed + 1. One value gives runs of
    # every seed the same held-out tasks, so their scores compare task for task.
    task_seed: int | None = None

    def seed_for(self, run_seed: int) -> int:
        """The seed the evaluation tasks are drawn with in a run of seed `run_seed`."""
        return run_seed + 1 if self.task_seed is None else self.task_seed


class WandbConfig(Section):
    """Weights & Biases: offline unless the recipe (or WANDB_MODE) asks for online."""

    mode: Literal["offline", "online", "disabled"] | None = None  # None: WANDB_MODE, else offline
    project: str = "turnwise"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = Field(default_factory=list)
    init_timeout: float = Field(30.0, gt=0)  # online start slower than this: fall back to offline
    finish_timeout: float = Field(30.0, gt=0)  # upload at the end slower than this: left for `wandb sync`


class LogConfig(Section):
    dir: str = "runs"
    run_name: str | None = None
    quiet: bool = False  # no progress bars and no per-iteration line (CI, log files)
    save_trajectories: int = Field(8, ge=0)  # trajectories saved per iteration, whole groups
    save_every: int = Field(1, ge=1)  # save a trajectory sample every N iterations
    trainer_logprobs: bool = True  # score the saved sample with the trainer too (one forward)
    plot_every: int = Field(10, ge=0)  # redraw plots every N iterations (0: only at the end)
    tensorboard: bool = True
    wandb: WandbConfig = Field(default_factory=WandbConfig)


class Config(Section):
    name: str = "run"
    description: str = ""
    preset: str | None = None  # the preset the recipe was resolved with (recorded, not read)
    # Python modules imported before the rest is read, so a user's suites, tools and
    # estimators register first (`--import` on the command line adds to them).
    imports: list[str] = Field(default_factory=list)
    seed: int = 0
    model: ModelConfig = Field(default_factory=ModelConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    task_sampling: TaskSamplingConfig = Field(default_factory=TaskSamplingConfig)
    credit: CreditConfig = Field(default_factory=CreditConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    # -- trainer: KL, DeepSpeed, LoRA, checkpoints, resume, determinism ------------------------
    kl: KLConfig = Field(default_factory=KLConfig)
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig)
    lora: LoRAConfig = Field(default_factory=LoRAConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    resume: str | None = None  # "auto" (latest valid checkpoint, if any) or a checkpoint/run folder
    deterministic: bool = False  # seeded, one-at-a-time rollouts and deterministic torch kernels

    @model_validator(mode="after")
    def _combinations(self) -> Config:
        if self.model.tiny is not None and not self.model.name.startswith("tiny:"):
            raise ValueError(
                f"model.tiny is set but model.name={self.model.name!r} is not a tiny:<env> model"
            )
        pool = self.task_sampling.pool
        if pool and pool < self.rollout.tasks_per_iteration:
            raise ValueError(f"task_sampling.pool={pool} is below rollout.tasks_per_iteration="
                             f"{self.rollout.tasks_per_iteration}; allowed: pool >= "
                             f"tasks_per_iteration (or 0: fresh tasks)")
        return self

    @model_validator(mode="after")
    def _trainer_combinations(self) -> Config:
        """Options a backend or mode does not support stop here, naming what is allowed."""
        ds = self.deepspeed
        # A run folder's config.yaml spells out every default: only changed values count.
        changed = sorted(k for k in ds.model_fields_set
                         if getattr(ds, k) != type(ds).model_fields[k].default)
        if self.train.backend != "deepspeed" and changed:
            key = changed[0]
            raise ValueError(f"deepspeed.{key}={getattr(ds, key)!r} is set but "
                             f"train.backend={self.train.backend!r}; the deepspeed section needs "
                             f"train.backend='deepspeed'")
        if self.train.backend == "deepspeed" and self.train.device != "auto":
            raise ValueError(f"train.device={self.train.device!r} with train.backend='deepspeed', "
                             f"where each rank trains on its launcher-assigned device; allowed: "
                             f"'auto'")
        if ds.offload_params and ds.zero_stage != 3:
            raise ValueError(f"deepspeed.offload_params=true needs deepspeed.zero_stage=3 "
                             f"(got {ds.zero_stage}); allowed: zero_stage 3, or offload_params false")
        if ds.offload_optimizer and ds.zero_stage == 0:
            raise ValueError("deepspeed.offload_optimizer=true needs deepspeed.zero_stage 1, 2 or 3 "
                             "(got 0)")
        if self.loss.is_correction is not None and self.train.old_logprobs == "rollout":
            raise ValueError("loss.is_correction is set: it weighs rollout logprobs against "
                             "proximal ones, but train.old_logprobs='rollout' has none; "
                             "allowed: 'recompute', 'loglinear'")
        if self.rollout.stale_groups == "correct" and self.loss.is_correction is None:
            raise ValueError("rollout.stale_groups='correct' keeps groups past "
                             "rollout.max_staleness, which needs loss.is_correction; allowed: "
                             "'drop', or set loss.is_correction")
        if self.engine.sleep_during_update and self.rollout.max_staleness:
            raise ValueError(f"engine.sleep_during_update=true with rollout.max_staleness="
                             f"{self.rollout.max_staleness}: asynchronous training generates "
                             f"during the update; allowed: max_staleness 0, or "
                             f"sleep_during_update false")
        if self.deterministic and self.rollout.max_staleness:
            raise ValueError(f"deterministic=true with rollout.max_staleness="
                             f"{self.rollout.max_staleness}: asynchronous training overlaps "
                             f"generation with the update, so results depend on timing; "
                             f"allowed: max_staleness 0 (the synchronous loop)")
        if self.deterministic and self.engine.kind != "hf":
            raise ValueError(f"deterministic=true with engine.kind={self.engine.kind!r}; "
                             f"allowed: 'hf'")
        if self.credit.estimator == "arpo" and self.rollout.arpo is None:
            raise ValueError("credit.estimator='arpo' needs rollout.arpo (the branching "
                             "rollout it credits); set rollout.arpo: {} for the reference "
                             "defaults, or use credit.estimator='grpo'")
        if self.resume not in (None, "auto") and not Path(self.resume).exists():
            raise ValueError(f"resume={self.resume!r}: no such folder; allowed: 'auto', null, or "
                             f"a checkpoint or run folder")
        return self
