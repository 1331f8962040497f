"""The `deepspeed` backend: ZeRO stages 0-3, bf16, gradient checkpointing, CPU offload.

One process per device, launched by `torchrun` or `deepspeed` (multi-node through a hostfile);
on CPU the process group is gloo. Every rank holds its own share of the rollout batch; the
loss of each micro-batch is normalised by mini-batch totals summed over all ranks, and
DeepSpeed averages gradients over ranks, so backward runs on `loss * world_size` and the step
equals one pass over the union of the ranks' rows.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ...rollouts.batch import RolloutBatch
from ..config import DeepSpeedConfig, KLConfig, LossConfig, TrainConfig
from ..dist import World
from ..logprobs import token_logprobs
from ..update import LRSchedule, optimise, ppo_update, score
from .base import (enable_checkpointing, export_pretrained, resolve_packing, resolve_sharing,
                   rl_objective, use_bf16)
from .lora import is_lora, merged_named_tensors


def deepspeed_config(ds: DeepSpeedConfig, train_cfg: TrainConfig, *, bf16: bool, cuda: bool,
                     train: bool = True) -> dict[str, Any]:
    """The DeepSpeed JSON config a recipe implies (micro-batching and accumulation are ours)."""
    zero: dict[str, Any] = {"stage": ds.zero_stage}
    if ds.offload_optimizer and train:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": cuda}
    if ds.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": cuda}
    config: dict[str, Any] = {
        # DeepSpeed wants a batch size; ours are token-budgeted, so it only names one pass.
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": 1,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }
    if train:
        config["gradient_clipping"] = train_cfg.grad_clip
        # The optimizer is ours (torch AdamW, or DeepSpeedCPUAdam for offload on a GPU machine).
        config["zero_allow_untested_optimizer"] = True
        config["zero_force_ds_cpu_optimizer"] = False
    return config


def load_for_zero(path: str, ds: DeepSpeedConfig, train_cfg: TrainConfig, *, dtype: str,
                  train: bool = True) -> torch.nn.Module:
    """The causal LM at `path`; under ZeRO-3 it is partitioned while loading (zero.Init)."""
    from ..models import load_policy

    if ds.zero_stage != 3:
        return load_policy(path, dtype)[0]
    from transformers.integrations.deepspeed import HfDeepSpeedConfig, unset_hf_deepspeed_config

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    marker = HfDeepSpeedConfig(deepspeed_config(
        ds, train_cfg, bf16=use_bf16(train_cfg.precision, device), cuda=device.type == "cuda",
        train=train))
    try:
        return load_policy(path, dtype)[0]
    finally:
        # Only this load is partitioned: the inference engine's copy must stay whole.
        unset_hf_deepspeed_config()
        del marker


class DeepSpeedBackend:
    """Trains `model` with a DeepSpeed engine, one rank of an SPMD run."""

    name = "deepspeed"

    def __init__(self, model: torch.nn.Module, train: TrainConfig, loss: LossConfig,
                 kl: KLConfig, ds: DeepSpeedConfig, *, temperature: float, dtype: str,
                 world: World, device: str, seed: int = 0,
                 schedule: LRSchedule | None = None) -> None:
        import deepspeed

        self.train_cfg, self.ds, self.dtype = train, ds, dtype
        self.world = world
        self.device = torch.device(device)
        self.stage = ds.zero_stage
        self.temperature = temperature
        self.objective = rl_objective(loss, kl)
        self.bf16 = use_bf16(train.precision, self.device)
        if train.gradient_checkpointing:
            enable_checkpointing(model)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = _optimizer(params, train, ds, cuda=self.device.type == "cuda")
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer,
            config=deepspeed_config(ds, train, bf16=self.bf16, cuda=self.device.type == "cuda"))
        self.model = self.engine.module
        self.generator = torch.Generator().manual_seed(seed)
        self.reference: Any = None
        self.packed = resolve_packing(train.packing, self.model, self.engine, self.device)
        self.share_prefix = resolve_sharing(train.share_prefix, packed=self.packed,
                                            checkpointing=train.gradient_checkpointing)
        self.begin_phase(schedule or LRSchedule(train.lr))

    # ----------------------------------------------------------------------------- contract

    def forward_logprobs(self, batch: RolloutBatch, *, reference: bool = False) -> torch.Tensor:
        return score(self, batch, token_budget=self.train_cfg.micro_batch_tokens,
                     packed=self.packed, reference=reference)

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        cfg = self.train_cfg
        metrics = ppo_update(self, batch, self.objective, ppo_epochs=cfg.ppo_epochs,
                             minibatches=cfg.minibatches, token_budget=cfg.micro_batch_tokens,
                             packed=self.packed)
        metrics["lr"] = self.schedule(max(self.steps - 1, 0))
        return metrics

    def fit(self, batch: RolloutBatch, objective) -> tuple[dict[str, float], float] | None:
        return optimise(self, batch, objective, token_budget=self.train_cfg.micro_batch_tokens,
                        packed=self.packed)

    def state_dict_for_engine(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Full tensors, gathered one parameter (or one LoRA layer) at a time under ZeRO-3."""
        if is_lora(self.model):
            yield from merged_named_tensors(self.model, self._gather)
            return
        for name, param in self.model.named_parameters():
            with self._gather([param]):
                yield name, param.detach()

    def save(self, path: str) -> None:
        self.engine.save_checkpoint(path, tag="deepspeed", client_state={"steps": self.steps},
                                    save_latest=False)
        torch.save({"generator": self.generator.get_state(), "steps": self.steps},
                   f"{path}/backend_rank{self.world.rank}.pt")

    def load(self, path: str) -> None:
        loaded, _client = self.engine.load_checkpoint(path, tag="deepspeed",
                                                      load_optimizer_states=True,
                                                      load_lr_scheduler_states=False)
        if loaded is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint under {path}")
        state = torch.load(f"{path}/backend_rank{self.world.rank}.pt", weights_only=False)
        self.generator.set_state(state["generator"])
        self.steps = state["steps"]

    def save_pretrained(self, path: str) -> None:
        export_pretrained(self.model, self.state_dict_for_engine(), path, write=self.world.is_main)
        self.world.barrier()

    # ----------------------------------------------------------------------------- phases

    def begin_phase(self, schedule: LRSchedule) -> None:
        """Clear the optimizer's moments (they re-initialise at the next step) and the step count."""
        inner = getattr(self.engine.optimizer, "optimizer", self.engine.optimizer)
        inner.state.clear()
        self.schedule = schedule
        self.steps = 0

    def attach_reference(self, path: str | None) -> None:
        """The reference policy; under ZeRO-3 it is partitioned like the policy (no optimizer)."""
        if path is None:
            if not is_lora(self.model):
                raise ValueError("a reference without a path needs lora.enabled=true")
            self.reference = None
            return
        import deepspeed

        model = load_for_zero(path, self.ds, self.train_cfg, dtype=self.dtype,
                              train=False).eval().requires_grad_(False)
        if self.stage == 3:
            config = deepspeed_config(self.ds, self.train_cfg, bf16=self.bf16,
                                      cuda=self.device.type == "cuda", train=False)
            self.reference = deepspeed.initialize(model=model, config=config)[0]
            self.reference.eval()
        else:
            dtype = torch.bfloat16 if self.bf16 else next(model.parameters()).dtype
            self.reference = model.to(device=self.device, dtype=dtype)

    # ----------------------------------------------------------------------------- primitives

    def forward(self, micro: RolloutBatch, *, with_entropy: bool = False,
                entropy_grad: bool = False, reference: bool = False, loss_only: bool = False,
                temperature: float | None = None):
        module = self.reference if reference and self.reference is not None else self.engine
        module.train(torch.is_grad_enabled())
        adapters_off = self.model.disable_adapter() if reference and self.reference is None \
            else contextlib.nullcontext()
        with adapters_off:
            return token_logprobs(module, micro.input_ids, micro.attention_mask,
                                  temperature=temperature or self.temperature,
                                  with_entropy=with_entropy,
                                  entropy_grad=entropy_grad, packed=self.packed,
                                  needed=micro.loss_mask if loss_only else None,
                                  groups=micro.row_group if self.share_prefix else None,
                                  always_share=self.stage == 3)

    def zero_grad(self) -> None:
        self.engine.zero_grad()

    def backward(self, loss: torch.Tensor, *, last: bool) -> None:
        self.engine.set_gradient_accumulation_boundary(last)
        self.engine.backward(loss * self.world.size)

    def step(self) -> float:
        """Step unless a gradient is NaN/inf anywhere; a skipped step returns NaN (as torch's).

        DeepSpeed applies non-finite gradients as they are at ZeRO stage 0 (a plain optimizer)
        and at stages 1-2 in bf16 (no overflow check without fp16 loss scaling), which would
        poison every weight; so stage 0 is checked here and stages 1-2 have DeepSpeed's own
        overflow check switched on. Stage 3 always skips on a non-finite norm.
        """
        own_norm = self._full_gradient_norm() if self.stage == 0 else None
        if own_norm is not None and not math.isfinite(own_norm):
            self.engine.zero_grad()
            return float("nan")
        inner = self.engine.optimizer
        if self.stage in (1, 2):
            inner.check_grad_overflow = True
        for group in inner.param_groups:
            group["lr"] = self.schedule(self.steps)
        skipped = self.engine.skipped_steps
        self.engine.step()
        if self.engine.skipped_steps > skipped:
            return float("nan")
        self.steps += 1
        norm = self.engine.get_global_grad_norm()
        if norm is None:  # stage 0 keeps no norm of its own
            norm = own_norm
        return float(norm) if norm is not None else float("nan")

    def _full_gradient_norm(self) -> float:
        """Stage 0: the global L2 norm before clipping; every rank holds the all-reduced
        gradients, so every rank computes the same number (and the same decision)."""
        grads = [p.grad.detach().float() for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return 0.0
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g)
                                                           for g in grads])))

    def _gather(self, params: Sequence[torch.nn.Parameter]):
        if self.stage != 3:
            return contextlib.nullcontext()
        import deepspeed

        return deepspeed.zero.GatheredParameters(list(params), modifier_rank=None)


def _optimizer(params: list[torch.nn.Parameter], t: TrainConfig, ds: DeepSpeedConfig, *,
               cuda: bool) -> torch.optim.Optimizer:
    """AdamW; with optimizer offload on a GPU machine, DeepSpeed's vectorised CPU Adam.

    On a CPU-only machine the offloaded step runs on the CPU either way, so torch's AdamW does it
    without compiling DeepSpeed's op.
    """
    if ds.offload_optimizer and cuda:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(params, lr=t.lr, weight_decay=t.weight_decay, adamw_mode=True)
    return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
