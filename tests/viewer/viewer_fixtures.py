"""A small run folder written through the real RunLog path from hand-made trajectories.

Iteration 1 is per_step (GiGPO-style anchors, a failing tool call), iteration 2 is
full_trajectory (an ARPO branch and IGPO answer log-probs). Advantages are set by hand, so a test
knows the colour every token must have.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from turnwise import credit
from turnwise.rollouts import Trajectory, Turn, build_batch
from turnwise.trainer.config import Config, LogConfig, WandbConfig

WORDS = ["<pad>", "<|im_start|>", "<|im_end|>", "\n", "go", " to", " kitchen", " take", " apple",
         " put", " table", " look", "Nothing", " happens", ".", "<b>&amp;</b>"]
TRAINER_SHIFT = -0.05  # the fake trainer's log-probs: the rollout's plus this
MASKED_POSITION = 14  # iteration 2, the branch's row: its last token (eos of turn 1) has mask 0


class WordTokenizer:
    """decode() of a fixed word list: enough for records and the viewer."""

    def decode(self, ids, skip_special_tokens=False):
        return "".join(WORDS[i] for i in ids)


class ShiftedBackend:
    """forward_logprobs = the batch's rollout log-probs + TRAINER_SHIFT on trained tokens."""

    def __init__(self) -> None:
        self.calls = []

    def forward_logprobs(self, batch):
        self.calls.append(batch.num_rows)
        return batch.old_logprobs + TRAINER_SHIFT * batch.loss_mask


def _turn(response, anchor=None, prompt=None, **kw) -> Turn:
    logprobs = [round(-0.1 * (k + 1), 3) for k in range(len(response))]
    return Turn(response_ids=response, response_logprobs=logprobs, prompt_ids=prompt,
                anchor=anchor, **kw)


def per_step_trajectories() -> tuple[list[Trajectory], list[np.ndarray]]:
    def traj(uid, n, reward, success, kind, anchors, tool_turn=None):
        turns = []
        for t, anchor in enumerate(anchors):
            calls = []
            if t == tool_turn:
                calls = [{"id": "c1", "name": "search", "arguments": {"q": "apple"},
                          "status": "error", "result": "", "error": "index offline"}]
            turns.append(_turn([4, 5, 6, 3, 7, 8, 2][: 3 + t + n % 3], anchor=anchor,
                               prompt=[1, 11, 6 + t, 3], observation="Nothing happens.",
                               action="go to kitchen", tool_calls=calls,
                               error="index offline" if calls else None))
        return Trajectory(uid=uid, traj_id=f"{uid}/{n}", mode="per_step", prompt_ids=[1, 11, 6, 3],
                          turns=turns, task_id=f"household/train/{uid}", task_kind=kind,
                          outcome_reward=reward, success=success, status="done",
                          initial_observation="You are in a room. <script>alert(1)</script>")

    trajs = [
        traj("it0/0", 0, 1.0, True, "pick", ["s0", "s1"]),
        traj("it0/0", 1, 0.0, False, "pick", ["s0", "s2", "s1"], tool_turn=1),
        traj("it0/0", 2, 0.0, False, "pick", ["s0", "s2"]),
        traj("it0/1", 0, 0.5, False, "clean", ["t0", "t1"]),
        traj("it0/1", 1, 0.5, False, "clean", ["t0", "t1"]),
        traj("it0/2", 0, 2.0, True, "clean", ["u0", "u1"]),
        traj("it0/2", 1, 1.0, False, "clean", ["u0", "u1"]),
        traj("it0/2", 2, 0.0, False, "clean", ["u0", "u1"]),
    ]
    adv = [[0.8, 1.2], [-0.4, -0.6, -0.2], [-0.4, -0.5], [0.0, 0.0], [0.0, 0.0],
           [1.5, 1.0], [0.0, 0.0], [-1.5, -0.9]]
    return trajs, [np.array(a) for a in adv]


def full_trajectories() -> tuple[list[Trajectory], list[np.ndarray]]:
    shared = _turn([7, 8, 2], observation_ids=[3, 12, 13, 14, 3], answer_logprob=-1.5,
                   observation="Nothing happens.")
    root = Trajectory(uid="it1/0", traj_id="it1/0/0", mode="full_trajectory",
                      prompt_ids=[1, 11, 10, 3], task_id="search/q7", task_kind="search",
                      turns=[shared, _turn([9, 8, 5, 10, 2], answer_logprob=-0.5)],
                      outcome_reward=1.0, success=True, answer_logprob_prompt=-2.0)
    branch = Trajectory(uid="it1/0", traj_id="it1/0/1", mode="full_trajectory",
                        prompt_ids=[1, 11, 10, 3], task_id="search/q7", task_kind="search",
                        turns=[shared, _turn([11, 15, 2], answer_logprob=-1.8)],
                        parent_id="it1/0/0", branch_turn=1, outcome_reward=0.0, success=False,
                        answer_logprob_prompt=-2.0)
    return [root, branch], [np.array([0.7, 0.7]), np.array([-0.7, -0.7])]


@dataclass
class SyntheticRun:
    dir: Path
    iterations: dict[int, tuple[list[Trajectory], list[np.ndarray]]]
    backend: ShiftedBackend


def write_run(root: Path, name: str = "synthetic") -> SyntheticRun:
    from turnwise.trainer.runlog import RunLog

    cfg = Config(name=name, log=LogConfig(dir=str(root), run_name=name, tensorboard=False,
                                          wandb=WandbConfig(mode="disabled")))
    log = RunLog(cfg.log, name=cfg.name, resolved=cfg.model_dump())
    backend = ShiftedBackend()
    iterations = {1: per_step_trajectories(), 2: full_trajectories()}
    for it, (trajs, per_turn) in iterations.items():
        batch = build_batch(trajs, pad_id=0)
        credit.assign_advantages(batch, per_turn)
        if it == 2:  # as if a filter had masked the branch's final token out of the loss
            batch.loss_mask[1, MASKED_POSITION] = 0.0
        log.save_trajectories(it, trajs, per_turn, batch, backend, WordTokenizer())
        log.log({"iteration": it,
                 "rollout/reward": float(np.mean([t.outcome_reward for t in trajs])),
                 "rollout/success": float(np.mean([t.success for t in trajs])),
                 "train/pg_loss": 0.1 / it, "train/loss": 0.1 / it, "train/approx_kl": 1e-3 * it,
                 "train/entropy": 2.0 - it, "train/clipfrac": 0.01 * it,
                 "rollout/turns": 2.0, "rollout/response_tokens": 9.0, "rollout/turn_tokens": 4.5,
                 "rollout/tool_calls": 0.1, "rollout/tool_error_rate": 1.0,
                 "time/generation": 2.0, "time/tools": 0.5, "time/credit": 0.1,
                 "time/update": 1.0, "time/sync": 0.2})
    log.close()
    return SyntheticRun(log.dir, iterations, backend)
