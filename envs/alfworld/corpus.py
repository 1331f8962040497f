"""Text for training a tiny tokenizer on ALFWorld: ALFRED's names and the expert's real play."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from . import engine
from .build import game_key
from .scenes import constants


def names() -> Iterable[str]:
    """Every ALFRED object and receptacle name as the games print them ("a cabinet 3")."""
    c = constants()
    for name in sorted({n.lower() for n in [*c.OBJECTS, *c.RECEPTACLES]}):
        yield ", ".join(f"a {name} {i}" for i in range(1, 6)) + "."


def expert_transcripts(gamefiles: list[str], expert: str) -> list[str]:
    """Observations, admissible commands and commands of the expert playing `gamefiles`;
    kept in a file beside the tiny models, since replaying costs seconds per game."""
    digest = hashlib.sha256(expert.encode())
    for gamefile in gamefiles:  # the games' content, wherever they lie
        digest.update(Path(gamefile).read_bytes())
    cache = (Path(os.environ.get("TURNWISE_CACHE", Path.home() / ".cache" / "turnwise"))
             / "alfworld" / f"corpus-{digest.hexdigest()[:16]}.json")
    if cache.exists():
        return json.loads(cache.read_text())
    texts = [text for gamefile in gamefiles for text in _play(gamefile, expert)]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(texts))
    os.replace(tmp, cache)
    return texts


def _play(gamefile: str, expert: str, max_steps: int = 50) -> list[str]:
    game, key = engine.open_game(gamefile, expert), game_key(gamefile)
    try:
        state = engine.reset(game, key)
        texts = [state.feedback]
        for index in range(1, max_steps + 1):
            texts.append("\n".join(c for c in state["admissible_commands"] if c != "help"))
            if state["won"] or not state["extra.expert_plan"]:
                break
            command = state["extra.expert_plan"][0]
            state = engine.step(game, command, key, index)
            texts.append(f"<action>{command}</action>\n{state.feedback}")
        return texts
    finally:
        engine.close(game)
