"""Experts for TextArena games that have a known solution, writing moves in TextArena's syntax.

TextArena ships no solutions; these two play optimally from the game's own messages, so the
`textarena` suite can give SFT demonstrations and prove its tasks solvable for them.
"""

from __future__ import annotations

import re

from ..base import Observation


class GuessTheNumberExpert:
    """Bisects the range the rules state, narrowing it with each 'higher' / 'lower' hint."""

    def __init__(self) -> None:
        self.low: int | None = None
        self.high: int | None = None
        self.guess: int | None = None

    def act(self, observation: Observation) -> str:
        text = observation.text
        if self.low is None:
            found = re.search(r"between (\d+) and (\d+)", text)
            if found is None:
                raise ValueError(f"GuessTheNumber expert: no range in the rules {text[:200]!r}")
            self.low, self.high = int(found.group(1)), int(found.group(2))
        elif "is higher" in text:
            self.low = self.guess + 1
        elif "is lower" in text:
            self.high = self.guess - 1
        self.guess = (self.low + self.high) // 2
        return f"[{self.guess}]"


class TowerOfHanoiExpert:
    """The 2^n - 1 moves of the recursive solution, from tower A to tower C."""

    def __init__(self) -> None:
        self.moves: list[str] | None = None

    def act(self, observation: Observation) -> str:
        if self.moves is None:
            found = re.search(r"Tower of Hanoi with (\d+) disks", observation.text)
            if found is None:
                raise ValueError(f"TowerOfHanoi expert: no disk count in {observation.text[:200]!r}")
            self.moves = _hanoi(int(found.group(1)), "A", "C", "B")
        return f"[{self.moves.pop(0)}]" if self.moves else "[A C]"


def _hanoi(disks: int, source: str, target: str, spare: str) -> list[str]:
    if disks == 0:
        return []
    return (_hanoi(disks - 1, source, spare, target) + [f"{source} {target}"]
            + _hanoi(disks - 1, spare, target, source))


# Game family (the id before "-v0") -> expert class.
EXPERTS = {"GuessTheNumber": GuessTheNumberExpert, "TowerOfHanoi": TowerOfHanoiExpert}
