"""Checkpoints of a run, written atomically, and finding the one to resume from.

A checkpoint is a folder `RUN/checkpoints/iter_000012/` holding the backend's state (model,
optimizer, lr-schedule position, shuffling RNG), every rank's RNG states (python, numpy, torch,
CUDA) and `meta.json` (iteration, engine version, task position). It is assembled under a
hidden name and renamed once complete, so a kill at any moment leaves either a whole
checkpoint or none; `meta.json` is written last and marks a folder as valid. It also records
the size and SHA-256 of every other file, so a checkpoint damaged later (a full disk, a bad
copy, bit rot) is detected on resume and the previous one is used instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .dist import World

SFT_ITERATION = -1  # the iteration number of SFT's records (the evaluation before RL: 0)

FOLDER = "checkpoints"
_NAME = re.compile(r"^iter_(\d{6})$")


def checkpoint_dir(run_dir: str | Path, iteration: int) -> Path:
    return Path(run_dir) / FOLDER / f"iter_{iteration:06d}"


def save_checkpoint(run_dir: str | Path, iteration: int, backend, world: World, *,
                    meta: dict[str, Any], keep: int, rank_state: dict[str, Any] | None = None
                    ) -> Path:
    """Write the checkpoint of `iteration` (every rank calls this); keep the newest `keep`.
    `rank_state` is this rank's own record (its rollout producer's), read back by `load`."""
    final = checkpoint_dir(run_dir, iteration)
    staging = final.parent / f".tmp-{final.name}"
    if world.is_main:
        shutil.rmtree(staging, ignore_errors=True)  # left by a run killed while saving
        (staging / "backend").mkdir(parents=True)
    world.barrier()
    backend.save(str(staging / "backend"))
    torch.save(rng_states(), staging / f"rng_rank{world.rank}.pt")
    if rank_state is not None:
        _write_atomic(staging / f"state_rank{world.rank}.json", json.dumps(rank_state))
    world.barrier()
    if world.is_main:
        record = {**meta, "iteration": iteration, "world_size": world.size,
                  "backend": backend.name, "saved_at": time.time(), "files": _manifest(staging)}
        _write_atomic(staging / "meta.json", json.dumps(record, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        _fsync_dir(final.parent)
        for old in valid_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    world.barrier()
    return final


def load_checkpoint(path: str | Path, backend, world: World) -> dict[str, Any]:
    """Restore the backend and this rank's RNG states from `path`; returns its meta record,
    with this rank's own state (see `save_checkpoint`) under `rank_state` (None if absent)."""
    path = Path(path)
    meta = read_meta(path)
    if meta is None:
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no valid meta.json)")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise ValueError(f"checkpoint {path} is damaged: {problem}")
    if meta["world_size"] != world.size or meta["backend"] != backend.name:
        raise ValueError(
            f"checkpoint {path} was written by {meta['world_size']} process(es) of backend "
            f"{meta['backend']!r}; this run has {world.size} of {backend.name!r}; allowed: the same")
    backend.load(str(path / "backend"))
    set_rng_states(torch.load(path / f"rng_rank{world.rank}.pt", weights_only=False))
    own = path / f"state_rank{world.rank}.json"
    return {**meta, "rank_state": json.loads(own.read_text()) if own.is_file() else None}


def valid_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = Path(run_dir) / FOLDER
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _NAME.match(p.name) and read_meta(p) is not None]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def checkpoint_problem(path: str | Path) -> str | None:
    """What is wrong with the files of a checkpoint (size or SHA-256 against meta.json), or None.

    Checkpoints written before checksums were recorded have nothing to check against.
    """
    path = Path(path)
    meta = read_meta(path)
    if meta is None:
        return "no valid meta.json"
    for name, want in sorted(meta.get("files", {}).items()):
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        size = file.stat().st_size
        if size != want["bytes"]:
            return f"{name} has {size} bytes, {want['bytes']} were written"
        if _sha256(file) != want["sha256"]:
            return f"{name} does not match its SHA-256 checksum"
    return None


def read_meta(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and "iteration" in meta else None


def find_resume(resume: str | None, *, log_dir: str, run_name: str | None,
                name: str) -> tuple[Path | None, Path | None]:
    """(run folder, checkpoint) that `resume` asks for; (None, None) starts a fresh run.

    `auto` takes the newest valid checkpoint of `log.dir/log.run_name`, or, without a run name,
    of the newest `log.dir/<name>-*` run that has one; a path names a checkpoint or a run folder.
    """
    if resume is None:
        return None, None
    if resume == "auto":
        if run_name:
            runs = [Path(log_dir) / run_name]
        else:
            runs = sorted(Path(log_dir).glob(f"{name}-*"), key=lambda p: p.stat().st_mtime)
        for run in reversed(runs):
            found = newest_intact(run)
            if found is not None:
                return run, found
        return None, None
    path = Path(resume)
    if read_meta(path) is not None:
        return path.parent.parent, path
    found = newest_intact(path)
    if found is None:
        raise ValueError(f"resume={resume!r}: neither a checkpoint nor a run folder with a "
                         f"complete, undamaged checkpoint under {FOLDER}/")
    return path, found


def earlier_run(log_dir: str, run_name: str | None, resume: str | None) -> str | None:
    """Why a fresh run may not start in `log_dir/run_name`, or None. A folder that already holds
    a run's metrics is not written over by accident: without `resume` that stops; with
    `resume=auto` and no checkpoint to resume from, the run starts over there (the caller
    clears the old records)."""
    if not run_name or resume == "auto":
        return None
    metrics = Path(log_dir) / run_name / "metrics.jsonl"
    if not metrics.exists() or not metrics.stat().st_size:
        return None
    return (f"log.run_name={run_name!r}: {metrics.parent} already holds a run (metrics.jsonl); "
            "continue it with resume=auto, or choose another log.run_name, or delete the folder")


def superseded_from(run_dir: Path | None, checkpoint: Path | None) -> int | None:
    """The first iteration whose records an earlier attempt left in `run_dir` and this run
    writes again: the one after `checkpoint`'s when resuming; every record (SFT's -1 on) when
    starting over in a folder that holds metrics; None when nothing is written twice."""
    if checkpoint is not None:
        return int(read_meta(checkpoint)["iteration"]) + 1
    metrics = run_dir / "metrics.jsonl" if run_dir is not None else None
    if metrics is not None and metrics.exists() and metrics.stat().st_size:
        return SFT_ITERATION
    return None


def newest_intact(run_dir: str | Path, *, warn=None) -> Path | None:
    """The newest complete checkpoint whose files match their checksums; damaged ones are
    reported (on stderr, or to `warn`) and passed over."""
    import sys

    report = warn or (lambda message: print(message, file=sys.stderr))
    for candidate in reversed(valid_checkpoints(run_dir)):
        problem = checkpoint_problem(candidate)
        if problem is None:
            return candidate
        report(f"warning: skipping damaged checkpoint {candidate}: {problem}")
    return None


def trim_metrics(path: str | Path, iteration: int) -> None:
    """Drop records past `iteration` (written after the checkpoint by the run that was killed)."""
    path = Path(path)
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("iteration", 0) <= iteration]
    _write_atomic(path, "".join(line + "\n" for line in kept))


def rng_states() -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(),
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every file under `folder` (meta.json excepted), by relative path."""
    return {str(f.relative_to(folder)): {"bytes": f.stat().st_size, "sha256": _sha256(f)}
            for f in sorted(folder.rglob("*")) if f.is_file() and f.name != "meta.json"}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
