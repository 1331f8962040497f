"""The process group of an SPMD run: who am I, and the few collectives the loop needs.

Every rank runs the whole loop (its own engine, orchestrator and credit on its own task groups);
only gradients (DeepSpeed), metrics and a handful of decisions cross ranks. One process without
a launcher is a world of size 1 and every collective is the identity.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: str = "cpu"  # where collective tensors live (cuda for nccl)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over ranks (float64, so token counts stay exact)."""
        if self.size == 1:
            return [float(v) for v in values]
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def max(self, value: int) -> int:
        if self.size == 1:
            return int(value)
        tensor = torch.tensor([int(value)], dtype=torch.long, device=self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return int(tensor.item())

    def broadcast(self, obj: T) -> T:
        """Rank 0's `obj` on every rank."""
        if self.size == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: T) -> list[T]:
        """Every rank's `obj`, in rank order, on every rank."""
        if self.size == 1:
            return [obj]
        out: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share: items rank, rank + size, ... (whole task groups stay on one rank)."""
        return list(items[self.rank::self.size])

    def reduce_metrics(self, metrics: dict[str, Any], *, summed: Sequence[str] = ()) -> dict[str, Any]:
        """Numeric metrics combined over ranks: keys starting with a prefix in `summed` are
        added (counts, throughput), the others averaged over the ranks that have them (a key
        missing or NaN on a rank, e.g. a task type it did not play, does not count there)."""
        if self.size == 1:
            return metrics
        mine = [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        gathered: list[list[str]] = [[] for _ in range(self.size)]
        torch.distributed.all_gather_object(gathered, mine)
        keys = sorted(set().union(*gathered))
        values = [float(metrics.get(k, float("nan"))) for k in keys]
        present = [0.0 if math.isnan(v) else 1.0 for v in values]
        totals = self.sum([0.0 if math.isnan(v) else v for v in values] + present)
        out = dict(metrics)
        for i, key in enumerate(keys):
            total, count = totals[i], totals[len(keys) + i]
            value = total if key.startswith(tuple(summed)) else (total / count if count else float("nan"))
            out[key] = int(value) if isinstance(metrics.get(key), int) and value == int(value) else value
        return out


def init_world(backend: str, *, tasks_per_iteration: int | None = None) -> World:
    """Join the process group the launcher (torchrun / deepspeed) describes in the environment.

    Ranks split every iteration's tasks evenly (whole groups per rank), so the task count must
    divide by the number of processes.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if tasks_per_iteration is not None and tasks_per_iteration % size:
        raise ValueError(f"rollout.tasks_per_iteration={tasks_per_iteration} must be a multiple of "
                         f"the {size} processes the launcher started")
    if backend != "deepspeed":
        if size > 1:
            raise ValueError(
                f"train.backend={backend!r} runs in one process, but the launcher started "
                f"WORLD_SIZE={size}; allowed with several processes: 'deepspeed'")
        return World()
    import deepspeed

    if size == 1:  # a plain `turnwise train` run: a group of one needs a rendezvous address too
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("LOCAL_RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    cuda = torch.cuda.is_available()
    if not torch.distributed.is_initialized():
        # On CPU DeepSpeed prints, once per rank, that it built its shared-memory op.
        with contextlib.redirect_stdout(io.StringIO()):
            deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo",
                                       auto_mpi_discovery=False)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    return World(rank=torch.distributed.get_rank(), size=torch.distributed.get_world_size(),
                 local_rank=local_rank, device=f"cuda:{local_rank}" if cuda else "cpu")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SilentLog:
    """Stands in for the run log on ranks other than 0: every method is a no-op.

    Only rank 0 writes the run folder; the others still need to know where it is (`dir`) because
    DeepSpeed checkpoints are written by every rank.
    """

    def __init__(self, run_dir) -> None:
        self.dir = run_dir

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


def rank_zero_log(world: World, make_log):
    """The run log on rank 0 (`make_log()`), a `SilentLog` with the same folder elsewhere."""
    log = make_log() if world.is_main else None
    run_dir = world.broadcast(None if log is None else log.dir)
    return log if log is not None else SilentLog(run_dir)
