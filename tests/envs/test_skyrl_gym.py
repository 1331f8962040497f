"""The `skyrl_gym` suite: SkyRL-gym's real gsm8k environments on rows from a local file."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from turnwise.envs import make_suite
from turnwise.envs.base import EnvUnavailable

SYSTEM = "Solve the problem; end with the answer after ####."


def _rows(env_class: str, count: int) -> list[dict]:
    return [{"data_source": "local", "env_class": env_class,
             "prompt": [{"role": "system", "content": SYSTEM},
                        {"role": "user", "content": f"Ann has {n} apples and buys 3. How many?"}],
             "reward_spec": {"method": "rule", "ground_truth": str(n + 3)},
             "extra_info": {"max_turns": 3}} for n in range(count)]


@pytest.fixture()
def data(tmp_path):
    train, valid = tmp_path / "train.jsonl", tmp_path / "valid.json"
    train.write_text("\n".join(json.dumps(r) for r in _rows("gsm8k_multi_turn", 6)))
    valid.write_text(json.dumps(_rows("gsm8k", 4)))
    return {"train": str(train), "valid": str(valid)}


async def _play(suite, task, replies):
    env = suite.make()
    first = await env.reset(task)
    steps = [first]
    for reply in replies:
        steps.append(await env.step(reply))
        if steps[-1].done:
            break
    system = env.system_prompt
    await env.close()
    return system, steps


def test_rows_play_in_skyrl_gyms_own_environments(data):
    suite = make_suite("skyrl_gym", data=data, answer_format="#### {answer}")
    task = suite.tasks("train", 1, seed=0)[0]
    system, (first, *steps) = asyncio.run(_play(suite, task, [suite.oracle(task).act(None)]))
    assert system == SYSTEM and first.text.startswith("Ann has") and task.kind == "gsm8k_multi_turn"
    assert steps[-1].done and steps[-1].reward == 1.0 and steps[-1].info["success"]
    # a wrong answer in the right format earns gsm8k_multi_turn's format score each turn
    _, (_, *wrong) = asyncio.run(_play(suite, task, ["#### 0"] * 5))
    assert len(wrong) == 3 and wrong[-1].done and not wrong[-1].info["success"]
    assert [s.reward for s in wrong] == pytest.approx([0.2 / 3] * 3)
    assert wrong[0].observation.text.startswith("Please provide your step-by-step reasoning")
    for task in suite.tasks("valid", 4, seed=1):  # single-turn gsm8k
        _, (_, step) = asyncio.run(_play(suite, task, [suite.oracle(task).act(None)]))
        assert step.done and step.reward == 1.0
    assert [t.id for t in suite.tasks("valid", 6, 2)] == [t.id for t in suite.tasks("valid", 6, 2)]


def test_bad_data_names_the_file_and_what_is_allowed(data, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"split='test': allowed are \['train', 'valid'\]"):
        make_suite("skyrl_gym", data=data).tasks("test", 1, 0)
    with pytest.raises(ValueError, match=r"answer_format.*sft.episodes: 0"):
        suite = make_suite("skyrl_gym", data=data)
        suite.oracle(suite.tasks("train", 1, 0)[0])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": []}\n')
    with pytest.raises(ValueError, match=r"broken.jsonl' row 0 lacks prompt or env_class"):
        make_suite("skyrl_gym", data={"train": str(broken)})
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"cannot read '.*broken.jsonl'"):
        make_suite("skyrl_gym", data={"train": str(broken)})
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({**_rows("gsm8k", 1)[0], "env_class": "chess"}))
    with pytest.raises(ValueError, match=r"env_class \['chess'\] not registered in SkyRL-gym"):
        make_suite("skyrl_gym", data={"train": str(odd)})
    monkeypatch.setitem(sys.modules, "skyrl_gym", None)
    with pytest.raises(EnvUnavailable, match=r"skyrl-gym==0.4.0"):
        make_suite("skyrl_gym", data=data)
