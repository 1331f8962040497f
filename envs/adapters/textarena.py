"""`textarena`: TextArena's single-player games (Guertler et al. 2025), when installed.

Needs `pip install textarena==0.7.4` (the `envs` extra). Most single-player games play offline;
word games need NLTK's word list and a few need an OpenRouter key, and the suite says so when
it is built. The agent writes moves in each game's own syntax (`[5]`, `[A C]`), which the rules
in the first observation describe. A move the game rejects is an invalid turn: the game explains
and asks again, and a second one in a row ends the game. The reward comes only at the end: the
game's own (1 for a win; some games give partial credit), success when it is 1.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from typing import Any

from ..base import EnvUnavailable, Observation, Step, Task, register_suite
from .global_rng import EpisodeRandom
from .textarena_experts import EXPERTS

INSTALL = "pip install 'turnwise[envs]' (or textarena==0.7.4)"
SPLITS = {"train": 0, "valid": 1, "test": 2}  # seed ranges of a million each
SYSTEM_PROMPT = (
    "You are playing a game. Read its rules, then each turn reply with one move in the exact "
    "format the rules give."
)


def require_textarena() -> Any:
    """The `textarena` module, or EnvUnavailable saying how to install it."""
    try:
        import textarena
    except ImportError as exc:
        raise EnvUnavailable(f"env.name='textarena' needs the textarena package ({exc}): "
                             f"{INSTALL}") from None
    return textarena


def make_game(ta: Any, game: str) -> Any:
    """The unwrapped TextArena env `game` (its `-raw` version: the messages as they come)."""
    return ta.make(f"{game}-raw")


def check_game(ta: Any, game: str) -> None:
    """Stop, naming the cause, unless `game` is a registered single-player game that starts here."""
    from textarena.envs.registration import ENV_REGISTRY

    if game not in ENV_REGISTRY or game.endswith(("-raw", "-train")):
        known = sorted(g for g in ENV_REGISTRY if not g.endswith(("-raw", "-train")))
        raise ValueError(f"env.options.games: unknown TextArena game {game!r}; registered are "
                         f"{known}")
    try:
        probe = make_game(ta, game)
        with EpisodeRandom(0).active():
            probe.reset(num_players=1, seed=0)
    except AssertionError as exc:  # TextArena's own check of the number of players
        raise ValueError(f"env.options.games: {game!r} is not a single-player game ({exc})") from None
    except Exception as exc:
        raise EnvUnavailable(f"textarena game {game!r} cannot start here ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:300]}); word games need NLTK's word "
                             "list (python -m nltk.downloader words) and some games an "
                             "OPENROUTER_API_KEY") from None
    if not isinstance(probe.state, ta.SinglePlayerState):
        raise ValueError(f"env.options.games: {game!r} is not a single-player game")


class TextArenaEnv:
    """One single-player TextArena game, with its own copy of the global random state."""

    system_prompt = SYSTEM_PROMPT

    def __init__(self, ta: Any, *, max_steps: int = 200) -> None:
        self.ta, self.max_steps = ta, max_steps
        self.game: Any = None
        self.rng: EpisodeRandom | None = None
        self.name, self.steps = "", 0

    async def reset(self, task: Task) -> Observation:
        self.name, self.steps = task.data["game"], 0
        self.game = make_game(self.ta, self.name)
        self.rng = EpisodeRandom(task.data["seed"])
        # TextArena calls run on the event loop's thread, so no two episodes' swaps overlap.
        with self.rng.active():
            self.game.reset(num_players=1, seed=task.data["seed"])
        return self._observe()

    async def step(self, action_text: str) -> Step:
        if self.game is None:
            raise RuntimeError("TextArenaEnv.step before reset")
        self.steps += 1
        with self.rng.active():
            done, _ = self.game.step(action_text)
        observation = self._observe()
        state = self.game.state
        info: dict[str, Any] = {"success": False, "invalid": state.error_count > 0,
                                "action": action_text.strip(), "truncated": False}
        if not done:
            truncated = self.steps >= self.max_steps
            info["truncated"] = truncated
            return Step(observation, 0.0, truncated, info)
        rewards, game_info = self.game.close()
        reward, reason = float(rewards[0]), game_info[0].get("reason") or ""
        observation.text = "\n".join(t for t in (observation.text, reason) if t)
        info.update(success=reward >= 1.0, score=reward, reason=reason,
                    invalid=info["invalid"] or bool(game_info[0].get("invalid_move")))
        return Step(observation, reward, True, info)

    async def close(self) -> None:
        self.game = None

    def _observe(self) -> Observation:
        _, messages = self.game.get_observation()
        # The agent's own move comes back as a PLAYER_ACTION message: it knows what it said.
        text = "\n".join(m[1].strip() for m in messages
                         if m[2] != self.ta.ObservationType.PLAYER_ACTION)
        state = json.dumps(self.game.state.game_state, sort_keys=True, default=repr)
        anchor = f"{self.name}:{hashlib.sha256(state.encode()).hexdigest()[:16]}"
        return Observation(text=text, anchor=anchor)


@register_suite("textarena")
class TextArenaSuite:
    """Single-player TextArena games as tasks (`games`: registered ids, taken in turn), each
    on a seed of its split's range; experts exist for GuessTheNumber and TowerOfHanoi."""

    name = "textarena"

    def __init__(self, *, games: list[str] | None = None, max_steps: int = 200) -> None:
        self.ta = require_textarena()
        self.games = tuple(games or ("GuessTheNumber-v0", "TowerOfHanoi-v0"))
        self.max_steps = max_steps
        for game in self.games:  # fail now, not in the first episode, on a game that cannot run
            check_game(self.ta, game)

    def make(self) -> TextArenaEnv:
        return TextArenaEnv(self.ta, max_steps=self.max_steps)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        """`count` games of `split`, taken in turn, each on a game seed drawn with `seed`."""
        if split not in SPLITS:
            raise ValueError(f"textarena split={split!r}: allowed are {list(SPLITS)}")
        rng, base = random.Random(seed), SPLITS[split] * 10**6
        out = []
        for i in range(count):
            game, game_seed = self.games[i % len(self.games)], base + rng.randrange(10**6)
            out.append(Task(id=f"textarena/{split}/{game}/{game_seed}", kind=game,
                            data={"game": game, "seed": game_seed}))
        return out

    def oracle(self, task: Task) -> Any:
        family = task.data["game"].split("-v0")[0]
        if family not in EXPERTS:
            raise ValueError(f"textarena has no expert for {task.data['game']!r} (experts: "
                             f"{sorted(EXPERTS)}); train it without demonstrations (sft.episodes: 0)")
        return EXPERTS[family]()

    def corpus(self) -> Iterable[str]:
        yield SYSTEM_PROMPT
        for game in self.games:
            probe = make_game(self.ta, game)
            with EpisodeRandom(0).active():
                probe.reset(num_players=1, seed=0)
            yield from (m[1] for m in probe.get_observation()[1])
        yield "You attempted an invalid move. Reason: Please resubmit a valid move."
        yield "[0] [1] [2] [3] [4] [5] [6] [7] [8] [9] [A B] [A C] [B A] [B C] [C A] [C B]"
