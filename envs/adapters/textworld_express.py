"""`textworld_express`: the eight TextWorldExpress games (Jansen & Cote 2022), when installed.

Needs `pip install textworld-express==1.1.0` (the `envs` extra) and a Java runtime: the games
run in one JVM per suite, each episode on its own game session inside it. Splits are the
package's seed folds: train, valid (its `dev` fold) and test. Actions go in
`<action>...</action>` tags; the admissible actions are the game's valid actions; the oracle
plays the game's gold action path; an action's anchor keys the game state it was taken in
(the room as `look` describes it, the inventory and the score).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import shutil
import threading
from collections.abc import Iterable
from typing import Any

from ..base import EnvUnavailable, Observation, Step, Task, register_suite

GAMES = ("cookingworld", "twc", "coin", "mapreader", "arithmetic", "sorting", "simonsays",
         "peckingorder")
SPLITS = {"train": "train", "valid": "dev", "test": "test"}
REWARDS = ("success", "score")
INSTALL = ("pip install 'turnwise[envs]' (or textworld-express==1.1.0) and a Java runtime "
           "(Debian/Ubuntu: apt-get install default-jre-headless)")
SYSTEM_PROMPT = (
    "You are playing a text game. Each turn, choose one admissible action and reply with it "
    "inside <action> </action> tags, for example <action>look around</action>."
)
NO_TAGS = "Unknown action: reply with one admissible action inside <action> </action> tags."
_ACTION = re.compile(r"<action>(.*?)</action>", re.DOTALL)


def require_twx() -> type:
    """TextWorldExpress's `TextWorldExpressEnv`, after checking the package and Java are there."""
    try:
        from textworld_express import TextWorldExpressEnv
    except ImportError as exc:
        raise EnvUnavailable(f"env.name='textworld_express' needs the textworld-express package "
                             f"({exc}): {INSTALL}") from None
    if shutil.which("java") is None:
        raise EnvUnavailable(f"env.name='textworld_express' needs a Java runtime (no `java` on "
                             f"PATH): {INSTALL}")
    return TextWorldExpressEnv


class GameServer:
    """One JVM running TextWorldExpress, and a pool of game sessions in it.

    A session is the package's `PythonInterface`: sessions in one JVM are independent (checked
    by playing the same games interleaved from eight threads and alone: identical). A JVM that
    died is started afresh for the next session; the episodes it held fail.
    """

    def __init__(self) -> None:
        self.env_class = require_twx()
        self.env: Any = None
        self.free: list[Any] = []
        self.lock = threading.Lock()

    def acquire(self) -> Any:
        """A free game session (started on first use; a dead JVM is replaced)."""
        with self.lock:
            if self.env is None or self.env._gateway.java_process.poll() is not None:
                self.env, self.free = self.env_class(envStepLimit=10**6), []
            if self.free:
                return self.free.pop()
            return self.env._gateway.jvm.textworldexpress.runtime.PythonInterface()

    def release(self, session: Any) -> None:
        with self.lock:
            if self.env is not None and self.env._gateway.java_process.poll() is None:
                self.free.append(session)

    def start(self, session: Any, task: Task, gold: bool) -> dict[str, Any]:
        """Load `task`'s game into `session`; returns the game's first response."""
        error = session.load(task.data["game"], task.data["params"])
        if error:
            raise ValueError(f"textworld_express game {task.data['game']!r} params "
                             f"{task.data['params']!r}: {error}")
        return _parsed(session.generateNewGameJSON(task.data["seed"], task.data["fold"], gold),
                       session)

    def seeds(self, game: str, fold: str) -> list[int]:
        """The seeds of `fold` for `game`."""
        session = self.acquire()
        try:
            session.load(game, "")
            getter = {"train": session.getSeedsTrain, "dev": session.getSeedsDev,
                      "test": session.getSeedsTest}[fold]
            return list(getter())
        finally:
            self.release(session)

    def close(self) -> None:
        with self.lock:
            if self.env is not None:
                self.env.close()
                self.env, self.free = None, []


class TextWorldExpressEnv:
    """One TextWorldExpress game, on a session borrowed from the suite's JVM."""

    system_prompt = SYSTEM_PROMPT

    def __init__(self, server: GameServer, *, max_steps: int = 50, reward: str = "success",
                 success_reward: float = 10.0) -> None:
        self.server, self.max_steps = server, max_steps
        self.reward_mode, self.success_reward = reward, success_reward
        self.session: Any = None
        self.last: dict[str, Any] = {}
        self.game, self.goal, self.steps, self.score = "", "", 0, 0.0

    async def reset(self, task: Task) -> Observation:
        await self.close()
        self.session = await asyncio.to_thread(self.server.acquire)
        state = await asyncio.to_thread(self.server.start, self.session, task, False)
        self.game, self.steps, self.score = task.data["game"], 0, 0.0
        self.goal = re.sub(r"^Your task is to ", "", state["taskDescription"]).strip()
        return self._observe(f"{state['taskDescription']}\n\n{state['observation']}".strip(), state)

    async def step(self, action_text: str) -> Step:
        if self.session is None:
            raise RuntimeError("TextWorldExpressEnv.step before reset")
        self.steps += 1
        found = _ACTION.findall(action_text)
        action = found[-1].strip() if found else ""
        if not found:  # never reaches the game: its state stays as it was
            state, text = self.last, NO_TAGS
        else:
            state = await asyncio.to_thread(self._game_step, action)
            text = state["observation"].strip()
        won, lost = bool(state["tasksuccess"]), bool(state["taskfailure"])
        gained, self.score = float(state["score"]) - self.score, float(state["score"])
        done = won or lost or self.steps >= self.max_steps
        reward = gained if self.reward_mode == "score" else (self.success_reward if won else 0.0)
        info = {"success": won, "invalid": not found or action not in self.admissible,
                "action": action, "truncated": done and not (won or lost)}
        if done:
            info["score"] = self.score
        return Step(self._observe(text, state), reward, done, info)

    async def close(self) -> None:
        if self.session is not None:
            self.server.release(self.session)
            self.session = None

    def _game_step(self, action: str) -> dict[str, Any]:
        from py4j.protocol import Py4JError

        try:
            return _parsed(self.session.stepJSON(action), self.session)
        except Py4JError as exc:  # the JVM died: this episode fails, the next gets a new JVM
            raise ConnectionError(f"TextWorldExpress's JVM stopped mid-episode "
                                  f"({type(exc).__name__}: {exc})") from None

    def _observe(self, text: str, state: dict[str, Any]) -> Observation:
        self.last = state
        self.admissible = sorted(state["validActions"])
        # The state an action is taken in: the room with its objects and doors, the inventory,
        # the score (progress through the task); games without rooms (simonsays) show their
        # state in the observation itself.
        key = [state["look"], state["inventory"], state["scoreRaw"]]
        if not state["look"].strip():
            key.append(state["observation"])
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
        return Observation(text=text, anchor=f"{self.game}:{digest}",
                           admissible_actions=list(self.admissible),
                           info={"goal": self.goal, "score": float(state["score"])})


class GoldPathOracle:
    """Plays the game's gold action path (its first `look around` repeats the opening)."""

    def __init__(self, actions: list[str]) -> None:
        self.actions = actions[1:] if actions[:1] == ["look around"] else list(actions)

    def act(self, observation: Observation) -> str:
        return f"<action>{self.actions.pop(0) if self.actions else 'look around'}</action>"


@register_suite("textworld_express")
class TextWorldExpressSuite:
    """TextWorldExpress games as tasks: `games` picks them, `game_params` sets their knobs
    (e.g. {coin: "numLocations=4,includeDoors=0"}), `reward` is `success` (success_reward when
    the task is done) or `score` (the game's own score gains, 0 to 1 over an episode)."""

    name = "textworld_express"

    def __init__(self, *, games: list[str] | None = None,
                 game_params: dict[str, str] | None = None, max_steps: int = 50,
                 reward: str = "success", success_reward: float = 10.0) -> None:
        unknown = sorted(set(games or ()) - set(GAMES)) or sorted(set(game_params or {}) - set(GAMES))
        if unknown or games == []:
            raise ValueError(f"env.options.games: unknown {unknown or 'empty'}; allowed are {list(GAMES)}")
        if reward not in REWARDS:
            raise ValueError(f"env.options.reward={reward!r}: allowed are {list(REWARDS)}")
        self.games = tuple(games or GAMES)
        self.params = {g: (game_params or {}).get(g, "") for g in self.games}
        self.server = GameServer()
        self.env_options = dict(max_steps=max_steps, reward=reward, success_reward=success_reward)
        self._seeds: dict[tuple[str, str], list[int]] = {}

    def make(self) -> TextWorldExpressEnv:
        return TextWorldExpressEnv(self.server, **self.env_options)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        """`count` games of `split`, the games taken in turn, each on a seed of its fold drawn
        with `seed`."""
        if split not in SPLITS:
            raise ValueError(f"textworld_express split={split!r}: allowed are {list(SPLITS)}")
        fold, rng = SPLITS[split], random.Random(seed)
        out = []
        for i in range(count):
            game = self.games[i % len(self.games)]
            if (game, fold) not in self._seeds:
                self._seeds[game, fold] = self.server.seeds(game, fold)
            game_seed = rng.choice(self._seeds[game, fold])
            out.append(Task(id=f"textworld_express/{split}/{game}/{game_seed}", kind=game,
                            data={"game": game, "seed": game_seed, "fold": fold,
                                  "params": self.params[game]}))
        return out

    def oracle(self, task: Task) -> GoldPathOracle:
        session = self.server.acquire()
        try:
            self.server.start(session, task, True)
            return GoldPathOracle(list(session.getGoldActionSequence()))
        finally:
            self.server.release(session)

    def corpus(self) -> Iterable[str]:
        yield SYSTEM_PROMPT
        yield NO_TAGS
        for task in self.tasks("train", 4 * len(self.games), 0):
            session = self.server.acquire()
            try:
                state = self.server.start(session, task, True)
                yield state["taskDescription"]
                yield state["observation"]
                yield ", ".join(sorted(state["validActions"]))
                for action in session.getGoldActionSequence():
                    yield f"<action>{action}</action>"
                    yield json.loads(session.stepJSON(action))["observation"]
            finally:
                self.server.release(session)

    def close(self) -> None:
        """Stop the suite's JVM."""
        self.server.close()


def _parsed(response: str, session: Any) -> dict[str, Any]:
    state = json.loads(response)
    state["taskDescription"] = session.getTaskDescription()
    return state
