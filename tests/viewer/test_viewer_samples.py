"""Saved trajectory samples: whole groups, the batch's exact rows, per-token values by hand."""

from __future__ import annotations

import json

import pytest
from turnwise import credit
from turnwise.rollouts import build_batch
from turnwise.trainer.report.samples import TokenText, pick_groups, sample_records
from viewer_fixtures import (
    TRAINER_SHIFT,
    WORDS,
    ShiftedBackend,
    WordTokenizer,
    full_trajectories,
    per_step_trajectories,
)


def _records(trajs, per_turn, backend=None, chosen=None):
    batch = build_batch(trajs, pad_id=0)
    credit.assign_advantages(batch, per_turn)
    chosen = list(range(len(trajs))) if chosen is None else chosen
    trainer = None
    if backend is not None:
        from turnwise.trainer.report.samples import rows_of
        trainer = backend.forward_logprobs(batch.select(rows_of(batch, chosen)))
    return sample_records(1, trajs, per_turn, batch, chosen, TokenText(WordTokenizer()), trainer)


def test_pick_groups_prefers_groups_with_a_signal_and_keeps_them_whole():
    trajs, _ = per_step_trajectories()
    # groups: it0/0 = [0,1,2] rewards {1,0}; it0/1 = [3,4] rewards {0.5}; it0/2 = [5,6,7] {2,1,0}
    assert pick_groups(trajs, 16) == list(range(8))
    # ordered it0/0, it0/2, it0/1: take it0/0 (3), it0/2 would make 6 > 5, it0/1 makes 5
    assert pick_groups(trajs, 5) == [0, 1, 2, 3, 4]
    assert pick_groups(trajs, 6) == [0, 1, 2, 5, 6, 7]
    # no group fits in 1: the first informative group, cut
    assert pick_groups(trajs, 1) == [0]
    assert pick_groups(trajs, 0) == []


def test_per_step_record_holds_the_rows_the_trainer_gets(synthetic_run):
    path = synthetic_run.dir / "trajectories" / "iter_00001.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["traj_id"] for r in records] == [t.traj_id for t in per_step_trajectories()[0]]
    rec = records[1]  # it0/0/1: three turns, responses [4,5,6,3], [4,5,6,3,7], [4,5,6,3,7,8]
    assert rec["format"] == 1 and rec["iteration"] == 1 and rec["mode"] == "per_step"
    assert len(rec["rows"]) == 3
    row = rec["rows"][1]  # turn 1: prompt [1, 11, 7, 3] then the response
    assert row["ids"] == [1, 11, 7, 3, 4, 5, 6, 3, 7]
    assert row["spans"] == [[4, 9, 1]]
    assert row["loss_mask"] == [[0.0, 4], [1.0, 5]]
    assert row["advantages"] == [-0.6] * 5  # the turn's advantage on each of its tokens
    assert row["rollout_logprobs"] == [-0.1, -0.2, -0.3, -0.4, -0.5]
    assert row["trainer_logprobs"] == pytest.approx([x + TRAINER_SHIFT for x in
                                                     [-0.1, -0.2, -0.3, -0.4, -0.5]], abs=1e-5)
    assert [t["advantage"] for t in rec["turns"]] == [-0.4, -0.6, -0.2]
    # GiGPO step groups over the whole group it0/0: s0 x3 (every first turn), s2 x2, s1 x2
    assert [t["anchor"] for t in rec["turns"]] == ["s0", "s2", "s1"]
    assert [t["anchor_group_size"] for t in rec["turns"]] == [3, 2, 2]
    assert rec["turns"][1]["tool_calls"][0]["status"] == "error"
    assert rec["token_text"] == {str(i): WORDS[i] for i in (1, 3, 4, 5, 6, 7, 8, 11)}
    assert rec["turns"][2]["response_text"] == "go to kitchen\n take apple"


def test_full_trajectory_record_has_branch_and_information_gain(synthetic_run):
    path = synthetic_run.dir / "trajectories" / "iter_00002.jsonl"
    root, branch = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(branch["rows"]) == 1
    row = branch["rows"][0]
    # prompt [1,11,10,3] + turn 0 [7,8,2] + observation [3,12,13,14,3] + turn 1 [11,15,2]
    assert row["ids"] == [1, 11, 10, 3, 7, 8, 2, 3, 12, 13, 14, 3, 11, 15, 2]
    assert row["spans"] == [[4, 7, 0], [12, 15, 1]]
    # position 14 was masked out of the loss after the advantages were assigned
    assert row["loss_mask"] == [[0.0, 4], [1.0, 3], [0.0, 5], [1.0, 2], [0.0, 1]]
    assert row["advantages"] == [-0.7] * 6
    assert root["rows"][0]["loss_mask"] == [[0.0, 4], [1.0, 3], [0.0, 5], [1.0, 5]]
    # IG_t = answer_logprob_t - answer_logprob_{t-1}, with -2.0 for the bare prompt:
    # root: -1.5 - -2.0 = 0.5, -0.5 - -1.5 = 1.0; branch: 0.5, -1.8 - -1.5 = -0.3
    assert [t["info_gain"] for t in root["turns"]] == pytest.approx([0.5, 1.0])
    assert [t["info_gain"] for t in branch["turns"]] == pytest.approx([0.5, -0.3])
    assert branch["parent_id"] == "it1/0/0" and branch["branch_turn"] == 1
    assert [t["shared"] for t in branch["turns"]] == [True, False]
    assert [t["shared"] for t in root["turns"]] == [False, False]


def test_records_without_trainer_logprobs_and_for_a_subset():
    trajs, per_turn = full_trajectories()
    records = _records(trajs, per_turn, chosen=[1])
    assert [r["traj_id"] for r in records] == ["it1/0/1"]
    assert records[0]["rows"][0]["trainer_logprobs"] is None


def test_ids_that_differ_from_the_engines_are_an_error():
    trajs, per_turn = full_trajectories()
    batch = build_batch(trajs, pad_id=0)
    credit.assign_advantages(batch, per_turn)
    batch.input_ids[1, 13] = 9  # as if the trainer had re-tokenised the branch's last turn
    with pytest.raises(ValueError, match="it1/0/1 turn 1"):
        sample_records(1, trajs, per_turn, batch, [0, 1], TokenText(WordTokenizer()))


def test_runlog_saves_every_n_iterations_and_asks_the_trainer_once(tmp_path):

    from turnwise.trainer.config import Config, LogConfig, WandbConfig
    from turnwise.trainer.runlog import RunLog

    cfg = Config(log=LogConfig(dir=str(tmp_path), run_name="r", save_every=2, save_trajectories=3,
                               tensorboard=False, wandb=WandbConfig(mode="disabled")))
    log = RunLog(cfg.log, name=cfg.name, resolved=cfg.model_dump())
    trajs, per_turn = per_step_trajectories()
    batch = build_batch(trajs, pad_id=0)
    credit.assign_advantages(batch, per_turn)
    backend = ShiftedBackend()
    for iteration in (1, 2, 3):
        log.save_trajectories(iteration, trajs, per_turn, batch, backend, WordTokenizer())
    files = sorted(p.name for p in (tmp_path / "r" / "trajectories").iterdir())
    assert files == ["iter_00002.jsonl"]
    # limit 3: group it0/0 (3 trajectories; 2 + 3 + 2 turns = 7 per_step rows), one forward
    assert backend.calls == [7]
    lines = (tmp_path / "r" / "trajectories" / "iter_00002.jsonl").read_text().splitlines()
    assert [json.loads(x)["uid"] for x in lines] == ["it0/0"] * 3
    # the save's cost goes into the next record, once
    log.log({"iteration": 2})
    log.log({"iteration": 3})
    records = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["time/sample"] > 0 and "time/sample" not in records[1]
