"""The learning report's arithmetic, on run folders written by hand."""

from __future__ import annotations

import json

import pytest
import yaml

from benchmarks.learning import report


def _run(tmp_path, recipe, seed, before, after, curve, calls=0.0, held=(0.0, 0.0)):
    folder = tmp_path / f"{recipe}-s{seed}"
    folder.mkdir()
    rows = [{"iteration": -1, "sft/rows": 100.0}, {"iteration": 0, "eval/success": before}]
    rows += [{"iteration": len(curve), "eval/success": after}]
    rows += [{"iteration": i + 1, "rollout/episodes": 10.0, "rollout/success": s,
              "rollout/response_tokens": 5.0, "rollout/tool_calls": calls, "time/iteration": 2.0}
             for i, s in enumerate(curve)]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (folder / "summary.json").write_text(json.dumps(
        {"eval_before": {"eval/success": before, "eval/tool_calls": held[0]},
         "eval_after": {"eval/success": after, "eval/tool_calls": held[1]}}))
    (folder / "config.yaml").write_text(yaml.safe_dump({"eval": {"tasks": 64, "split": "v"}}))
    return {"recipe": recipe, "seed": seed, "run": str(folder), "wall_seconds": 30.0}


def test_paired_gains_and_budget_by_hand(tmp_path):
    records = [_run(tmp_path, "a", 0, 0.10, 0.30, [0.1, 0.5], calls=2.0, held=(0.5, 1.0)),
               _run(tmp_path, "a", 1, 0.10, 0.50, [0.2, 0.4], calls=2.0, held=(0.25, 0.5)),
               _run(tmp_path, "b", 0, 0.10, 0.20, [0.1, 0.1]),
               _run(tmp_path, "b", 1, 0.10, 0.20, [0.0, 0.2])]
    report.write_report(records, {"a": "b", "b": None}, tmp_path / "out")
    out = json.loads((tmp_path / "out" / "report.json").read_text())
    a = out["recipes"]["a"]
    assert a["after"]["mean"] == pytest.approx(0.40)  # (0.3 + 0.5) / 2
    assert a["after"]["std"] == pytest.approx(0.1414, abs=1e-4)  # sample std of 0.3, 0.5
    assert a["gain"]["mean"] == pytest.approx(0.30)
    # 2 iterations x 10 episodes; solved 10 * (0.1 + 0.5) = 6; tool calls 2 * 20 = 40
    assert a["budget"]["episodes"] == 20 and a["budget"]["solved_episodes"] == pytest.approx(6)
    assert a["tool_calls_per_solved"]["mean"] == pytest.approx((40 / 6 + 40 / 6) / 2)
    assert out["runs"][0]["eval_curve"] == [[0, 0.10], [2, 0.30]]  # held-out, by iteration
    (pair,) = out["comparisons"]
    assert pair["per_seed"] == pytest.approx([0.10, 0.30])  # a - b, seed by seed
    # mean 0.2, sample std 0.1414, t(1) = 12.706: 0.2 -+ 12.706 * 0.1414 / sqrt(2) = 0.2 -+ 1.2706
    assert pair["ci95"] == pytest.approx([-1.0706, 1.4706], abs=1e-4)
    assert (tmp_path / "out" / "report.png").stat().st_size > 10_000
    assert a["eval_tool_calls_before"]["mean"] == pytest.approx(0.375)  # (0.5 + 0.25) / 2
    table = (tmp_path / "out" / "report.md").read_text()
    # gains 0.2, 0.4: mean .3, std .1414; t(1) 12.706 * .1414 / sqrt 2 = 1.2706
    assert ("| a | eval/success | 10.0 ± 0.0 | 40.0 ± 14.1 | 30.0 ± 14.1 [-97.1, +157.1] |"
            in table)
    assert "| 6.7 ± 0.0 | 0.38 -> 0.75 |" in table  # calls per solved; held-out calls
    assert ("| b | eval/success | 10.0 ± 0.0 | 20.0 ± 0.0 | 10.0 ± 0.0 [+10.0, +10.0] | 2 | 2 "
            "| 20 | - | - |" in table)  # no tools: both tool columns are '-'
    assert "| a | b | 20.0 ± 14.1 | [-107.1, +147.1] | +10.0, +30.0 |" in table
    assert report.interval95([0.1]) is None
    # five values 1..5: mean 3, std 1.5811, t(4) = 2.776 -> 3 -+ 1.963
    assert report.interval95([1, 2, 3, 4, 5]) == pytest.approx((1.0371, 4.9629), abs=1e-3)
    assert report._calls({"eval_tool_calls_before": {"mean": None},
                          "eval_tool_calls_after": {"mean": 0.5}}) == "n/a -> 0.50"


def test_runs_go_in_waves_that_train_each_sft_model_once():
    from benchmarks.learning.run import schedule

    first, rest = schedule(["household_gigpo", "household_grpo", "search_grpo", "search_arpo"],
                           [0, 1])
    # One run per family trains (and caches) its SFT model before any other of the family starts.
    assert first == [("household_gigpo", 0), ("search_grpo", 0)]
    assert rest == [("household_grpo", 0), ("search_arpo", 0), ("household_gigpo", 1),
                    ("household_grpo", 1), ("search_grpo", 1), ("search_arpo", 1)]


def test_search_evidence_table_and_start_policies_by_hand(tmp_path):
    from benchmarks.learning import evidence

    def rec(recipe, seed, found, reading, f1):
        before = {"evidence_found": 0.8, "success_given_evidence": 0.3, "reward": 0.27}
        return {"recipe": recipe, "seed": seed, "start": "sft", "before": before,
                "after": {"evidence_found": found, "success_given_evidence": reading,
                          "reward": f1}}

    records = [rec("search_grpo", 0, 0.80, 0.40, 0.33), rec("search_grpo", 1, 0.86, 0.39, 0.36),
               rec("search_igpo", 0, 0.85, 0.35, 0.32), rec("search_igpo", 1, 0.84, 0.34, 0.32)]
    table = evidence.render(records)
    # igpo found after: 0.85, 0.84 -> 84.5 ± 0.7; reading 0.35, 0.34 -> 34.5 ± 0.7
    assert "| search_igpo | 2 | 80.0 ± 0.0 | 84.5 ± 0.7 | 30.0 ± 0.0 | 34.5 ± 0.7 |" in table
    # found: +5 and -2 points -> mean 1.5, std 4.95; t(1) 12.706 * 4.95 / sqrt 2 = 44.5
    assert "| search_igpo | found | 1.5 ± 4.9 | [-43.0, +46.0] | +5.0, -2.0 |" in table
    assert "| search_igpo | reading | -5.0 ± 0.0 |" in table

    def run(name, summary, log=None, threads=1):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / "config.yaml").write_text(yaml.safe_dump(
            {"model": {"name": "tiny"}, "env": {"name": "search_qa"}, "sft": {"epochs": 10},
             "train": {"threads": threads}, "credit": {"estimator": name}}))
        if log is not None:
            (tmp_path / f"{name}.log").write_text(log)
        return folder

    new = run("a", {"sft_policy": "/c/sft-1"})
    old = run("b", {}, log="run folder: x\nsft: cached policy /c/sft-1\neval before: 0.2\n")
    unknown = run("c", {}, log="sft: 4000 rows, loss 2.1 -> 0.3\n")
    other = run("d", {}, threads=2)
    assert evidence.start_policy(new) == evidence.start_policy(old) == "/c/sft-1"
    assert evidence.start_policy(unknown) is None and evidence.start_policy(other) is None
    # Equal model, env and sft settings share a start whatever the estimator; threads do not.
    assert evidence.sft_settings(unknown) == evidence.sft_settings(new)
    assert evidence.sft_settings(other) != evidence.sft_settings(new)
    # Finished runs with their starts: "c" borrows "a"'s (same settings), "d" has none
    # (skipped), an unfinished run "e" is left out.
    for folder, seed in ((new, 0), (old, 1), (unknown, 2), (other, 3)):
        (folder / "done.json").write_text(json.dumps({"recipe": "search_grpo", "seed": seed}))
    run("e", {"sft_policy": "/c/sft-2"})
    found = [(f.name, done["seed"], start) for f, done, start in
             evidence.finished_runs(sorted(tmp_path.glob("?")))]
    assert found == [("a", 0, "/c/sft-1"), ("b", 1, "/c/sft-1"), ("c", 2, "/c/sft-1")]


def test_common_task_reeval_pairs_seeds_and_counts_tasks_by_hand():
    from benchmarks.learning import reeval

    def record(recipe, seed, before, after):
        score = lambda per_task: sum(per_task) / len(per_task)
        return {"recipe": recipe, "seed": seed, "start": "sft",
                "before": {"score": score(before), "per_task": dict(zip("wxyz", before))},
                "after": {"score": score(after), "per_task": dict(zip("wxyz", after))}}

    start = [0, 0, 1, 0]
    records = [record("household_gigpo", 0, start, [1, 1, 1, 0]),
               record("household_gigpo", 1, start, [1, 0, 1, 0]),
               record("household_grpo", 0, start, [1, 0, 1, 1]),
               record("household_grpo", 1, start, [0, 0, 1, 0]),
               record("search_grpo", 0, start, [0, 0, 0, 0])]  # no partner: no comparison
    summary = reeval.summarize(records, tasks=4, task_seed=9)
    gigpo = summary["recipes"]["household_gigpo"]
    assert gigpo["before"] == {"mean": 0.25, "std": 0.0, "n": 2} and gigpo["starts"] == 1
    assert gigpo["after"]["mean"] == pytest.approx(0.625)  # (0.75 + 0.5) / 2
    assert gigpo["gain"]["mean"] == pytest.approx(0.375)
    (c,) = summary["comparisons"]
    assert (c["method"], c["baseline"], c["seeds"]) == ("household_gigpo", "household_grpo", [0, 1])
    assert c["per_seed"] == pytest.approx([0.0, 0.25])  # 0.75 - 0.75, 0.5 - 0.25
    # Seed 0: x better, z worse; seed 1: w better.
    assert (c["tasks_better"], c["tasks_worse"]) == (2, 1)
    table = reeval.render(summary)
    assert "4 common held-out tasks (task seed 9" in table and "| 2 / 1 |" in table
    assert "+0.0, +25.0" in table


def _saved(anchors, rewards, advantages=None):
    return {"turns": [{"anchor": a, "reward": r, "invalid": False,
                       **({} if advantages is None else {"advantage": advantages[i]})}
                      for i, (a, r) in enumerate(zip(anchors, rewards))]}


def test_gigpo_signal_counts_by_hand():
    from benchmarks.learning import gigpo_signal

    options = {"gamma": 0.5, "omega": 1.0, "norm": "mean", "invalid_penalty": 0.0}
    # Five fast successes (s0 -> s1, 10 at the end), one slow (s0 -> s2 -> s1), one failure.
    group = [_saved(["s0", "s1"], [0, 10])] * 5 + [_saved(["s0", "s2", "s1"], [0, 0, 10]),
                                                   _saved(["s0", "s3"], [0, 0])]
    c = gigpo_signal.group_signal(group, options)
    # A^E: row scores 10 (13 rows) and 0 (2 rows), mean 130/15: successes +1.333, failure -8.667.
    # Returns at s0: 5 (x5), 2.5 (slow), 0 (failure), mean 27.5/7 = 3.929: A^S +1.071, -1.429,
    # -3.929; s1 returns are all 10 (A^S 0); s2 and s3 are alone (A^S 0).
    assert (c["steps"], c["grouped"], c["step_signal"], c["both"]) == (15, 13, 7, 7)
    assert c["agree"] == 6  # the slow success's first step: A^S < 0 < A^E
    assert c["flipped"] == 1  # 1.333 - 1.429 < 0: GiGPO pushes that step down, GRPO up
    assert not c["flat"] and c["step_only"] == 0
    # All succeed: no episode signal, but the slower path's first step is ranked below.
    flat = gigpo_signal.group_signal([_saved(["s0", "s1"], [0, 10]),
                                      _saved(["s0", "s2", "s1"], [0, 0, 10])], options)
    assert flat["flat"] and (flat["step_signal"], flat["both"], flat["flipped"]) == (2, 0, 0)
    assert flat["step_only"] == 2 and flat["logged_diff"] is None  # no logged advantages
    # The advantages the trainer would have logged: A^E 0, A^S at s0 +1.25 / -1.25, else 0.
    logged = gigpo_signal.group_signal([_saved(["s0", "s1"], [0, 10], [1.25, 0.0]),
                                        _saved(["s0", "s2", "s1"], [0, 0, 10], [-1.0, 0, 0])],
                                       options)
    assert logged["logged_diff"] == pytest.approx(0.25)  # -1.0 logged where -1.25 is right
