"""Evaluation: interval arithmetic by hand, the report of known episodes, `turnwise eval` on a run."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from turnwise.rollouts.trajectory import Trajectory, Turn
from turnwise.trainer.cli import main
from turnwise.trainer.evalstats import bootstrap_mean, k_values, pass_at_k, wilson
from turnwise.trainer.evaluate import build_report, format_table
from turnwise.trainer.recipe import load_recipe


def test_wilson_interval_by_hand():
    # 8/10, z = 1.96: centre (0.8 + 3.8415/20) / 1.38415 = 0.71674;
    # half 1.96 * sqrt(0.016 + 3.8415/400) / 1.38415 = 0.22658 -> [0.49016, 0.94331].
    est = wilson(8, 10)
    assert est.value == 0.8
    assert est.low == pytest.approx(0.49016, abs=1e-4) and est.high == pytest.approx(0.94331, abs=1e-4)
    # 0/6: [0, z^2 / (n + z^2)] = [0, 3.8415 / 9.8415] = [0, 0.39033].
    assert (wilson(0, 6).low, round(wilson(0, 6).high, 4)) == (0.0, 0.3903)
    assert wilson(5, 5).high == 1.0


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 3, 2) == 1.0  # n - c < k
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)  # pass@1 is the success rate
    assert k_values(8) == [1, 2, 4, 8] and k_values(6) == [1, 2, 4, 6]
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_cluster_bootstrap():
    # The mean is over all values (weights by task size): (1 + 0 + 1 + 1 + 1) / 5 = 0.8.
    est = bootstrap_mean([[1, 0], [1, 1, 1]])
    assert est.value == pytest.approx(0.8) and est.n == 5
    assert 0.5 <= est.low <= 0.8 <= est.high <= 1.0
    constant = bootstrap_mean([[2.0], [2.0], [2.0]])
    assert (constant.low, constant.high) == (2.0, 2.0)


def _traj(uid: str, kind: str, success: bool, turns: int, score: float | None = None) -> Trajectory:
    t = Trajectory(uid=uid, traj_id=f"{uid}/{success}", mode="per_step", prompt_ids=[1],
                   task_id=uid, task_kind=kind, success=success,
                   outcome_reward=10.0 if success else 0.0,
                   turns=[Turn([1], [0.0], tool_calls=[{"name": "search"}] * (i % 2))
                          for i in range(turns)])
    if score is not None:
        t.info["score"] = score
    return t


def test_report_of_known_episodes():
    trajs = [_traj("a", "heat", True, 4, 1.0), _traj("a", "heat", False, 6, 0.5),
             _traj("b", "cool", True, 2, 1.0), _traj("b", "cool", True, 2)]
    report = build_report(trajs, samples=2)
    m = report["metrics"]
    assert m["success"]["value"] == 0.75 and m["success"]["method"] == "wilson"
    # Task a: 1 of 2 -> pass@1 0.5, pass@2 1; task b: 2 of 2 -> 1 and 1.
    assert m["pass@1"]["value"] == pytest.approx(0.75) and m["pass@2"]["value"] == 1.0
    assert m["turns"]["value"] == 3.5  # (4 + 6 + 2 + 2) / 4
    assert m["tool_calls"]["value"] == pytest.approx(1.75)  # (2 + 3 + 1 + 1) / 4
    assert m["score"]["value"] == pytest.approx((1.0 + 0.5 + 1.0 + 10.0) / 4)  # no score: reward
    assert report["per_task_type"]["heat"]["success"]["value"] == 0.5
    assert report["per_task_type"]["cool"]["episodes"] == 2
    table = format_table(report, "t")
    assert "Wilson (episodes)" in table and "bootstrap (tasks)" in table and "heat" in table
    assert "evidence_found" not in m  # no evidence check in these episodes
    for t, found in zip(trajs, (1.0, 1.0, 0.0, 1.0), strict=True):
        t.info["evidence_found"] = found
    m = build_report(trajs, samples=2)["metrics"]
    # Found in 3 of 4 episodes (a/True, a/False, b/True); successes among them: 2 of 3.
    assert m["evidence_found"]["value"] == 0.75 and m["evidence_found"]["method"] == "wilson"
    assert m["success_given_evidence"]["value"] == pytest.approx(2 / 3)


@pytest.fixture()
def run_folder(tmp_path, tiny_path):
    cfg = load_recipe("household_grpo", ["rollout.max_turns=2", "rollout.max_tokens_per_turn=8",
                                         f"log.dir={tmp_path}"])
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    shutil.copytree(tiny_path, run / "policy")
    return run


def test_eval_cli_on_a_run(run_folder, capsys):
    assert main(["eval", str(run_folder), "--tasks", "3"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((run_folder / "eval-valid_seen.json").read_text())
    assert report["model"] == str(run_folder / "policy") and report["sampling"] == {"greedy": True}
    assert report["episodes_total"] == 3 and len(report["episodes"]) == 3
    assert report["metrics"]["turns"]["value"] == pytest.approx(
        sum(e["turns"] for e in report["episodes"]) / 3)
    assert "success" in printed and "pass@1" in printed
    assert (f"turnwise eval {run_folder}, policy {run_folder / 'policy'}: "
            "household/valid_seen, 3 tasks x 1 samples, greedy\n") in printed
    out = run_folder / "sampled.json"
    assert main(["eval", str(run_folder), "--split", "valid_unseen", "--samples", "2", "--sampled",
                 "--tasks", "2", "rollout.temperature=2.0", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["split"] == "valid_unseen" and report["sampling"]["temperature"] == 2.0
    assert report["episodes_total"] == 4 and {"pass@1", "pass@2"} <= set(report["metrics"])


def test_task_seed_gives_runs_of_different_seeds_the_same_tasks(run_folder):
    from turnwise.envs.base import make_suite

    cfg = load_recipe(str(run_folder / "config.yaml"), [])
    suite = make_suite(cfg.env.name, **cfg.env.options)

    def task_ids(*args: str) -> tuple[list[str], int]:
        out = run_folder / "ids.json"
        assert main(["eval", str(run_folder), "--tasks", "3", "--out", str(out), *args]) == 0
        report = json.loads(out.read_text())
        return [e["task_id"] for e in report["episodes"]], report["task_seed"]

    # By default: the tasks the training loop evaluates, drawn with the run's seed + 1.
    loop_tasks = [t.id for t in suite.tasks(cfg.eval.split, 3, cfg.seed + 1)]
    assert task_ids() == (loop_tasks, cfg.seed + 1)
    assert task_ids("seed=7") == ([t.id for t in suite.tasks(cfg.eval.split, 3, 8)], 8)
    # One --task-seed: the same tasks whatever the run's seed, and not the default ones.
    common = task_ids("--task-seed", "1000")
    assert task_ids("--task-seed", "1000", "seed=7") == common
    assert common[1] == 1000 and common[0] != loop_tasks
    # eval.task_seed in the recipe: the training loop's and turnwise eval's default draw
    assert task_ids("eval.task_seed=1000", "seed=7") == common
    assert task_ids("eval.task_seed=1000", "--task-seed", "5")[1] == 5  # the flag still wins


def test_the_loop_evaluates_the_tasks_eval_task_seed_draws(tmp_path, monkeypatch):
    """Runs of two seeds with one eval.task_seed draw their evaluation tasks alike."""
    from turnwise.envs.household import HouseholdSuite
    from turnwise.trainer.loop import train

    draws = []
    tasks = HouseholdSuite.tasks

    def recorded(self, split, n, seed=0):
        draws.append((split, n, seed))
        return tasks(self, split, n, seed)

    monkeypatch.setattr(HouseholdSuite, "tasks", recorded)
    for seed in (0, 1):
        cfg = load_recipe("household_grpo", [
            "train.iterations=0", "sft.episodes=0", "eval.tasks=3", "eval.task_seed=1000",
            f"seed={seed}", "log.quiet=true", "log.tensorboard=false", "log.plot_every=0",
            f"log.dir={tmp_path}", f"log.run_name=s{seed}", "log.save_trajectories=0"])
        train(cfg, echo=lambda *a: None)
    assert [d for d in draws if d[0] == cfg.eval.split] == [(cfg.eval.split, 3, 1000)] * 2


def test_policy_option_evaluates_another_model_folder(run_folder, tmp_path, tiny_path, capsys):
    start = tmp_path / "sft-start"
    shutil.copytree(tiny_path, start)
    # A run folder: its config, another model; the report goes beside the final policy's.
    assert main(["eval", str(run_folder), "--tasks", "2", "--policy", str(start)]) == 0
    assert f"turnwise eval {run_folder}, policy {start}: " in capsys.readouterr().out
    report = json.loads((run_folder / "eval-valid_seen-sft-start.json").read_text())
    assert report["model"] == str(start) and report["episodes_total"] == 2
    assert not (run_folder / "eval-valid_seen.json").exists()
    # A bundled recipe whose preset builds a tiny model: --policy replaces that model.
    out = tmp_path / "recipe.json"
    assert main(["eval", "household_grpo", "--tasks", "2", "--policy", str(start),
                 "rollout.max_turns=2", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["model"] == str(start)


def test_eval_cli_errors_name_the_problem(run_folder, tmp_path, capsys):
    assert main(["eval", str(run_folder), "--samples", "2"]) == 2
    assert "--sampled" in capsys.readouterr().err
    assert main(["eval", str(run_folder), "--split", "moon"]) == 2
    assert "allowed are" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 2
    assert "run folder" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'nope'}: no run folder, recipe file or bundled recipe" in err
    assert "runs/<name>, holding config.yaml and policy/" in err and "household_grpo" in err
    assert main(["eval", str(run_folder), "--policy", str(tmp_path / "nowhere")]) == 2
    assert "--policy=" in capsys.readouterr().err
