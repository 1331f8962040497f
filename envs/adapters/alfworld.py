"""`alfworld`: ALFWorld's text games (Shridhar et al. 2021) played on ALFWorld's own engine.

Needs the alfworld and textworld packages (`pip install 'turnwise[envs]'`). The games come from
one of two places:
- generated (the default): drawn from what the alfworld package ships (its PDDL domain, text
  grammar, ALFRED's object rules, goal library and 120 room layouts) into `cache_dir`, from
  `seed`; nothing is downloaded (`turnwise.envs.alfworld`);
- downloaded: `data_dir` is ALFWorld's data folder, as `alfworld-download` fills it.
Splits are ALFWorld's: train, valid_seen (eval_in_distribution), valid_unseen
(eval_out_of_distribution). Actions, observations and the reward are those of the `household`
world: `<action>...</action>`, "Nothing happens." for what the game rejects, `success_reward`
when the game is won. The oracle is ALFWorld's expert (its `AlfredExpert` wrapper): `handcoded`
searches the room the way ALFWorld's DAgger expert does, `planner` replans with Fast Downward.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..base import EnvUnavailable, Observation, Step, Task, register_suite

SPLITS = ("train", "valid_seen", "valid_unseen")
TASK_TYPES = ("pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
              "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep",
              "pick_two_obj_and_place")
# The sizes of ALFWorld's own splits (json_2.1.1, solvable games).
ALFWORLD_SIZES = {"train": 3553, "valid_seen": 140, "valid_unseen": 134}
INSTALL = "pip install 'turnwise[envs]' (or: pip install alfworld==0.4.2 textworld==1.7.0)"
SYSTEM_PROMPT = (
    "You are an expert agent operating in the ALFRED embodied environment. Each turn, choose "
    "one admissible action and reply with it inside <action> </action> tags, for example "
    "<action>go to countertop 1</action>."
)
_ACTION = re.compile(r"<action>(.*?)</action>", re.DOTALL)
_GENERATED_ONLY = ("games", "max_receptacles", "distractors", "seed", "cache_dir", "workers")


def require_alfworld() -> None:
    """Stop with what to install when the alfworld or textworld package is missing."""
    for package in ("alfworld", "textworld", "fast_downward"):
        try:
            __import__(package)
        except ImportError as exc:
            raise EnvUnavailable(f"env.name='alfworld' needs the {package} package ({exc}): "
                                 f"{INSTALL}") from None


class AlfWorldEnv:
    """One ALFWorld game, played through TextWorld with ALFWorld's wrappers."""

    system_prompt = SYSTEM_PROMPT

    def __init__(self, pool: Any, *, max_steps: int = 50, success_reward: float = 10.0,
                 anchor: str = "observation") -> None:
        self.pool, self.max_steps, self.success_reward = pool, max_steps, success_reward
        self.anchor_mode = anchor
        self.game: Any = None
        self.path, self.key, self.goal = "", "", ""
        self.steps = self.moves = 0
        self.state: Any = None

    async def reset(self, task: Task) -> Observation:
        from ..alfworld import engine
        from ..alfworld.build import game_key

        await self.close()
        self.path, self.key = task.data["gamefile"], game_key(task.data["gamefile"])
        self.game = await asyncio.to_thread(self.pool.take, self.path)
        self.state = await asyncio.to_thread(engine.reset, self.game, self.key)
        text = _strip_banner(self.state.feedback)
        found = re.search(r"Your task is to: (.*)", text)
        self.goal, self.steps, self.moves = (found.group(1).strip() if found else ""), 0, 0
        return self._observe(text)

    async def step(self, action_text: str) -> Step:
        from ..alfworld import engine

        if self.game is None:
            raise RuntimeError("AlfWorldEnv.step before reset")
        self.steps += 1
        found = _ACTION.findall(action_text)
        # Commands are matched as the household world matches them: case and spacing aside.
        action = " ".join(found[-1].lower().split()) if found else ""
        if found:  # a reply without an action leaves the game, and its expert, untouched
            self.moves += 1
            self.state = await asyncio.to_thread(engine.step, self.game, action, self.key,
                                                 self.moves)
        feedback = self.state.feedback.strip() if found else "Nothing happens."
        won = bool(self.state["won"])
        done = won or self.steps >= self.max_steps
        info = {"success": won, "invalid": not found, "noop": feedback == "Nothing happens.",
                "action": action, "truncated": done and not won}
        return Step(self._observe(feedback), self.success_reward if won else 0.0, done, info)

    async def close(self) -> None:
        if self.game is not None:
            self.pool.give(self.path, self.game)  # the next reset rebuilds its initial state
            self.game = None

    def _observe(self, text: str) -> Observation:
        state = self.state
        admissible = [c for c in state["admissible_commands"] if c != "help"]
        if self.anchor_mode == "state":  # the game's facts; `checked` only records looking
            anchor: Any = frozenset(str(f) for f in state["facts"] if f.name != "checked")
        else:
            anchor = text
        info = {"goal": self.goal, "expert_plan": list(state.get("extra.expert_plan") or [])}
        if state.get("extra.expert_error"):
            info["expert_error"] = state["extra.expert_error"]
        return Observation(text=text, anchor=anchor, admissible_actions=admissible, info=info)


class AlfWorldOracle:
    """ALFWorld's expert: the first command of the plan the game publishes with each state."""

    def act(self, observation: Observation) -> str:
        plan = observation.info.get("expert_plan") or ["look"]  # AlfredExpert's own default
        return f"<action>{plan[0]}</action>"


@register_suite("alfworld")
class AlfWorldSuite:
    """ALFWorld's games as tasks: generated locally (default) or from `data_dir`."""

    name = "alfworld"

    def __init__(self, *, data_dir: str | None = None, cache_dir: str | None = None,
                 seed: int = 0, games: dict[str, int] | None = None,
                 task_types: list[str] | None = None, max_receptacles: int | None = None,
                 distractors: int | None = None, expert: str = "handcoded",
                 max_steps: int = 50, success_reward: float = 10.0, anchor: str = "observation",
                 workers: int | None = None) -> None:
        _check_options(task_types, anchor, games, max_receptacles)
        require_alfworld()
        from ..alfworld.build import GameSettings
        from ..alfworld.engine import EXPERTS, GamePool

        if expert not in EXPERTS:
            raise ValueError(f"env.options.expert={expert!r}: allowed are {list(EXPERTS)}")
        self.task_types = tuple(task_types or TASK_TYPES)
        generation = {"games": games, "max_receptacles": max_receptacles, "seed": seed or None,
                      "distractors": distractors, "cache_dir": cache_dir, "workers": workers}
        self.data_dir = _downloaded_data(data_dir, generation) if data_dir is not None else None
        # A generated game is kept when its expert wins it within an episode's steps (ALFWorld
        # keeps the games its expert solves), so every demonstration succeeds.
        self.settings = GameSettings(seed=seed, task_types=self.task_types,
                                     max_receptacles=max_receptacles, distractors=distractors,
                                     expert=expert, expert_steps=max_steps)
        self.sizes = {**ALFWORLD_SIZES, **(games or {})}
        cache = Path(cache_dir).expanduser() if cache_dir else default_cache()
        self.root = cache / f"games-{self.settings.key()}"
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.pool = GamePool(expert)
        self.env_options = {"max_steps": max_steps, "success_reward": success_reward,
                            "anchor": anchor}
        self._listed: dict[str, list[str]] = {}

    @property
    def games_dir(self) -> Path:
        """The `json_2.1.1` folder the games are read from (ALFWorld's layout)."""
        return (self.data_dir if self.data_dir is not None else self.root) / "json_2.1.1"

    def make(self) -> AlfWorldEnv:
        return AlfWorldEnv(self.pool, **self.env_options)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        """`count` games of `split` in an order drawn by `seed` (cycling when the split has
        fewer)."""
        games = self._draw(split, count, seed)
        return [Task(id=f"alfworld/{split}/{seed}/{i}", kind=task_type_of(g), data={"gamefile": g})
                for i, g in enumerate(games)]

    def oracle(self, task: Task) -> AlfWorldOracle:
        return AlfWorldOracle()

    def corpus(self) -> Iterable[str]:
        """The system prompt, ALFRED's names, and the expert's play of one game per task type."""
        from ..alfworld.corpus import expert_transcripts, names

        yield SYSTEM_PROMPT
        yield from names()
        yield from expert_transcripts(self._first_games(), self.settings.expert)

    def _first_games(self) -> list[str]:
        """One train game of each task type: the first listed, or the first generated."""
        from ..alfworld.build import ensure_games, split_dir

        if self.data_dir is not None:
            games = self._downloaded("train")
            return [next(g for g in games if task_type_of(g) == t) for t in self.task_types
                    if any(task_type_of(g) == t for g in games)]
        records = ensure_games(self.root, "train", list(range(len(self.task_types))),
                               self.settings, workers=self.workers)
        return [str(split_dir(self.root, "train") / r["game"]) for r in records if r["solvable"]]

    # ------------------------------------------------------------------ games

    def _draw(self, split: str, count: int, seed: int) -> list[str]:
        if split not in SPLITS:
            raise ValueError(f"alfworld split={split!r}: allowed are {list(SPLITS)}")
        if count < 1:
            return []
        if self.data_dir is not None:
            return _cycle(self._downloaded(split), count, seed)
        return self._generated(split, count, seed)

    def _downloaded(self, split: str) -> list[str]:
        from ..alfworld.build import list_games

        if split not in self._listed:
            games = list_games(self.data_dir / "json_2.1.1" / split, self.task_types)
            if not games:
                raise EnvUnavailable(f"alfworld: no solvable {list(self.task_types)} games under "
                                     f"{self.data_dir / 'json_2.1.1' / split}")
            self._listed[split] = [str(g) for g in games]
        return self._listed[split]

    def _generated(self, split: str, count: int, seed: int) -> list[str]:
        """Walk the split's games in `seed`'s order, generating those not made yet, until
        `count` solvable ones are found (or the split is used up: then they repeat)."""
        from ..alfworld.build import ensure_games, split_dir

        order = list(range(self.sizes[split]))
        random.Random(seed).shuffle(order)
        picked, position = [], 0
        while len(picked) < count and position < len(order):
            batch = order[position:position + count - len(picked)]
            position += len(batch)
            records = ensure_games(self.root, split, batch, self.settings, workers=self.workers)
            picked += [str(split_dir(self.root, split) / r["game"]) for r in records if r["solvable"]]
        if not picked:
            raise EnvUnavailable(f"alfworld: none of the {len(order)} generated {split} games "
                                 f"under {self.root} is solvable by the {self.settings.expert} expert")
        return [picked[i % len(picked)] for i in range(count)]


def _check_options(task_types: list[str] | None, anchor: str, games: dict[str, int] | None,
                   max_receptacles: int | None) -> None:
    unknown = sorted(set(task_types or ()) - set(TASK_TYPES))
    if unknown:
        raise ValueError(f"env.options.task_types: unknown {unknown}; allowed are {list(TASK_TYPES)}")
    if anchor not in ("observation", "state"):
        raise ValueError(f"env.options.anchor={anchor!r}: allowed are 'observation', 'state'")
    bad = sorted(set(games or {}) - set(SPLITS))
    if bad or any(not isinstance(n, int) or n < 1 for n in (games or {}).values()):
        raise ValueError(f"env.options.games={games!r}: allowed is a count >= 1 for each of "
                         f"{list(SPLITS)}")
    if max_receptacles is not None and max_receptacles < 3:
        raise ValueError(f"env.options.max_receptacles={max_receptacles}: allowed are null "
                         "(the whole room) or an integer >= 3")


def _downloaded_data(data_dir: str, generation: dict[str, Any]) -> Path:
    """ALFWorld's data folder, after refusing the options that only generated games have."""
    clash = [k for k in _GENERATED_ONLY if generation[k] is not None]
    if clash:
        raise ValueError(f"env.options {clash} apply to generated games; with "
                         f"env.options.data_dir the games are ALFWorld's own")
    folder = Path(data_dir).expanduser()
    if not (folder / "json_2.1.1").is_dir():
        raise EnvUnavailable(f"env.options.data_dir={data_dir!r} has no json_2.1.1 folder: "
                             "point it at ALFWorld's data folder (what `alfworld-download` "
                             "fills), or leave it out to play locally generated games")
    return folder


def default_cache() -> Path:
    """Where generated games go: $TURNWISE_CACHE/alfworld, else ~/.cache/turnwise/alfworld."""
    return Path(os.environ.get("TURNWISE_CACHE", Path.home() / ".cache" / "turnwise")) / "alfworld"


def task_type_of(gamefile: str) -> str:
    # .../<task_type>-<Object>-<Mrecep>-<Target>-<FloorPlan>/<trial>/game.tw-pddl
    folder = Path(gamefile).parent.parent.name
    return next((t for t in TASK_TYPES if folder.startswith(t)), "unknown")


def _cycle(games: list[str], count: int, seed: int) -> list[str]:
    order = list(range(len(games)))
    random.Random(seed).shuffle(order)
    return [games[order[i % len(order)]] for i in range(count)]


def _strip_banner(text: str) -> str:
    # ALFWorld opens with "-= Welcome to TextWorld, ALFRED! =-"; it carries no information.
    return re.sub(r"^\s*-= Welcome to TextWorld, ALFRED! =-\s*", "", text).strip()
