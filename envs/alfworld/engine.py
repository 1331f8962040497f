"""ALFWorld's own engine on one game file: TextWorld's PDDL backend with ALFWorld's wrappers.

`open_game` starts a game the way ALFWorld's `AlfredTWEnv` does (names demangled, game file in
the infos) plus its `AlfredExpert` wrapper, which publishes the expert's next command as
`extra.expert_plan`. Two changes to how the expert runs, neither touching the game: a step whose
expert gives up (the hand-coded one raises when the agent strays where its script cannot
follow) publishes an empty plan instead of ending the episode, and the expert's random choices
are seeded by the game and the step, so a demonstration is the same on every run.

The engine is not thread-safe (TextWorld parses with one shared parser; loads fail in parallel),
so every load, reset, step and close here holds one lock: episodes in threads take turns, which
costs nothing, since each of these is pure Python holding the GIL anyway.

Speed: at every step TextWorld parses the text template of each admissible command again with
tatsu (most of a step's time). The parse is a function of the template's text alone, so its
results are memoised here (a copy is handed out each time, since deriving text mutates it):
steps and loads run about three times faster, with the same text.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EXPERTS = ("handcoded", "planner")
GAME_KEYS = ("pddl_domain", "grammar", "pddl_problem")
# One game at a time in the engine (see above); the expert's global `random` is swapped in
# under it too.
_ENGINE_LOCK = threading.Lock()


class GameFileError(ValueError):
    """A game file that is missing or does not parse; the message names the file."""


def read_game(path: str | Path) -> dict[str, Any]:
    """The JSON of a `game.tw-pddl`, after checking it has what the engine reads."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise GameFileError(f"alfworld game file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GameFileError(f"alfworld game file {path} is not JSON: {exc}") from None
    missing = [k for k in GAME_KEYS if not isinstance(data, dict) or not isinstance(data.get(k), str)]
    if missing:
        raise GameFileError(f"alfworld game file {path} lacks {missing} (a game.tw-pddl has "
                            f"{list(GAME_KEYS)})")
    return data


def open_game(path: str | Path, expert: str = "handcoded") -> Any:
    """A loaded TextWorld environment for the game at `path` (call `reset` before `step`)."""
    if expert not in EXPERTS:
        raise ValueError(f"env.options.expert={expert!r}: allowed are {list(EXPERTS)}")
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

    _check_files(path, expert)
    infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=True,
                               extras=["gamefile", "expert_plan"])
    wrappers = [AlfredDemangler(shuffle=False), AlfredInfos, _expert_wrapper()(expert_type=expert)]
    with _loading(path):
        return textworld.start(str(path), request_infos=infos, wrappers=wrappers)


def load_game(game: Any, path: str | Path) -> None:
    """Load the game at `path` into an environment `open_game` made, as ALFWorld's batched
    environments move from game to game (the environment keeps its Fast Downward library)."""
    _check_files(path, game.expert_type)
    with _loading(path):
        game.load(str(path))


def _check_files(path: str | Path, expert: str) -> None:
    read_game(path)
    _memoise_template_parses()
    if expert == "handcoded" and not (Path(path).parent / "traj_data.json").exists():
        raise GameFileError(f"alfworld game file {path} has no traj_data.json beside it: "
                            "ALFWorld's hand-coded expert reads the task from there")


@contextmanager
def _loading(path: str | Path):
    try:
        with _engine():
            yield
    except Exception as exc:  # the PDDL or grammar inside the file does not parse
        raise GameFileError(f"alfworld game file {path} does not load: "
                            f"{type(exc).__name__}: {exc}") from exc


def reset(game: Any, key: str) -> Any:
    """`game.reset()` with the expert's random draws fixed by `key` (the game's id)."""
    with _seeded(key, 0):
        return game.reset()


def step(game: Any, command: str, key: str, index: int) -> Any:
    """`game.step(command)` (the `index`-th step since reset) with seeded expert draws."""
    with _seeded(key, index):
        state, _score, _done = game.step(command)
    return state


def close(game: Any) -> None:
    with _engine():
        game.close()


@contextmanager
def _engine():
    """Hold the engine; give back `sys.argv`, which Fast Downward's translator overwrites
    (with "translate.py domain task") each time it reads a problem."""
    with _ENGINE_LOCK:
        argv = list(sys.argv)
        try:
            yield
        finally:
            sys.argv[:] = argv


@contextmanager
def _seeded(key: str, index: int):
    seed = int(hashlib.sha256(f"{key}/{index}".encode()).hexdigest()[:16], 16)
    with _engine():
        saved = random.getstate()
        random.seed(seed)
        try:
            yield
        finally:
            random.setstate(saved)


_PARSES: dict = {}


def _memoise_template_parses() -> None:
    """Make TextWorld's grammar-template parser remember what it parsed (see above)."""
    from textworld.envs.pddl import textgen

    parse = textgen._parse_and_convert
    if getattr(parse, "memoised", False):
        return

    def memoised(*args: Any, **kwargs: Any) -> Any:
        key = (args, tuple(sorted(kwargs.items())))
        if key not in _PARSES:
            if len(_PARSES) > 20_000:  # goal sentences are the only unbounded part
                _PARSES.clear()
            _PARSES[key] = parse(*args, **kwargs)
        return copy.deepcopy(_PARSES[key])

    memoised.memoised = True
    textgen._parse_and_convert = memoised


_WRAPPER: type | None = None


def _expert_wrapper() -> type:
    """ALFWorld's `AlfredExpert`, except that an expert that gives up publishes no plan."""
    global _WRAPPER
    if _WRAPPER is None:
        from alfworld.agents.environment.alfred_tw_env import AlfredExpert

        class Expert(AlfredExpert):
            def _gather_infos(self) -> None:
                try:
                    super()._gather_infos()
                except Exception as exc:  # noqa: BLE001 - the expert's script only, not the game
                    self.state["extra.expert_plan"] = []
                    self.state["extra.expert_error"] = f"{type(exc).__name__}: {exc}"

        _WRAPPER = Expert
    return _WRAPPER


class GamePool:
    """Environments kept for episodes to reuse. Each TextWorld environment loads its own copy of
    Fast Downward's library, which is never unloaded, so environments are not closed after an
    episode but loaded with the next one's game: there are as many as episodes ever ran at
    once. An environment that has the game already is handed out as it is (a reset rebuilds
    the initial state without parsing the domain and grammar again)."""

    def __init__(self, expert: str) -> None:
        self.expert = expert
        self._idle: list[tuple[str, Any]] = []  # (its game, environment), least recent first
        self._lock = threading.Lock()

    def take(self, path: str) -> Any:
        with self._lock:
            mine = [i for i, (game, _) in enumerate(self._idle) if game == path]
            entry = self._idle.pop(mine[-1] if mine else 0) if self._idle else None
        if entry is None:
            return open_game(path, self.expert)
        if entry[0] != path:
            load_game(entry[1], path)
        return entry[1]

    def give(self, path: str, game: Any) -> None:
        with self._lock:
            self._idle.append((path, game))

    def __len__(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        with self._lock:
            for _, game in self._idle:
                close(game)
            self._idle.clear()
