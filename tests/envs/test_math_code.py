"""Math problems: exact answers, boxed parsing, and solution programs that print the answer."""

from __future__ import annotations

import contextlib
import io
from fractions import Fraction

import pytest
from turnwise.envs.math_code import (
    GENERATORS,
    MathCodeTasks,
    extract_boxed,
    format_answer,
    is_correct,
    parse_number,
)


def test_boxed_extraction():
    assert extract_boxed(r"so \boxed{3} but finally \boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert extract_boxed(r"\boxed{ {a}{b} }") == "{a}{b}"
    assert extract_boxed(r"\fbox{7}") == "7"
    assert extract_boxed(r"\boxed{12") is None  # cut off mid-answer
    assert extract_boxed("42") is None


@pytest.mark.parametrize("text, value", [
    ("42", Fraction(42)), ("-7", Fraction(-7)), ("1,234,567", Fraction(1234567)),
    ("12.35", Fraction(247, 20)), ("$12.35", Fraction(247, 20)), (r"\$1,000.50", Fraction(2001, 2)),
    ("3/4", Fraction(3, 4)), (r"-\frac{3}{4}", Fraction(-3, 4)), (r"\dfrac{6}{8}", Fraction(3, 4)),
    (r"15 \text{ dollars}", Fraction(15)), ("0.5.", Fraction(1, 2)),
])
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "x+1", "1/0", "two", "1.2.3"])
def test_parse_number_rejects(text):
    assert parse_number(text) is None


def test_format_and_check_exactly():
    assert format_answer(Fraction(247, 20)) == "12.35"
    assert format_answer(Fraction(-1, 8)) == "-0.125"
    assert format_answer(Fraction(1, 3)) == "1/3"
    assert format_answer(Fraction(10)) == "10"
    assert is_correct(r"The answer is \boxed{12.35}.", "247/20")
    assert is_correct(r"\boxed{\frac{247}{20}}", "12.35")
    assert not is_correct(r"\boxed{12.3500001}", "12.35")  # no tolerance
    assert not is_correct("12.35", "12.35")  # no box, no credit


def test_solution_programs_print_the_answer():
    tasks = MathCodeTasks()
    problems = tasks.tasks("train", 3 * len(GENERATORS), seed=11)
    assert {t.kind for t in problems} == set(GENERATORS)
    for task in problems:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(task.data["solution_code"], {})
        assert parse_number(out.getvalue().strip()) == parse_number(task.answer), task
        steps = tasks.oracle_steps(task)
        assert [s.kind for s in steps] == ["code", "answer"]
        assert tasks.reward(task, tasks.oracle(task).render(steps[-1])) == 1.0


def test_expert_answers_are_right_on_every_problem():
    tasks = MathCodeTasks()
    for split in ("train", "valid", "test"):
        for task in tasks.tasks(split, 100, seed=2):
            assert tasks.reward(task, tasks.oracle(task).render(tasks.oracle_steps(task)[-1])) == 1.0


def test_determinism_and_splits():
    tasks = MathCodeTasks(kinds=["modular_power", "leftover"])
    a = tasks.tasks("train", 20, seed=3)
    assert [t.data for t in a] == [t.data for t in tasks.tasks("train", 20, seed=3)]
    test = {t.data["question"] for t in tasks.tasks("test", 20, seed=3)}
    assert not test & {t.data["question"] for t in a}
    assert MathCodeTasks().prompt(a[0]).endswith(a[0].data["question"])
    with pytest.raises(ValueError, match="env.options.kinds"):
        MathCodeTasks(kinds=["calculus"])


def test_expert_answers_a_fixed_share_directly():
    mixed = MathCodeTasks(kinds=["leftover"], direct=0.5)
    problems = mixed.tasks("train", 400, seed=0)
    direct = [t for t in problems if mixed.answers_directly(t)]
    assert 160 < len(direct) < 240  # a fair draw per task id
    for task in problems[:40]:
        steps = mixed.oracle_steps(task)
        kinds = [s.kind for s in steps]
        assert kinds == (["answer"] if task in direct else ["code", "answer"])
        assert steps[-1] == mixed.solution_steps(task)[-1]  # the direct answer is still right
        assert mixed.reward(task, mixed.oracle(task).render(steps[-1])) == 1.0
    # The draw depends on the task alone: another instance, same choice.
    assert [MathCodeTasks(kinds=["leftover"], direct=0.5).answers_directly(t) for t in problems] \
        == [mixed.answers_directly(t) for t in problems]
    assert not any(MathCodeTasks(kinds=["leftover"]).answers_directly(t) for t in problems)
    assert all(MathCodeTasks(kinds=["leftover"], direct=1).answers_directly(t) for t in problems)
    # The tokenizer corpus always spells out the programs, so the share leaves it unchanged.
    assert list(mixed.corpus()) == list(MathCodeTasks(kinds=["leftover"]).corpus())


@pytest.mark.parametrize("direct", [-0.1, 1.5, "half", True])
def test_direct_share_is_checked(direct):
    with pytest.raises(ValueError, match="env.options.oracle_direct"):
        MathCodeTasks(direct=direct)
