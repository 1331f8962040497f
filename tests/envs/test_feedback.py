"""Feedback turns (envs.feedback) on the real suites: search_qa, math_code and a user's ToolEnv,
driven step by step and through the real episode loop."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines.base import Completion, SamplingParams
from turnwise.envs.base import Observation, Step, Task, make_suite, register_suite
from turnwise.envs.feedback import (
    FeedbackEnv,
    FeedbackMark,
    FeedbackSettings,
    FeedbackStats,
    attempt_reward,
)
from turnwise.envs.scripted import ScriptedOracle, ScriptStep
from turnwise.envs.tool_env import ToolEnvFactory
from turnwise.rollouts.episode import EpisodeSettings, run_episode
from turnwise.tools.search import bm25_search_tool


def play(env, task, actions):
    """Reset `env` on `task`, send `actions`, close; the steps."""

    async def run():
        await env.reset(task)
        steps = [await env.step(a) for a in actions]
        await env.close()
        return steps

    return asyncio.run(run())


def boxed(value) -> str:
    return f"<answer>\\boxed{{{value}}}</answer>"


# ------------------------------------------------------------------------ the reward of an attempt


def test_attempt_reward_decays_with_the_attempt_and_pays_for_repeats():
    # Attempt 1: 0.5^0 x 1 = 1. Attempt 3: 0.5^2 x 1 = 0.25.
    assert attempt_reward(1.0, 1, decay=0.5, answers=["a"], repeat_penalty=0.5) == 1.0
    assert attempt_reward(1.0, 3, decay=0.5, answers=["a", "b", "c"], repeat_penalty=0.5) == 0.25
    # Answers a, a, b: 2 distinct of 3, penalty 0.5 x (1 - 2/3) = 1/6; 0.25 - 1/6 = 1/12.
    assert attempt_reward(1.0, 3, decay=0.5, answers=["a", "a", "b"],
                          repeat_penalty=0.5) == pytest.approx(1 / 12)
    # A partial score (F1 0.4) at attempt 2 with decay 0.8: 0.8 x 0.4 = 0.32.
    assert attempt_reward(0.4, 2, decay=0.8, answers=["x", "y"],
                          repeat_penalty=0.0) == pytest.approx(0.32)
    # No decay: the answer's own reward whatever the attempt.
    assert attempt_reward(0.7, 2, decay=1.0, answers=["x", "x"], repeat_penalty=0.0) == 0.7


# ------------------------------------------------------------------------------------- math_code


def test_try_again_on_math_code_until_the_right_value():
    suite = make_suite("feedback", suite="math_code", kind="try_again", max_attempts=3,
                       decay=0.5, repeat_penalty=0.5)
    task = suite.tasks("train", 1, 0)[0]
    first, second, third = play(suite.make(), task, [boxed(1), boxed(1), boxed(task.answer)])
    for step, attempt in ((first, 2), (second, 3)):
        assert not step.done and step.reward == 0.0 and step.info["success"] is False
        assert step.observation.text == "Let's try again." and step.observation.role == "user"
        assert step.observation.anchor == FeedbackMark(attempt, 0.0, "Let's try again.")
        assert step.info["feedback"] == "try_again" and "score" not in step.info
    # Solved at attempt 3 after answers 1, 1: 0.5^2 - 0.5 x (1 - 2/3) = 1/12.
    assert third.done and third.info["success"] and third.info["attempts"] == 3
    assert third.reward == pytest.approx(1 / 12) and third.info["score"] == 1.0
    metrics = suite.tool_metrics(reset=True)
    assert metrics["tools/python/calls"] == 0.0  # the wrapped suite's counters come through
    assert {k: v for k, v in metrics.items() if k.startswith("feedback/")} == {
        "feedback/episodes": 1.0, "feedback/attempts": 3.0, "feedback/attempts_per_solve": 3.0,
        "feedback/repeat_rate": 0.5,  # retries: answers 2 and 3; answer 2 repeats answer 1
        "feedback/success@1": 0.0, "feedback/success@2": 0.0, "feedback/success@3": 1.0,
        "feedback/reason/try_again": 1.0}
    assert suite.tool_metrics() == {"tools/python/calls": 0.0, "tools/python/errors": 0.0,
                                    "tools/python/timeouts": 0.0}  # reset


def test_a_right_first_answer_ends_at_once_with_the_full_reward_and_own_text():
    suite = make_suite("feedback", suite="math_code", text="Wrong. Try again.", decay=0.5)
    task = suite.tasks("train", 1, 0)[0]
    (step,) = play(suite.make(), task, [boxed(task.answer)])
    assert step.done and step.reward == 1.0 and step.info["attempts"] == 1
    (wrong, _) = play(suite.make(), task, [boxed(2), boxed(task.answer)])
    assert wrong.observation.text == "Wrong. Try again."


def test_the_last_attempt_ends_the_episode_and_is_scored_decayed():
    suite = make_suite("feedback", suite="math_code", max_attempts=2, decay=0.5)
    task = suite.tasks("train", 1, 0)[0]
    first, last = play(suite.make(), task, [boxed(1), boxed(2)])
    assert not first.done and last.done and last.reward == 0.0
    assert last.info["success"] is False and last.info["attempts"] == 2
    stats = suite.tool_metrics(reset=True)
    assert stats["feedback/success@2"] == 0.0 and math.isnan(stats["feedback/attempts_per_solve"])


def test_rule_critiques_on_math_code_name_the_verifiers_reason():
    suite = make_suite("feedback", suite="math_code", kind="critique", max_attempts=4)
    task = suite.tasks("train", 1, 0)[0]
    steps = play(suite.make(), task, ["<answer>42</answer>", "<answer>\\boxed{x}</answer>",
                                      boxed(1), boxed(task.answer)])
    texts = [s.observation.text for s in steps[:3]]
    assert texts == ["Your answer has no value in \\boxed{}: write it as \\boxed{value}.",
                     "The boxed value 'x' is not a number.",
                     "Your answer \\boxed{1} is wrong."]
    assert [s.info["feedback"] for s in steps[:3]] == ["format", "format", "wrong_value"]
    # Four answers with no decay set: the default 0.5 gives 0.5^3 = 0.125.
    assert steps[3].reward == 0.125
    revealing = make_suite("feedback", suite="math_code", kind="critique",
                           critic={"kind": "rule", "reveal_answer": True})
    (step, _) = play(revealing.make(), task, [boxed(1), boxed(task.answer)])
    assert step.observation.text == (f"Your answer \\boxed{{1}} is wrong. The correct answer is "
                                     f"{task.answer}.")


# ------------------------------------------------------------------------------------- search_qa


@pytest.fixture(scope="module")
def search():
    return make_suite("feedback", suite="search_qa", kind="critique", max_attempts=3, decay=0.8,
                      suite_options={"hops": [1], "top_k": 1})


def test_search_critiques_tell_missing_evidence_from_a_misread_passage(search):
    task = search.tasks("train", 1, 3)[0]
    query = task.data["hops"][0]["query"]
    steps = play(search.make(), task, ["<answer>Atlantis</answer>", f"<search>{query}</search>",
                                       "<answer>Atlantis</answer>", f"<answer>{task.answer}</answer>"])
    assert steps[0].info["feedback"] == "evidence"
    assert steps[0].observation.text.startswith("None of the passages you retrieved")
    assert task.answer in steps[1].observation.text  # the search found the passage
    assert steps[2].info["feedback"] == "wrong_value"
    assert steps[2].observation.text == "Your answer Atlantis is wrong."
    # Exact match at attempt 3: F1 1.0 x 0.8^2 = 0.64; score and evidence describe that answer.
    assert steps[3].done and steps[3].reward == pytest.approx(0.64)
    assert steps[3].info["score"] == 1.0 and steps[3].info["evidence_found"] is True


def test_a_partial_answer_is_a_wrong_one_and_the_last_keeps_its_decayed_f1():
    suite = make_suite("feedback", suite="search_qa", max_attempts=2, decay=0.5,
                       suite_options={"hops": [1]})
    task = next(t for t in suite.tasks("train", 20, 0) if len(t.answer.split()) >= 2)
    half = task.answer.split()[0]  # one word of a longer answer: F1 > 0, no exact match
    first, last = play(suite.make(), task, [f"<answer>{half}</answer>", f"<answer>{half}</answer>"])
    f1 = 2 * (1 / 1) * (1 / len(task.answer.split())) / (1 + 1 / len(task.answer.split()))
    assert not first.done and first.reward == 0.0 and first.observation.anchor.score == \
        pytest.approx(f1)
    assert last.done and last.reward == pytest.approx(0.5 * f1)
    assert last.info["score"] == pytest.approx(f1) and not last.info["success"]


def scripted(replies, formatter):
    replies = list(replies)

    async def act(prompt_ids, obs, params: SamplingParams) -> Completion:
        ids = formatter.tokenizer.encode(replies.pop(0), add_special_tokens=False) + \
            [formatter.eos_id]
        return Completion(token_ids=ids, logprobs=[0.0] * len(ids), finish_reason="stop")

    return act


def test_the_episode_loop_records_attempt_marks_and_the_final_score(search, tokenizer):
    task = search.tasks("valid", 1, 1)[0]
    query = task.data["hops"][0]["query"]
    replies = ["<answer>nobody</answer>", f"<search>{query}</search>",
               f"<answer>{task.answer}</answer>"]
    formatter = ChatFormatter(tokenizer)
    traj = asyncio.run(run_episode(scripted(replies, formatter), search.make(), task, formatter,
                                   EpisodeSettings(max_turns=6), uid="u", traj_id="t"))
    assert traj.status == "done" and traj.success and len(traj.turns) == 3
    assert traj.turns[1].anchor == FeedbackMark(2, 0.0, traj.turns[0].observation)
    assert traj.turns[0].observation.startswith("None of the passages")
    assert traj.outcome_reward == pytest.approx(0.8) and traj.info["score"] == 1.0
    # The feedback went into the conversation as a user turn the model saw.
    assert "None of the passages" in tokenizer.decode(traj.turns[0].observation_ids)
    search.tool_metrics(reset=True)


def test_an_episode_cut_short_counts_as_unsolved_at_close():
    suite = make_suite("feedback", suite="math_code", max_attempts=3)
    task = suite.tasks("train", 1, 0)[0]
    play(suite.make(), task, [boxed(1)])  # closed after one wrong answer (a turn budget)
    play(suite.make(), task, [boxed(task.answer)])
    stats = suite.tool_metrics(reset=True)
    assert stats["feedback/episodes"] == 2.0 and stats["feedback/success@1"] == 0.5
    assert stats["feedback/attempts"] == 1.0 and stats["feedback/success@3"] == 0.5


# --------------------------------------------------------------------------- a user's own ToolEnv


DOCS = [{"id": "1", "title": "Paris", "text": "Paris is the capital of France."},
        {"id": "2", "title": "Rome", "text": "Rome is the capital of Italy."}]


class CapitalSuite:
    """A user's suite: one ToolEnv over two documents, exact-match reward."""

    name = "capitals_for_feedback_test"

    def __init__(self, path: str) -> None:
        self.factory = ToolEnvFactory(
            [bm25_search_tool(path, top_k=1)],
            lambda answer, task: float(answer.strip() == task.answer), parser="xml")

    def make(self):
        return self.factory()

    def tasks(self, split, count, seed):
        return [Task(id=f"c{i}", answer="Paris",
                     data={"question": "What is the capital of France?"}) for i in range(count)]

    def oracle(self, task):
        return ScriptedOracle([ScriptStep("search", "France"), ScriptStep("answer", "Paris")])

    def corpus(self):
        return []


def test_a_users_tool_env_suite_gets_feedback_turns(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in DOCS))
    register_suite("capitals_for_feedback_test")(CapitalSuite)
    suite = make_suite("feedback", suite="capitals_for_feedback_test",
                       suite_options={"path": str(path)}, max_attempts=2, decay=0.5)
    task = suite.tasks("train", 1, 0)[0]
    steps = play(suite.make(), task, ["<answer>Rome</answer>", "<search>France</search>",
                                      "<answer>Paris</answer>"])
    assert steps[0].observation.text == "Let's try again."
    assert steps[1].observation.text.startswith("<information>")
    assert steps[2].done and steps[2].reward == 0.5 and steps[2].info["success"]


# ----------------------------------------------------------------------------------- the contract


class NoAnswer:
    """An environment that ends its episode without saying what the answer was."""

    system_prompt = ""

    async def reset(self, task):
        return Observation("go")

    async def step(self, action_text):
        return Step(Observation("over"), reward=1.0, done=True, info={"success": True})

    async def close(self):
        pass


def test_an_environment_without_a_final_answer_is_refused():
    env = FeedbackEnv(NoAnswer(), FeedbackSettings(), critic=None, stats=FeedbackStats(3))
    with pytest.raises(ValueError, match=r"without info\['answer'\].*ToolEnv"):
        play(env, Task(id="t"), ["anything"])


def test_fork_continues_the_attempts_independently():
    suite = make_suite("feedback", suite="math_code", max_attempts=3)
    task = suite.tasks("train", 1, 0)[0]

    async def run():
        env = suite.make()
        await env.reset(task)
        await env.step(boxed(1))
        twin = env.fork()
        right = await twin.step(boxed(task.answer))
        wrong = await env.step(boxed(2))
        return right, wrong, env.answers, twin.answers

    right, wrong, mine, theirs = asyncio.run(run())
    assert right.done and right.reward == 0.5 and not wrong.done
    assert mine == ["\\boxed{1}", "\\boxed{2}"] and theirs == ["\\boxed{1}", f"\\boxed{{{task.answer}}}"]


@pytest.mark.parametrize(("options", "message"), [
    ({"kind": "hint"}, r"env.options.kind='hint': allowed are \['try_again', 'critique'\]"),
    ({"max_attempts": 0}, r"env.options.max_attempts=0: allowed is an integer >= 1"),
    ({"decay": 0.0}, r"env.options.decay=0.0: allowed is 0 < decay <= 1"),
    ({"decay": 1.5}, r"env.options.decay=1.5"),
    ({"text": " "}, r"env.options.text=' ': allowed is a non-empty string"),
    ({"kind": "critique", "text": "Nope."}, r"text='Nope.' is set with kind='critique'"),
    ({"critic": {"kind": "rule"}}, r"env.options.critic is set with kind='try_again'"),
    ({"kind": "critique", "critic": {"kind": "oracle"}},
     r"critic.kind='oracle': allowed are \['rule', 'model'\]"),
    ({"kind": "critique", "critic": {"kind": "rule", "reveal": True}},
     r"unknown \['reveal'\] for kind 'rule'; allowed are \['kind', 'reveal_answer'\]"),
    ({"kind": "critique", "critic": {"kind": "model"}}, r"env.options.critic.model: Field required"),
    ({"repeat_penalty": -1}, r"repeat_penalty=-1: allowed is >= 0"),
    ({"suite": "feedback"}, r"the wrapped suite must be another one"),
    ({"suite": "math_cod"}, r"env.name='math_cod': did you mean 'math_code'"),
    ({"suite_options": {"parsr": "xml"}}, r"env.options.suite='math_code'.*unknown \['parsr'\]"),
    ({"attempts": 2}, r"env.options for 'feedback': unknown \['attempts'\]"),
])
def test_bad_options_name_the_key_the_value_and_what_is_allowed(options, message):
    with pytest.raises(ValueError, match=message):
        make_suite("feedback", **{"suite": "math_code", **options})
