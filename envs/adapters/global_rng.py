"""A private copy of Python's and NumPy's global random state for one episode.

TextArena and GEM games draw from the global `random` (and `numpy.random`) and seed it on
reset. Episodes run side by side in one process, so each episode keeps its own state and
swaps it in around every call into the game: a game then plays the same for a seed whatever
else runs, and the trainer's own global random state is left as it was.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


class EpisodeRandom:
    """The global random state one episode's game sees; `active()` swaps it in and back."""

    def __init__(self, seed: int) -> None:
        outer = _capture()
        random.seed(seed)
        np.random.seed(seed % 2**32)
        self.state = _capture()
        _restore(outer)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Run the block with this episode's state; keep what the block drew, restore the rest."""
        outer = _capture()
        _restore(self.state)
        try:
            yield
        finally:
            self.state = _capture()
            _restore(outer)


def _capture() -> tuple[Any, Any]:
    return random.getstate(), np.random.get_state()


def _restore(state: tuple[Any, Any]) -> None:
    random.setstate(state[0])
    np.random.set_state(state[1])
