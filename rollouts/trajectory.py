"""`Turn` and `Trajectory`: the record of an episode, in the exact token ids the engine produced.

Two sample modes decide what a training row is:

- `per_step`: every turn is a row, `turn.prompt_ids + turn.response_ids`; each prompt was rebuilt
  from the current observation and a window of recent (observation, action) pairs.
- `full_trajectory`: the episode is one row, `prompt_ids` followed by each turn's
  `response_ids + observation_ids`; only response tokens are trained on.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

SampleMode = Literal["per_step", "full_trajectory"]
SAMPLE_MODES: tuple[str, ...] = ("per_step", "full_trajectory")
Status = Literal["done", "truncated", "failed"]


@dataclass
class Turn:
    """One action of the agent and what came back."""

    response_ids: list[int]
    response_logprobs: list[float]
    prompt_ids: list[int] | None = None  # per_step: the whole prompt of this turn
    observation_ids: list[int] = field(default_factory=list)  # appended after the response
    reward: float = 0.0
    anchor: Hashable | None = None  # the state the action was taken in (GiGPO)
    entropy: float | None = None  # ARPO, see rollouts.entropy
    answer_logprob: float | None = None  # gold-answer log-prob after this turn (IGPO)
    invalid: bool = False  # format error, for penalties
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    finish_reason: str = "stop"
    version: int = 0  # policy version that started the response (the oldest that contributed)
    token_versions: list[int] | None = None  # per response token, when weights changed mid-turn
    prompt_tokens: int = 0  # context length the engine processed for this turn
    action: str = ""  # what the environment understood the response to mean
    observation: str = ""  # the observation text that followed (for viewing)
    gen_seconds: float = 0.0
    env_seconds: float = 0.0

    def __post_init__(self) -> None:
        if len(self.response_ids) != len(self.response_logprobs):
            raise ValueError(
                f"Turn: {len(self.response_ids)} response ids but "
                f"{len(self.response_logprobs)} logprobs"
            )


@dataclass
class Trajectory:
    """One episode. `uid` names the group of episodes that share a task and a start state."""

    uid: str
    traj_id: str
    mode: SampleMode
    prompt_ids: list[int]  # the first prompt (full_trajectory: the start of the row)
    turns: list[Turn] = field(default_factory=list)
    task_id: str = ""
    task_kind: str = ""
    parent_id: str | None = None  # ARPO: the trajectory this one branched from
    branch_turn: int | None = None  # ARPO: turns before this index are shared with the parent
    outcome_reward: float = 0.0  # episode score: the sum of the environment's step rewards
    success: bool = False
    status: Status = "done"
    info: dict[str, Any] = field(default_factory=dict)
    initial_observation: str = ""
    answer_logprob_prompt: float | None = None  # IGPO: gold-answer log-prob given the bare prompt
    wall_seconds: float = 0.0  # from reset to close (a branch counts its parent's time before it)

    @property
    def version(self) -> int:
        """The oldest policy version that produced any of this episode's responses."""
        return min((t.version for t in self.turns), default=0)

    def context_ids(self, turn: int) -> list[int]:
        """The ids the engine saw before generating turn `turn`."""
        if self.mode == "per_step":
            prompt = self.turns[turn].prompt_ids
            if prompt is None:
                raise ValueError(f"per_step trajectory {self.traj_id}: turn {turn} has no prompt_ids")
            return list(prompt)
        ids = list(self.prompt_ids)
        for t in self.turns[:turn]:
            ids += t.response_ids + t.observation_ids
        return ids

    def full_ids(self) -> list[int]:
        """full_trajectory: the whole token sequence of the episode."""
        ids = list(self.prompt_ids)
        for t in self.turns:
            ids += t.response_ids + t.observation_ids
        return ids

    def num_response_tokens(self) -> int:
        return sum(len(t.response_ids) for t in self.turns)

    @property
    def gen_seconds(self) -> float:
        """Time spent waiting for the engine, queueing included."""
        return sum(t.gen_seconds for t in self.turns)

    @property
    def env_seconds(self) -> float:
        """Time spent in environment steps and tool calls."""
        return sum(t.env_seconds for t in self.turns)

    @property
    def prompt_tokens(self) -> int:
        """Context tokens the engine processed over the episode (prefill work)."""
        return sum(t.prompt_tokens for t in self.turns)
