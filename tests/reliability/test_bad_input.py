"""Bad input stops at start with a message naming the problem: malformed recipes, unknown keys,
wrong types, missing or empty files, bad dataset rows (or, with env.options.skip_bad_rows, the
bad rows are left out and counted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fault_ledger import record
from turnwise.envs import make_suite
from turnwise.trainer.recipe import RecipeError, load_recipe

GOOD_ROW = {"question": "capital of France?", "golden_answers": ["Paris"],
            "context": [["Paris", ["Paris is the capital of France."]]]}


def write_recipe(tmp_path, text: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


RECIPES = [
    ("train: {iterations: 3\n", "not valid YAML"),
    ("- a\n- b\n", "the top level must be a mapping, got list"),
    ("trainer: {iterations: 3}\n", "trainer: unknown key"),
    ("train: {iterations: three}\n", "train.iterations: Input should be a valid integer"),
    ("rollout: {max_turns: 0}\n", "rollout.max_turns: Input should be greater than or equal to 1"),
    ("rollout: {step_timeout: -5}\n", "rollout.step_timeout: Input should be greater than 0"),
    ("rollout: {mode: sideways}\n", "rollout.mode: Input should be 'per_step' or 'full_trajectory'"),
    ("resume: /no/such/run\n", "resume='/no/such/run': no such folder"),
    ("env: {name: search_qa, options: {source: files, data_files: {train: /no/such.jsonl}}}\n",
     "search_qa: data file '/no/such.jsonl' does not exist"),
    ("env: {name: search_qa, options: {source: files}}\n",
     "env.options.data_files is required with source='files'"),
    ("env: {name: search_qa, options: {sauce: files}}\n", "env.options for 'search_qa': unknown"),
]


@pytest.mark.parametrize("text, message", RECIPES)
def test_bad_recipes_stop_with_the_problem_named(tmp_path, text, message):
    with pytest.raises(RecipeError) as caught:
        load_recipe(write_recipe(tmp_path, text))
    assert message in str(caught.value), str(caught.value)
    record("input", "recipe: " + message.split(":")[0][:40], 1, 1)


@pytest.mark.slow
def test_the_cli_reports_a_bad_recipe_without_a_traceback(tmp_path):
    path = write_recipe(tmp_path, "train: {iterations: three, bogus: 1}\n")
    run = subprocess.run([sys.executable, "-m", "turnwise.trainer.cli", "train", path],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    out = run.stdout + run.stderr
    assert "train.iterations" in out and "train.bogus: unknown key" in out
    record("input", "cli: bad recipe, no traceback", 1, 1)


def write_rows(path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


BAD_ROWS = [
    ('{"question": "q1", "golden_answers": ["a"]', "not valid JSON"),
    ('["a list", "not an object"]', "a row must be a JSON object, got list"),
    ('{"golden_answers": ["a"]}', "no 'question' (a non-empty string)"),
    ('{"question": 42, "answers": ["a"]}', "no 'question' (a non-empty string)"),
    ('{"question": "no answer here"}', "no gold answer"),
]


def test_bad_dataset_rows_stop_naming_file_and_line(tmp_path):
    good = json.dumps(GOOD_ROW)
    for bad, problem in BAD_ROWS:
        path = write_rows(tmp_path / "qa.jsonl", [good, "", bad, good])
        with pytest.raises(ValueError) as caught:
            make_suite("search_qa", source="files", data_files={"train": path})
        # Line 3: the blank line 2 is counted, as an editor counts it.
        assert str(caught.value).startswith(f"{path}:3: {problem}"), str(caught.value)
        assert "env.options.skip_bad_rows=true leaves them out" in str(caught.value)
    record("input", "dataset: bad row stops (file:line named)", len(BAD_ROWS), len(BAD_ROWS))


def test_bad_rows_are_skipped_and_counted_when_the_recipe_says_so(tmp_path, capsys):
    good = json.dumps(GOOD_ROW)
    path = write_rows(tmp_path / "qa.jsonl", [good] + [bad for bad, _ in BAD_ROWS] + [good])
    suite = make_suite("search_qa", source="files", data_files={"train": path},
                       skip_bad_rows=True)
    assert len(suite.qa.skipped) == len(BAD_ROWS)
    assert [s.split(": ", 1)[0] for s in suite.qa.skipped] == [f"{path}:{n}" for n in range(2, 7)]
    assert f"search_qa skipped {len(BAD_ROWS)} bad row(s)" in capsys.readouterr().err
    tasks = suite.tasks("train", 4, 0)
    assert {t.data["question"] for t in tasks} == {"capital of France?"}
    record("input", "dataset: bad rows skipped and counted", len(BAD_ROWS), len(BAD_ROWS))


def test_empty_and_unreadable_datasets_stop(tmp_path):
    empty = write_rows(tmp_path / "empty.jsonl", [])
    with pytest.raises(ValueError, match=f"search_qa: {empty} holds no usable question"):
        make_suite("search_qa", source="files", data_files={"train": empty})
    only_bad = write_rows(tmp_path / "bad.jsonl", ["{oops"])
    with pytest.raises(ValueError, match=r"holds no usable question \(1 bad row\(s\) skipped\)"):
        make_suite("search_qa", source="files", data_files={"train": only_bad},
                   skip_bad_rows=True)
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="binary.jsonl: not UTF-8 text"):
        make_suite("search_qa", source="files", data_files={"train": str(binary)})
    good = write_rows(tmp_path / "qa.jsonl", [json.dumps(GOOD_ROW)])
    corpus = write_rows(tmp_path / "corpus.jsonl", [json.dumps({"title": "no text"})])
    with pytest.raises(ValueError, match=r"corpus.jsonl:1: a document needs 'text'"):
        make_suite("search_qa", source="files", data_files={"train": good}, corpus_file=corpus)
    wrong = tmp_path / "qa.csv"
    wrong.write_text("question,answer\n")
    with pytest.raises(ValueError, match=r"must end in one of \['.json', '.jsonl', '.parquet'\]"):
        make_suite("search_qa", source="files", data_files={"train": str(wrong)})
    record("input", "dataset: empty / all bad / not UTF-8 / bad corpus / wrong type", 5, 5)
