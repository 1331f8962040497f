"""Trainer options a recipe cannot combine stop at start, naming key, value and what is allowed."""

from __future__ import annotations

import pytest
from turnwise.trainer.dist import World, init_world
from turnwise.trainer.recipe import RecipeError, load_recipe


@pytest.mark.parametrize("overrides, message", [
    (["deepspeed.zero_stage=3"],
     ("deepspeed.zero_stage=3 is set but train.backend='torch'; the deepspeed section needs "
      "train.backend='deepspeed'")),
    (["train.backend=deepspeed", "deepspeed.offload_params=true"],
     "deepspeed.offload_params=true needs deepspeed.zero_stage=3 (got 2)"),
    (["train.backend=deepspeed", "deepspeed.zero_stage=0", "deepspeed.offload_optimizer=true"],
     "needs deepspeed.zero_stage 1, 2 or 3 (got 0)"),
    (["train.backend=deepspeed", "deepspeed.zero_stage=4"], "deepspeed.zero_stage: Input should be"),
    (["train.backend=deepspeed", "train.device=cpu"],
     "train.device='cpu' with train.backend='deepspeed'"),
    (["loss.is_correction={mode: mask}"],
     "train.old_logprobs='rollout' has none; allowed: 'recompute', 'loglinear'"),
    (["loss.is_correction={cap: 0.5}", "train.old_logprobs=recompute"],
     "loss.is_correction.cap: Input should be greater"),
    (["rollout.max_staleness=2", "deterministic=true"], "allowed: max_staleness 0"),
    (["rollout.stale_groups=correct"], "needs loss.is_correction"),
    (["loss.dual_clip=1.1", "loss.clip_high=0.28"], "below 1 + loss.clip_high = 1.28"),
    (["kl.bias_correction=true", "kl.target=reward"], "there is no loss term"),
    (["loss.policy=ppo2"], "loss.policy='ppo2': allowed are ['gspo', 'ppo_clip']"),
    (["kl.estimator=k4"], "kl.estimator: Input should be 'k1', 'k2', 'k3' or 'low_var_kl'"),
    (["kl.target=advantage"], "kl.target: Input should be 'loss' or 'reward'"),
    (["train.precision=fp16"], "train.precision: Input should be 'auto', 'fp32' or 'bf16'"),
    (["train.packing=sometimes"], "train.packing"),
    (["lora.rank=0"], "lora.rank: Input should be greater than or equal to 1"),
    (["lora.bias=all"], "lora.bias: unknown key"),
    (["checkpoint.every=-1"], "checkpoint.every"),
    (["resume=/no/such/run"], "resume='/no/such/run': no such folder"),
])
def test_bad_trainer_options_name_the_problem(overrides, message):
    with pytest.raises(RecipeError) as error:
        load_recipe("household_grpo", overrides)
    assert message in str(error.value)


def test_good_trainer_options_load():
    cfg = load_recipe("household_grpo", [
        "train.backend=deepspeed", "deepspeed.zero_stage=3", "deepspeed.offload_params=true",
        "deepspeed.offload_optimizer=true", "loss.policy=gspo", "kl.coef=0.01", "kl.target=reward",
        "lora.enabled=true", "lora.target_modules=[q_proj, v_proj]", "sft.cache=false",
        "train.packing=true",
        "train.old_logprobs=recompute", "loss.is_correction={mode: truncate, cap: 2.0}", "checkpoint.every=5", "resume=auto"])
    assert cfg.deepspeed.zero_stage == 3 and cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.train.packing is True and cfg.loss.policy == "gspo"


def test_processes_must_fit_the_backend_and_the_tasks(monkeypatch):
    assert init_world("torch") == World()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="train.backend='torch' runs in one process, but the "
                                         "launcher started WORLD_SIZE=2; allowed with several "
                                         "processes: 'deepspeed'"):
        init_world("torch")
    with pytest.raises(ValueError, match="rollout.tasks_per_iteration=3 must be a multiple of "
                                         "the 2 processes"):
        init_world("deepspeed", tasks_per_iteration=3)


def test_arpo_rollout_section_validates_against_schedule_group_and_estimator():
    from turnwise.trainer.config import Config

    cfg = Config.model_validate({"rollout": {"arpo": {}, "group_size": 8},
                                 "credit": {"estimator": "arpo"}})
    assert cfg.rollout.arpo.initial == 8 and cfg.rollout.arpo.beam == 2
    with pytest.raises(ValueError, match="rollout.group_size=4 .* rollout.arpo.initial=8"):
        Config.model_validate({"rollout": {"arpo": {}, "group_size": 4}})
    with pytest.raises(ValueError, match="schedule='lockstep'"):
        Config.model_validate({"rollout": {"arpo": {"initial": 2}, "schedule": "lockstep"}})
    with pytest.raises(ValueError, match="credit.estimator='arpo' needs rollout.arpo"):
        Config.model_validate({"credit": {"estimator": "arpo"}})
