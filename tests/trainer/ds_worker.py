"""One rank of the two-process DeepSpeed test (started by torchrun from test_deepspeed.py).

Every rank trains its own share of a fixed batch, syncs the result into its own hf engine,
then checkpoints, steps once more, reloads the checkpoint and repeats that step. Rank 0 writes
what the test compares with the torch backend: weights, metrics, an engine completion, the
exported policy folder, and the weights after the repeated step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from trainer_parity import ds_config, parity_batch, prompt_ids
from turnwise.agent.engines import SamplingParams, make_engine
from turnwise.trainer.backends.base import make_backend
from turnwise.trainer.checkpoint import load_checkpoint, save_checkpoint
from turnwise.trainer.dist import init_world


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--stage", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    # DeepSpeed compiles a shared-memory all-reduce for CPU ranks on first use (a minute or more
    # on two cores, every fresh CI machine). It only speeds up the collectives; gloo's are what
    # this test relies on, so skip building it.
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    out = Path(args.out)
    shared = _count_shared_prefix_passes()
    cfg = ds_config(args.model, args.stage)
    world = init_world("deepspeed")
    backend = make_backend(cfg, args.model, world=world, device="cpu")
    if cfg.kl.coef:
        backend.attach_reference(args.model)

    # Uneven shares (3 rows and 5 rows of different lengths): ranks need different numbers of
    # micro-batches, so the shorter one must run padding passes to keep ZeRO in step.
    batch = parity_batch()
    mine = batch.select(range(3) if world.rank == 0 else range(3, 8))
    if cfg.kl.coef:
        mine.ref_logprobs = backend.forward_logprobs(mine, reference=True)
    metrics = backend.update(mine)
    weights = {n: t.clone() for n, t in backend.state_dict_for_engine()}

    engine = make_engine("hf", args.model, device="cpu")
    engine.load_weights(backend.state_dict_for_engine(), version=1)
    completion = asyncio.run(engine.generate(prompt_ids(), SamplingParams(max_tokens=6, temperature=0)))
    backend.save_pretrained(str(out / "policy"))

    save_checkpoint(out / "run", 1, backend, world, meta={"engine_version": 1}, keep=1)
    backend.update(mine)
    after = {n: t.clone() for n, t in backend.state_dict_for_engine()}
    load_checkpoint(out / "run" / "checkpoints" / "iter_000001", backend, world)
    backend.update(mine)
    repeated = {n: t.clone() for n, t in backend.state_dict_for_engine()}

    if world.is_main:
        torch.save({"weights": weights, "after": after, "repeated": repeated}, out / "weights.pt")
        (out / "result.json").write_text(json.dumps({
            "metrics": metrics, "version": completion.version, "shared_passes": shared[0],
            "tokens": completion.token_ids, "logprobs": completion.logprobs}))


def _count_shared_prefix_passes() -> list[int]:
    """A one-element counter of the micro-batches scored with shared prefixes."""
    import turnwise.trainer.logprobs as logprobs

    count, real = [0], logprobs.shared_prefix_forward

    def counting(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)

    logprobs.shared_prefix_forward = counting
    return count


if __name__ == "__main__":
    main()
