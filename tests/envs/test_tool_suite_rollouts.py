"""Tool suites through the training path: full_trajectory rollouts with the tiny model, exact ids,
oracle demonstrations, `turnwise eval` scores, one `turnwise train` iteration from a recipe."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
import yaml
from turnwise.agent.chat import ChatFormatter
from turnwise.agent.engines import make_engine
from turnwise.agent.engines.base import Completion
from turnwise.envs import make_suite, suite_tool_schemas
from turnwise.envs.base import Observation, Task
from turnwise.rollouts import build_batch
from turnwise.rollouts.episode import EpisodeSettings, run_episode
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.trainer.cli import main
from turnwise.trainer.config import ModelConfig
from turnwise.trainer.evaluate import evaluate_policy
from turnwise.trainer.models import resolve_model

FULL = EpisodeSettings(mode="full_trajectory", max_turns=3, max_tokens_per_turn=24,
                       max_episode_tokens=1024)


@pytest.fixture(scope="module")
def search_path() -> str:
    return resolve_model(ModelConfig(name="tiny:search_qa"))


@pytest.fixture(scope="module")
def search_tokenizer(search_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(search_path)


class Recording:
    """An engine that remembers every (prompt ids, completion ids) it served."""

    def __init__(self, engine) -> None:
        self.engine, self.calls = engine, []

    async def generate(self, prompt_ids, params, *, session=None):
        completion = await self.engine.generate(prompt_ids, params)
        self.calls.append((list(prompt_ids), list(completion.token_ids)))
        return completion


def test_full_trajectory_rollout_keeps_the_engine_ids(search_path, search_tokenizer):
    suite = make_suite("search_qa")
    formatter = ChatFormatter(search_tokenizer)
    engine = Recording(make_engine("hf", search_path, search_tokenizer))
    orchestrator = Orchestrator(engine, suite, formatter, FULL)
    trajs = asyncio.run(orchestrator.rollout(suite.tasks("train", 2, 0), group_size=2, tag="it",
                                             seed=3))
    assert len(trajs) == 4 and sum(len(t.turns) for t in trajs) == len(engine.calls)
    for traj in trajs:
        assert traj.mode == "full_trajectory" and traj.status != "failed" and traj.turns
        for t, turn in enumerate(traj.turns):
            # What the engine saw for turn t is the row so far; what it said is the response.
            assert (traj.context_ids(t), turn.response_ids) in engine.calls
            assert turn.observation_ids or t == len(traj.turns) - 1
            if turn.observation_ids:
                closing = "" if turn.response_ids[-1] == formatter.eos_id else "<|im_end|>"
                assert search_tokenizer.decode(turn.observation_ids) == (
                    f"{closing}\n<|im_start|>user\n{turn.observation}<|im_end|>\n"
                    "<|im_start|>assistant\n")
    batch = build_batch(trajs, pad_id=search_tokenizer.pad_token_id)
    for row, traj in enumerate(trajs):
        ids = traj.full_ids()
        assert batch.input_ids[row, :len(ids)].tolist() == ids
        assert batch.loss_mask[row].sum().item() == traj.num_response_tokens()


@pytest.mark.parametrize("parser", ["xml", "hermes"])
def test_demonstrations_are_the_whole_conversation_token_for_token(parser, search_tokenizer):
    suite = make_suite("search_qa", parser=parser)
    formatter = ChatFormatter(search_tokenizer, tools=suite_tool_schemas(suite))
    orchestrator = Orchestrator(None, suite, formatter, FULL)
    tasks = [t for t in suite.tasks("valid", 9, 1) if t.kind != "3-hop"]
    demos = asyncio.run(orchestrator.demonstrations(tasks, tag="sft"))
    for task, traj in zip(tasks, demos, strict=True):
        assert traj.status == "done" and traj.success and traj.info["score"] == 1.0
        assert sum(len(t.tool_calls) for t in traj.turns) == len(task.data["hops"])
        messages = [{"role": "system", "content": suite.system_prompt},
                    {"role": "user", "content": task.data["question"]}]
        for turn in traj.turns:
            messages.append({"role": "assistant", "content": formatter.decode(turn.response_ids)})
            if turn.observation_ids:
                messages.append({"role": "tool" if parser == "hermes" else "user",
                                 "content": turn.observation})
        # Appending ids turn by turn gives what rendering the finished conversation would.
        assert traj.full_ids() + formatter.after_eos == formatter.encode(
            messages, add_generation_prompt=False)
    if parser == "hermes":
        assert '"name": "search"' in search_tokenizer.decode(demos[0].prompt_ids)


class Says:
    """An engine that answers every prompt with one fixed text."""

    def __init__(self, tokenizer, text: str) -> None:
        self.ids = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]

    async def generate(self, prompt_ids, params, *, session=None):
        return Completion(list(self.ids), [0.0] * len(self.ids), "stop")


def test_eval_reports_the_f1_score_apart_from_the_reward(search_tokenizer):
    suite = make_suite("search_qa", metric="em")
    tasks = [t for t in suite.tasks("test", 40, 2) if len(t.answer.split()) == 2][:2]
    # Both answers are a two-word company; say only its first word: F1 2/3, exact match 0.
    engine = Says(search_tokenizer, f"<answer>{tasks[0].answer.split()[0]}</answer>")
    orchestrator = Orchestrator(engine, suite, ChatFormatter(search_tokenizer), FULL)
    trajs, metrics = asyncio.run(evaluate_policy(orchestrator, tasks[:1], settings=FULL,
                                                 tag="eval"))
    assert metrics["eval/score"] == pytest.approx(2 / 3) and metrics["eval/reward"] == 0.0
    assert metrics["eval/success"] == 0.0 and trajs[0].info["score"] == pytest.approx(2 / 3)


def test_a_failing_step_still_closes_the_env(search_tokenizer):
    closed = []

    class Broken:
        system_prompt = ""

        async def reset(self, task):
            return Observation("q")

        async def step(self, action_text):
            raise RuntimeError("backend down")

        async def close(self):
            closed.append(True)

    async def act(prompt_ids, obs, params):
        return Completion([1, 2], [0.0, 0.0], "stop")

    traj = asyncio.run(run_episode(act, Broken(), Task(id="x"), ChatFormatter(search_tokenizer),
                                   FULL, uid="u", traj_id="t"))
    assert traj.status == "failed" and "backend down" in traj.info["error"] and closed == [True]


def _recipe(tmp_path, name: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "model": {"name": "tiny:search_qa"}, "env": {"name": "search_qa"},
        "rollout": {"mode": "full_trajectory"}, "eval": {"split": "valid"}}))
    return str(path)


@pytest.mark.slow
def test_minimal_recipe_trains_one_iteration_and_logs_tool_metrics(tmp_path, search_path):
    recipe = _recipe(tmp_path, "search-min")
    assert main(["train", recipe, "train.iterations=1", "rollout.tasks_per_iteration=2",
                 "rollout.group_size=2", "rollout.max_turns=2", "rollout.max_tokens_per_turn=16",
                 "sft.episodes=4", "sft.epochs=1", "eval.tasks=0", "env.options.parser=hermes",
                 f"log.dir={tmp_path}", "log.run_name=r", "log.save_trajectories=1"]) == 0
    (record,) = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text()
                 .splitlines() if json.loads(line)["iteration"] == 1]
    # Counted by the executor this iteration (the SFT demonstrations' searches are not in it).
    calls = record["rollout/tool_calls"] * record["rollout/episodes"]
    assert record["tools/search/calls"] == calls and record["tools/search/errors"] == 0
    assert "rollout/tool_error_rate" in record and record["rollout/episodes"] == 4
    lines = (tmp_path / "r" / "trajectories" / "iter_00001.jsonl").read_text().splitlines()
    saved = json.loads(lines[0])
    assert saved["mode"] == "full_trajectory"
    # Hermes: the chat template lists the search tool's schema in the system turn.
    row = saved["rows"][0]
    prompt = "".join(saved["token_text"][str(i)] for i in row["ids"][:row["spans"][0][0]])
    assert '<tools>\n{"type": "function", "function": {"name": "search"' in prompt


def test_eval_cli_on_a_search_run_reports_score(tmp_path, search_path, capsys):
    from turnwise.trainer.recipe import load_recipe

    cfg = load_recipe(_recipe(tmp_path, "search-eval"), ["rollout.max_turns=2",
                                                         "rollout.max_tokens_per_turn=12"])
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    shutil.copytree(search_path, run / "policy")
    assert main(["eval", str(run), "--tasks", "3"]) == 0
    report = json.loads((run / "eval-valid.json").read_text())
    assert report["env"] == "search_qa" and report["episodes_total"] == 3
    scores = [e["score"] for e in report["episodes"]]
    assert report["metrics"]["score"]["value"] == pytest.approx(sum(scores) / 3)
    assert "score" in capsys.readouterr().out


def test_rollout_summary_counts_tool_errors_and_timeouts():
    from turnwise.rollouts.metrics import summarize
    from turnwise.rollouts.trajectory import Trajectory, Turn

    def turn(*statuses, error=None):
        return Turn([1], [0.0], tool_calls=[{"status": s} for s in statuses], error=error)

    a = Trajectory("u", "a", "full_trajectory", [0],
                   turns=[turn("ok", "error", error="search: boom"), turn("timeout", error="t")])
    b = Trajectory("u", "b", "full_trajectory", [0], turns=[turn(), turn("ok")])
    stats = summarize([a, b])
    # Calls: 2 + 1 + 0 + 1 = 4 over 2 episodes; failed: error + timeout = 2 of 4 -> 0.5;
    # timeouts: 1 over 2 episodes -> 0.5; turns with an error: 2 over 2 episodes -> 1.0.
    assert stats["rollout/tool_calls"] == 2.0 and stats["rollout/tool_error_rate"] == 0.5
    assert stats["rollout/tool_timeouts"] == 0.5 and stats["rollout/tool_errors"] == 1.0
    assert summarize([b])["rollout/tool_error_rate"] == 0.0
    assert "rollout/evidence_found" not in stats  # no evidence check, no such metric


def test_rollout_summary_separates_finding_from_reading():
    from turnwise.rollouts.metrics import summarize
    from turnwise.rollouts.trajectory import Trajectory

    def episode(name, found, success):
        t = Trajectory("u", name, "full_trajectory", [0], success=success)
        if found is not None:
            t.info["evidence_found"] = found
        return t

    trajs = [episode("a", 1.0, True), episode("b", 1.0, False), episode("c", 0.0, True),
             episode("d", 1.0, True), episode("e", None, False)]  # e: ended without answering
    stats = summarize(trajs)
    # Found in 3 of the 4 checked episodes; 2 of those 3 were answered right.
    assert stats["rollout/evidence_found"] == 0.75
    assert stats["rollout/success_given_evidence"] == pytest.approx(2 / 3)
    none_found = summarize([episode("c", 0.0, True)])
    assert none_found["rollout/evidence_found"] == 0.0
    assert "rollout/success_given_evidence" not in none_found
