"""A model critic: critiques written by a tiny model served by the hf engine, built through the
engine factory, in a feedback-turn episode of math_code."""

from __future__ import annotations

import asyncio

import pytest
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines.base import ChatPrompt, SamplingParams
from turnwise.envs.base import make_suite
from turnwise.envs.feedback import CritiqueRequest, RuleCritic
from turnwise.trainer.config import ModelConfig
from turnwise.trainer.critic import ModelCritic, critic_messages
from turnwise.trainer.models import load_tokenizer, resolve_model


async def _critique_and_replay(suite, tokenizer_path):
    """One wrong answer in a critique episode, and the critic's engine asked the same again."""
    task = suite.tasks("train", 1, 0)[0]
    response = "<answer>\\boxed{1}</answer>"
    env = suite.make()
    first = await env.reset(task)
    step = await env.step(response)
    await env.close()
    request = CritiqueRequest(task=task, question=first.text, response=response,
                              answer="\\boxed{1}", attempt=1)
    messages = critic_messages(request, verdict="Your answer \\boxed{1} is wrong.",
                               reveal_answer=False)
    formatter = ChatFormatter(load_tokenizer(tokenizer_path))
    again = await suite.critic.engine.generate(  # greedy: the same ids as the critique's
        ChatPrompt(formatter.encode(messages), messages),
        SamplingParams(max_tokens=12, temperature=0.0, seed=0))
    await suite.close()
    return step, formatter.decode(again.token_ids).strip()


@pytest.mark.slow
@pytest.mark.parametrize(("model", "writes"), [("tiny:math_code", True),
                                               ("tiny:household", False)])
def test_a_model_critic_writes_the_feedback_the_agent_reads(model, writes):
    path = resolve_model(ModelConfig(name=model))
    critic = {"kind": "model", "model": model, "engine": {"kind": "hf", "device": "cpu"},
              "max_tokens": 12, "temperature": 0.0}
    suite = make_suite("feedback", suite="math_code", kind="critique", critic=critic)
    assert suite.critic.engine is None  # checking a recipe loads no model
    step, expected = asyncio.run(_critique_and_replay(suite, path))
    assert not step.done and step.observation.role == "user"
    # The untrained tiny models are seeded: math_code's repeats a number, household's writes
    # only new lines, which strip to nothing.
    assert bool(expected) == writes, (model, expected)
    if writes:
        assert step.observation.text == expected and step.info["feedback"] == "wrong_value"
    else:  # the verifier's reason stands in, and the metrics say so
        assert step.observation.text == "Your answer \\boxed{1} is wrong."
        assert step.info["feedback"] == "empty_critique"


def test_the_critic_prompt_holds_task_response_verdict_and_only_a_revealed_answer():
    from turnwise.envs.base import Task

    request = CritiqueRequest(task=Task(id="t", answer="7"), question="What is 3 + 4?",
                              response="<answer>\\boxed{8}</answer>", answer="\\boxed{8}")
    hidden = critic_messages(request, verdict="Your answer \\boxed{8} is wrong.",
                             reveal_answer=False)
    assert [m["role"] for m in hidden] == ["system", "user"]
    assert hidden[1]["content"] == ("Task:\nWhat is 3 + 4?\n\nStudent's response:\n"
                                    "<answer>\\boxed{8}</answer>\n\nVerifier: Your answer "
                                    "\\boxed{8} is wrong.\n\nCritique:")
    shown = critic_messages(request, verdict="wrong", reveal_answer=True)
    assert "Correct answer: 7" in shown[1]["content"]


@pytest.mark.parametrize(("options", "message"), [
    ({"model": "m", "engine": {"kind": "tgi"}},
     r"env.options.critic.engine.kind='tgi': Input should be 'hf', 'vllm', 'server' or 'openai'"),
    ({"model": "m", "max_tokens": 0}, r"env.options.critic.max_tokens=0: .*greater than or equal"),
    ({"model": "m", "temprature": 0.5}, r"env.options.critic.temprature=0.5: Extra inputs"),
    ({"model": "m", "engine": {"kind": "server"}}, r"engine.kind='server' needs engine.urls"),
])
def test_bad_model_critic_options_name_the_key(options, message):
    with pytest.raises(ValueError, match=message):
        ModelCritic.from_options(options, verdict=RuleCritic())
