"""Generated ALFWorld games on disk, laid out as ALFWorld's data: `json_2.1.1/<split>/<task
folder>/<trial>/game.tw-pddl` beside `traj_data.json`, so ALFWorld's own tools read them too.

Game i of a split is drawn from (settings, split, i) alone, and generated the first time it is
asked for, into a cache folder per settings; later runs read it back. Solvable means what it
means in `alfworld-generate`: the expert wins the game, and its commands are kept as the
walkthrough; ALFWorld lists only solvable games, and so do we.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from . import engine
from .pddl import game_data, problem, traj_data
from .tasks import SPLITS, TASK_TYPES, draw_game

VERSION = 1  # bump when a change to the generator changes the games it writes
DATA = "json_2.1.1"  # ALFWorld's data folder name, kept so its tools find the games


@dataclass(frozen=True)
class GameSettings:
    """What decides the games: the seed, the task types, the room sizes, the expert."""

    seed: int = 0
    task_types: tuple[str, ...] = TASK_TYPES
    max_receptacles: int | None = None
    distractors: int | None = None
    expert: str = "handcoded"
    expert_steps: int = 50  # a game its expert cannot win in this many steps is unsolvable

    def key(self) -> str:
        text = json.dumps([VERSION, asdict(self)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def ensure_games(root: Path, split: str, indices: list[int], settings: GameSettings, *,
                 workers: int = 1, echo: Callable[[str], None] | None = None) -> list[dict]:
    """The index records of games `indices` of `split` under `root` (`game`: the file, relative
    to the split's folder; `solvable`), generating those not made yet."""
    if split not in SPLITS:
        raise ValueError(f"alfworld split={split!r}: allowed are {list(SPLITS)}")
    echo = echo or (lambda text: print(text, file=sys.stderr, flush=True))
    folder = split_dir(root, split)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".lock"):
        records = {r["index"]: r for r in _read_index(folder)}
        missing = sorted(set(indices) - set(records))
        if missing:
            echo(f"alfworld: generating {len(missing)} {split} games into {root} (once)")
            started = time.perf_counter()
            records.update((r["index"], r) for r in _generate(folder, split, missing, settings,
                                                               workers))
            _write_index(folder, sorted(records.values(), key=lambda r: r["index"]))
            echo(f"alfworld: {len(missing)} {split} games in {time.perf_counter() - started:.0f}s")
    return [records[i] for i in indices]


def split_dir(root: Path, split: str) -> Path:
    return root / DATA / split


def _generate(folder: Path, split: str, indices: list[int], settings: GameSettings,
              workers: int) -> list[dict]:
    jobs = [(folder, split, i, settings) for i in indices]
    if workers <= 1 or len(jobs) < 2:
        return [make_game(*job) for job in jobs]
    # spawn: the caller may hold torch threads, which a forked child must not inherit.
    with ProcessPoolExecutor(min(workers, len(jobs)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(make_game, *zip(*jobs)))


def make_game(folder: Path, split: str, index: int, settings: GameSettings) -> dict:
    """Draw, write and solve game `index` of `split`; its index record."""
    task_type = settings.task_types[index % len(settings.task_types)]
    spec = draw_game(split, settings.seed, index, task_type,
                     max_receptacles=settings.max_receptacles, distractors=settings.distractors)
    game_dir = folder / spec.folder_name / f"trial_{index:05d}"
    game_dir.mkdir(parents=True, exist_ok=True)
    data = game_data(spec, problem(spec, name=f"trial_{index:05d}"))
    _write_json(game_dir / "traj_data.json", traj_data(spec, turnwise={"index": index}))
    _write_json(game_dir / "game.tw-pddl", data)
    walkthrough = solve(game_dir / "game.tw-pddl", settings.expert, settings.expert_steps)
    data.update(solvable=walkthrough is not None, walkthrough=walkthrough)
    _write_json(game_dir / "game.tw-pddl", data)
    return {"index": index, "game": str(game_dir.relative_to(folder) / "game.tw-pddl"),
            "task_type": task_type, "solvable": walkthrough is not None,
            "steps": len(walkthrough) if walkthrough is not None else None}


def solve(path: Path, expert: str, max_steps: int) -> list[str] | None:
    """The expert's commands that win the game at `path`, or None if it cannot."""
    game = engine.open_game(path, expert)
    key = game_key(path)
    try:
        state, commands = engine.reset(game, key), []
        while not state["won"] and len(commands) < max_steps:
            plan = state["extra.expert_plan"]
            if not plan:
                return None
            commands.append(plan[0])
            state = engine.step(game, plan[0], key, len(commands))
        return commands if state["won"] else None
    finally:
        engine.close(game)


def game_key(path: str | Path) -> str:
    """A game's name independent of where its data lives: split/task folder/trial."""
    return "/".join(Path(path).parts[-4:-1])


def _read_index(folder: Path) -> list[dict]:
    index = folder / "index.jsonl"
    if not index.exists():
        return []
    return [json.loads(line) for line in index.read_text().splitlines() if line]


def _write_index(folder: Path, records: list[dict]) -> None:
    _write_text(folder / "index.jsonl", "".join(json.dumps(r) + "\n" for r in records))


def _write_json(path: Path, data: dict) -> None:
    _write_text(path, json.dumps(data))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class _locked:
    """An exclusive lock on a file, so two runs generating the same games take turns."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def list_games(folder: Path, task_types: tuple[str, ...]) -> list[Path]:
    """The playable games under `folder` by ALFWorld's rules (`AlfredTWEnv.collect_game_files`):
    a `traj_data.json` of a wanted task type beside a `game.tw-pddl` marked solvable; no
    movable-receptacle or sliced-object tasks."""
    games = []
    for traj in sorted(folder.rglob("traj_data.json")):
        game = traj.parent / "game.tw-pddl"
        where = str(traj.parent.relative_to(folder))
        if "movable" in where or "Sliced" in where or not game.exists():
            continue
        try:
            task_type = json.loads(traj.read_text())["task_type"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise engine.GameFileError(f"alfworld task file {traj} does not parse: {exc!r}") from None
        if task_type in task_types and engine.read_game(game).get("solvable"):
            games.append(game)
    return games
