"""The feedback evidence report's arithmetic, on run folders written by hand."""

from __future__ import annotations

import json

import pytest

from benchmarks.learning import feedback


def _eval(single, again, critique):
    """feedback_eval.json: single-attempt success, try-again success@1..3, critique @1..2."""
    return {"single": {"eval/success": single, "eval/reward": single},
            "try_again": {f"feedback/success@{k + 1}": v for k, v in enumerate(again)}
            | {"feedback/attempts_per_solve": 1.5},
            "critique": {f"feedback/success@{k + 1}": v for k, v in enumerate(critique)}}


def _run(runs, recipe, seed, evaluation):
    folder = runs / f"{recipe}-s{seed}"
    folder.mkdir(parents=True)
    rows = [{"iteration": i, "rollout/episodes": 16.0, "rollout/response_tokens": 10.0,
             "rollout/success": 0.5, "time/iteration": 3.0} for i in (1, 2)]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (folder / "feedback_eval.json").write_text(json.dumps(evaluation))


def test_pairs_are_seed_by_seed_differences_of_the_same_measure(tmp_path):
    runs = tmp_path / "runs"
    _run(runs, "code_agent", 0, _eval(0.50, [0.50, 0.60, 0.70], [0.50, 0.55]))
    _run(runs, "code_agent", 1, _eval(0.40, [0.40, 0.50, 0.50], [0.40, 0.45]))
    _run(runs, "code_ufo", 0, _eval(0.55, [0.55, 0.80, 0.90], [0.55, 0.60]))
    _run(runs, "code_ufo", 1, _eval(0.40, [0.40, 0.60, 0.70], [0.40, 0.50]))
    _run(runs, "code_critique", 0, _eval(0.60, [0.60, 0.60, 0.60], [0.60, 0.70]))
    (runs / "code-sft0").mkdir()
    (runs / "code-sft0" / "feedback_eval.json").write_text(
        json.dumps(_eval(0.10, [0.10, 0.20, 0.30], [0.10, 0.15])))
    report = feedback.collect(["code"], [0, 1], runs)["code"]
    pairs = {(p["method"], p["measure"]): p for p in report["pairs"]}
    # code_ufo - code_agent: single 0.55 - 0.50 = +0.05 and 0.40 - 0.40 = 0; @3: +0.20, +0.20.
    assert pairs["code_ufo", "single_success"]["per_seed"] == pytest.approx([0.05, 0.0])
    assert pairs["code_ufo", "try_again@3"]["per_seed"] == pytest.approx([0.20, 0.20])
    assert pairs["code_ufo", "try_again@3"]["diff"]["mean"] == pytest.approx(0.20)
    # Only seed 0 has both critique and baseline: 0.70 - 0.55 = +0.15, no interval from one.
    critique = pairs["code_critique", "critique@2"]
    assert critique["seeds"] == [0] and critique["per_seed"] == pytest.approx([0.15])
    assert critique["ci95"] is None
    # 2 iterations x 16 episodes x 10 tokens.
    assert report["methods"]["ufo"]["seeds"][0]["budget"]["generated_tokens"] == 320.0
    table = feedback.render({"code": report})
    assert "| code | SFT start | - | 10.0 | 10.0 | 10.0 | 20.0 | 30.0 | 1.50 |" in table
    assert "| code_ufo | code_agent | try_again@3 | 20.0 ± 0.0 |" in table
