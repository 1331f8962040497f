"""The training-backend contract shared by `torch` and `deepspeed`, and building one from a recipe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import torch

from ...rollouts.batch import RolloutBatch
from ..config import Config, KLConfig, LossConfig
from ..dist import World
from ..losses import Correction, RLObjective
from ..update import LRSchedule

BACKENDS = ("torch", "deepspeed")


class Backend(Protocol):
    """Owns the policy's trainable weights, its optimizer and (with KL) the reference policy."""

    name: str
    world: World

    def forward_logprobs(self, batch: RolloutBatch, *, reference: bool = False) -> torch.Tensor:
        """Per-token log-probabilities [B, L] of the loss-mask tokens (0 elsewhere) under the
        current (or reference) weights, no gradient."""
        ...

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """One policy update on `batch` (PPO epochs and mini-batches); returns metrics."""
        ...

    def fit(self, batch: RolloutBatch, objective) -> tuple[dict[str, float], float] | None:
        """One optimizer step of `objective` on `batch` (SFT); masked statistic sums, grad norm."""
        ...

    def state_dict_for_engine(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The weights to load into the inference engine, one named tensor at a time."""
        ...

    def begin_phase(self, schedule: LRSchedule) -> None:
        """Reset optimizer moments and follow `schedule` (SFT and RL are separate phases)."""
        ...

    def attach_reference(self, path: str | None) -> None:
        """Freeze the reference policy: the model at `path`, or the LoRA-disabled base."""
        ...

    def save(self, path: str) -> None:
        """Model, optimizer, lr-schedule position and shuffling RNG into the folder `path`."""
        ...

    def load(self, path: str) -> None: ...

    def save_pretrained(self, path: str) -> None:
        """The policy as a `from_pretrained` folder (written by rank 0)."""
        ...


def make_backend(cfg: Config, model_path: str, *, world: World, device: str) -> Backend:
    """The backend `cfg.train.backend`, with the policy loaded from `model_path` (and LoRA)."""
    from ..models import load_policy
    from .lora import wrap_lora

    schedule = rl_schedule(cfg)
    temperature = cfg.rollout.temperature
    if cfg.train.backend == "torch":
        from .torch_backend import TorchBackend

        model, _ = load_policy(model_path, cfg.model.dtype)
        if cfg.lora.enabled:
            model = wrap_lora(model, cfg.lora)
        return TorchBackend(model, cfg.train, cfg.loss, cfg.kl, temperature=temperature,
                            device=device, seed=cfg.seed + world.rank, schedule=schedule)
    if cfg.train.backend == "deepspeed":
        from .deepspeed_backend import DeepSpeedBackend, load_for_zero

        model = load_for_zero(model_path, cfg.deepspeed, cfg.train, dtype=cfg.model.dtype)
        if cfg.lora.enabled:
            model = wrap_lora(model, cfg.lora)
        return DeepSpeedBackend(model, cfg.train, cfg.loss, cfg.kl, cfg.deepspeed,
                                temperature=temperature, dtype=cfg.model.dtype, world=world,
                                device=device, seed=cfg.seed + world.rank, schedule=schedule)
    raise ValueError(f"train.backend={cfg.train.backend!r}: allowed are {list(BACKENDS)}")


def rl_schedule(cfg: Config) -> LRSchedule:
    """The RL phase's lr schedule; its length is every optimizer step the recipe will take."""
    t = cfg.train
    return LRSchedule(t.lr, warmup=t.warmup_steps, total=t.iterations * t.ppo_epochs * t.minibatches,
                      kind=t.lr_schedule, min_ratio=t.min_lr_ratio)


def rl_objective(loss: LossConfig, kl: KLConfig) -> RLObjective:
    """The per-micro-batch RL loss a recipe's `loss` and `kl` sections describe."""
    return RLObjective(policy=loss.policy, clip_low=loss.clip_low, clip_high=loss.clip_high,
                       dual_clip=loss.dual_clip, agg=loss.agg, entropy_coef=loss.entropy_coef,
                       kl_coef=kl.coef if kl.target == "loss" else 0.0,
                       kl_estimator=kl.estimator, kl_bias_correction=kl.bias_correction,
                       correction=Correction(**loss.is_correction.model_dump())
                       if loss.is_correction else None)


def use_bf16(precision: str, device: torch.device) -> bool:
    """`auto` is bf16 on a GPU and fp32 on the CPU (CPU bf16 matmuls are slow without AMX)."""
    if precision == "auto":
        return device.type == "cuda"
    return precision == "bf16"


def resolve_packing(setting: bool | str, model: torch.nn.Module, forward: torch.nn.Module,
                    device: torch.device) -> bool:
    """Whether micro-batches are packed; an explicit `true` is checked on the model first."""
    if setting == "auto":
        return str(getattr(model.config, "_attn_implementation", "")).startswith("flash_attention")
    if not setting:
        return False
    from ..logprobs import packing_error

    error = packing_error(forward, vocab_size=model.config.vocab_size, device=device)
    if error > 1e-2:
        raise ValueError(
            f"train.packing=true: {type(model).__name__} does not keep packed rows apart "
            f"(logprobs differ from padded rows by {error:.3g}); allowed: false, auto")
    return True


def resolve_sharing(setting: bool | str, *, packed: bool, checkpointing: bool) -> bool:
    """Whether updates share each group's common prefix (trainer/shared_prefix.py)."""
    if setting == "auto":
        return not packed and not checkpointing
    if setting and (packed or checkpointing):
        other = "train.packing" if packed else "train.gradient_checkpointing"
        raise ValueError(f"train.share_prefix=true cannot be combined with {other}=true (the "
                         "prefix's cache would be rebuilt in the recomputation or mixed into "
                         "packed rows); allowed: share_prefix false or auto")
    return bool(setting)


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Recompute activations during backward (transformers 5 renamed the switch)."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def export_pretrained(model: torch.nn.Module, named_tensors: Iterator[tuple[str, torch.Tensor]],
                      path: str, *, write: bool) -> None:
    """Save `named_tensors` with `model`'s config as a `from_pretrained` folder.

    Every rank must iterate (ZeRO-3 gathers collectively); only the one with `write` keeps the
    tensors and writes them.
    """
    state = {}
    for name, tensor in named_tensors:
        if write:
            state[name] = tensor.detach().to("cpu", copy=True).contiguous()
    if not write:
        return
    hf_model = model.get_base_model() if hasattr(model, "get_base_model") else model
    Path(path).mkdir(parents=True, exist_ok=True)
    hf_model.save_pretrained(path, state_dict=state)
