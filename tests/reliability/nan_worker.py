"""One DeepSpeed process (gloo, CPU) per ZeRO stage: a NaN gradient, then a clean step.

Started by test_training_faults.py; prints one JSON line per stage with what it saw.
"""

from __future__ import annotations

import json
import sys

import torch


def main() -> None:
    model, stages = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
    torch.set_num_threads(1)
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False  # see tests/trainer/ds_worker
    sys.path.insert(0, sys.argv[3])
    from trainer_parity import make_batch
    from turnwise.trainer.backends.base import make_backend
    from turnwise.trainer.config import Config
    from turnwise.trainer.dist import init_world

    world = init_world("deepspeed")
    batch = make_batch([12, 9, 15, 7], response=4)
    for stage in stages:
        cfg = Config.model_validate({
            "model": {"name": model}, "train": {"backend": "deepspeed", "lr": 1e-3},
            "deepspeed": {"zero_stage": stage}})
        backend = make_backend(cfg, model, world=world, device="cpu")
        before = {n: t.clone() for n, t in backend.state_dict_for_engine()}
        param = next(p for p in backend.model.parameters() if p.requires_grad)
        hook = param.register_hook(lambda g: torch.full_like(g, float("nan")))
        poisoned = backend.update(batch)
        hook.remove()
        after_nan = {n: t.clone() for n, t in backend.state_dict_for_engine()}
        clean = backend.update(batch)
        after = dict(backend.state_dict_for_engine())
        print(json.dumps({
            "stage": stage, "poisoned": poisoned, "clean": clean,
            "unchanged_after_nan": all(torch.equal(before[n], after_nan[n]) for n in before),
            "finite_after": all(bool(torch.isfinite(t).all()) for t in after.values()),
            "moved_after_clean": any(not torch.equal(before[n], after[n]) for n in before),
        }), flush=True)


if __name__ == "__main__":
    main()
