"""The `alfworld` suite on the real alfworld and textworld packages: games generated from what
alfworld ships, played on its engine with its expert; downloaded-data mode; bad input."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest
from turnwise.envs import make_suite
from turnwise.envs.adapters.alfworld import TASK_TYPES, AlfWorldSuite
from turnwise.envs.base import EnvUnavailable, Task

pytest.importorskip("alfworld", reason="make setup installs alfworld (the envs extra)")

SMALL = {"max_receptacles": 4, "distractors": 2, "workers": 1}


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> AlfWorldSuite:
    """Small rooms, all six task types; games generated once for the module."""
    cache = tmp_path_factory.mktemp("alfworld-cache")
    return make_suite("alfworld", cache_dir=str(cache), games={"train": 12, "valid_seen": 6,
                      "valid_unseen": 6}, max_steps=50, **SMALL)


async def _play(suite, task: Task, actions=None):
    """The steps of the expert (after `actions`, if given) playing `task`."""
    env, oracle = suite.make(), suite.oracle(task)
    observation, steps = await env.reset(task), []
    try:
        for action in actions or []:
            steps.append(await env.step(action))
            observation = steps[-1].observation
        while not steps or not steps[-1].done:
            steps.append(await env.step(oracle.act(observation)))
            observation = steps[-1].observation
        return steps
    finally:
        await env.close()


def test_the_old_adapters_infos_are_refused_by_the_real_textworld():
    import textworld

    with pytest.raises(ValueError, match=r"Unknown information requested: \['expert_plan', 'expert_type'\]"):
        textworld.EnvInfos(won=True, expert_type="handcoded", expert_plan=True)


def test_each_task_type_is_generated_and_won_by_alfworlds_expert(suite):
    by_type = {}
    for task in suite.tasks("train", 12, seed=0):
        by_type.setdefault(task.kind, task)
    assert set(by_type) == set(TASK_TYPES)
    for kind, task in by_type.items():
        steps = asyncio.run(_play(suite, task))
        assert steps[-1].info["success"] and steps[-1].reward == 10.0, kind
        game = json.loads(Path(task.data["gamefile"]).read_text())
        # The expert's demonstration is the walkthrough the generator recorded: both seeded.
        assert [s.info["action"] for s in steps] == game["walkthrough"], kind
        assert game["solvable"] is True and set(game) == {"pddl_domain", "grammar",
                                                         "pddl_problem", "solvable", "walkthrough"}
        traj = json.loads((Path(task.data["gamefile"]).parent / "traj_data.json").read_text())
        assert traj["task_type"] == kind and traj["pddl_params"]["object_target"]


def test_episodes_side_by_side_play_as_they_play_alone(suite):
    # ALFWorld's engine is not thread-safe (loading two games at once fails): episodes, each
    # stepping in its own thread, must take turns in it.
    tasks = suite.tasks("train", 8, seed=3)

    async def all_at_once():
        return await asyncio.gather(*[_play(suite, task) for task in tasks])

    for task, steps in zip(tasks, asyncio.run(all_at_once())):
        walkthrough = json.loads(Path(task.data["gamefile"]).read_text())["walkthrough"]
        assert steps[-1].info["success"] and [s.info["action"] for s in steps] == walkthrough


def test_playing_leaves_the_process_argv_and_random_state_alone(suite, monkeypatch):
    import random

    monkeypatch.setattr(sys, "argv", ["turnwise", "train", "alfworld_gigpo"])
    random.seed(7)
    expected = random.Random(7).random()
    asyncio.run(_play(suite, suite.tasks("valid_seen", 1, seed=4)[0]))
    assert sys.argv == ["turnwise", "train", "alfworld_gigpo"]  # Fast Downward rewrites it
    assert random.random() == expected  # the expert's draws come from their own seeds


def test_an_environment_is_reloaded_with_the_next_game_not_made_anew(suite):
    from turnwise.envs.alfworld import engine
    from turnwise.envs.alfworld.build import game_key

    first, second = sorted({t.data["gamefile"] for t in suite.tasks("valid_seen", 6, seed=0)})[:2]
    pool = engine.GamePool("handcoded")
    game = pool.take(first)
    pool.give(first, game)
    assert pool.take(first) is game  # the same game: handed out as it is
    pool.give(first, game)
    assert pool.take(second) is game and len(pool) == 0  # another game: loaded into it
    reloaded = engine.reset(game, game_key(second))
    fresh = engine.reset(engine.open_game(second), game_key(second))
    assert reloaded.feedback == fresh.feedback
    assert reloaded["admissible_commands"] == fresh["admissible_commands"]
    assert reloaded["extra.gamefile"] == second and reloaded["extra.expert_plan"] == ["look"]
    pool.give(second, game)
    pool.close()


def test_first_observation_actions_and_expert_plan(suite):
    task = next(t for t in suite.tasks("valid_seen", 6, seed=1) if t.kind == "pick_and_place_simple")
    env = suite.make()
    observation = asyncio.run(env.reset(task))
    assert observation.text.startswith("You are in the middle of a room. Looking quickly around "
                                       "you, you see a ")  # ALFWorld's welcome banner stripped
    assert "\n\nYour task is to: put " in observation.text
    assert "help" not in observation.admissible_actions and "look" in observation.admissible_actions
    assert observation.info["expert_plan"] == ["look"]  # the hand-coded expert starts by looking
    no_tag = asyncio.run(env.step("I will go to the fridge"))
    assert no_tag.info["invalid"] and no_tag.observation.text == "Nothing happens."
    assert no_tag.observation.admissible_actions == observation.admissible_actions
    rejected = asyncio.run(env.step("<action>fly to the moon</action>"))
    assert rejected.info == {"success": False, "invalid": False, "noop": True,
                             "action": "fly to the moon", "truncated": False}
    target = next(a for a in observation.admissible_actions if a.startswith("go to "))
    arrived = asyncio.run(env.step(f"<action>  {target.upper()} </action>"))  # case, spacing
    assert arrived.observation.text.startswith(f"You arrive at {target[6:]}.")
    asyncio.run(env.close())


def test_splits_use_disjoint_rooms_and_the_same_seed_gives_the_same_games(suite, tmp_path):
    from turnwise.envs.alfworld.scenes import constants, scene_numbers

    unseen, train = set(scene_numbers("valid_unseen")), set(scene_numbers("train"))
    assert not unseen & train and unseen == set(constants().TEST_SCENE_NUMBERS)
    assert len(unseen | train) == 120  # every layout alfworld ships

    def plan(task):
        return int(task.data["gamefile"].split("/")[-3].rsplit("-", 1)[1])

    assert all(plan(t) in unseen for t in suite.tasks("valid_unseen", 6, seed=0))
    assert all(plan(t) in train for t in suite.tasks("valid_seen", 6, seed=0))
    again = make_suite("alfworld", cache_dir=str(tmp_path), games={"valid_seen": 6}, **SMALL)
    ours, theirs = suite.tasks("valid_seen", 3, seed=5), again.tasks("valid_seen", 3, seed=5)
    for a, b in zip(ours, theirs):  # generated anew in another folder: the same games
        assert Path(a.data["gamefile"]).read_text() == Path(b.data["gamefile"]).read_text()
    other = make_suite("alfworld", cache_dir=str(tmp_path), seed=1, games={"valid_seen": 6}, **SMALL)
    assert other.root != again.root
    assert {Path(t.data["gamefile"]).read_text() for t in other.tasks("valid_seen", 3, seed=5)} \
        != {Path(t.data["gamefile"]).read_text() for t in theirs}


def test_alfworlds_own_game_listing_finds_the_generated_games(suite):
    from alfworld.agents.environment.alfred_tw_env import AlfredTWEnv
    suite.tasks("train", 12, seed=0)
    data = suite.games_dir
    config = {"env": {"goal_desc_human_anns_prob": 0, "task_types": [1, 2, 3, 4, 5, 6]},
              "dataset": {"data_path": str(data / "train"), "num_train_games": -1}}
    theirs = AlfredTWEnv(config, train_eval="train").game_files
    ours = {t.data["gamefile"] for t in suite.tasks("train", 12, seed=0)}
    assert sorted(theirs) == sorted(ours)


def test_downloaded_data_folder_is_played_and_generation_options_are_refused(suite, tmp_path):
    suite.tasks("valid_seen", 6, seed=0)
    shutil.copytree(suite.games_dir, tmp_path / "alfworld" / "json_2.1.1")
    downloaded = make_suite("alfworld", data_dir=str(tmp_path / "alfworld"), max_steps=50)
    tasks = downloaded.tasks("valid_seen", 8, seed=0)  # 6 games, cycled
    assert len({t.data["gamefile"] for t in tasks}) == 6
    steps = asyncio.run(_play(downloaded, tasks[0]))
    assert steps[-1].info["success"]
    with pytest.raises(ValueError, match=r"\['games', 'max_receptacles'\] apply to generated games"):
        make_suite("alfworld", data_dir=str(tmp_path / "alfworld"), games={"train": 3},
                   max_receptacles=4)
    with pytest.raises(EnvUnavailable, match="has no json_2.1.1 folder.*alfworld-download"):
        make_suite("alfworld", data_dir=str(tmp_path))


def test_a_game_file_that_does_not_parse_names_the_file(suite, tmp_path):
    from turnwise.envs.alfworld.engine import GameFileError

    good = suite.tasks("valid_seen", 1, seed=0)[0].data["gamefile"]
    broken = tmp_path / "json_2.1.1" / "valid_seen" / "x" / "trial_0"
    broken.mkdir(parents=True)
    (broken / "game.tw-pddl").write_text("{not json")
    env = suite.make()
    with pytest.raises(GameFileError, match=rf"{broken / 'game.tw-pddl'} is not JSON"):
        asyncio.run(env.reset(Task(id="x", data={"gamefile": str(broken / "game.tw-pddl")})))
    data = json.loads(Path(good).read_text())
    data["pddl_problem"] = data["pddl_problem"][:300]  # cut short: unbalanced parentheses
    (broken / "game.tw-pddl").write_text(json.dumps(data))
    with pytest.raises(GameFileError, match=rf"{broken / 'game.tw-pddl'} has no traj_data.json"):
        asyncio.run(env.reset(Task(id="x", data={"gamefile": str(broken / "game.tw-pddl")})))
    shutil.copy(good.replace("game.tw-pddl", "traj_data.json"), broken)
    with pytest.raises(GameFileError, match=rf"{broken / 'game.tw-pddl'} does not load: ParseError"):
        asyncio.run(env.reset(Task(id="x", data={"gamefile": str(broken / "game.tw-pddl")})))
    (broken / "game.tw-pddl").write_text(json.dumps({"pddl_domain": ""}))
    with pytest.raises(GameFileError, match=r"lacks \['grammar', 'pddl_problem'\]"):
        asyncio.run(env.reset(Task(id="x", data={"gamefile": str(broken / "game.tw-pddl")})))


def test_missing_packages_say_what_to_install(monkeypatch):
    for package in ("alfworld", "textworld"):
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, package, None)  # importing it raises ImportError
            with pytest.raises(EnvUnavailable, match=rf"needs the {package} package.*"
                                                     r"pip install 'turnwise\[envs\]'"):
                make_suite("alfworld")


def test_bad_options_name_the_key():
    for options, message in [({"task_types": ["juggle"]}, "task_types: unknown"),
                             ({"expert": "oracle"}, r"expert='oracle': allowed are \['handcoded'"),
                             ({"games": {"test": 3}}, "games="), ({"anchor": "room"}, "anchor="),
                             ({"max_receptacles": 2}, "max_receptacles=2")]:
        with pytest.raises(ValueError, match=message):
            make_suite("alfworld", **options)
    with pytest.raises(ValueError, match="alfworld split='test'"):
        make_suite("alfworld").tasks("test", 1, 0)


def test_state_anchors_are_the_games_facts(suite):
    anchored = make_suite("alfworld", cache_dir=str(suite.root.parent), games=suite.sizes,
                          anchor="state", **SMALL)
    task = anchored.tasks("valid_seen", 1, seed=2)[0]
    env = anchored.make()
    first = asyncio.run(env.reset(task))
    assert isinstance(first.anchor, frozenset) and any(f.startswith("atlocation(") for f in first.anchor)
    looked = asyncio.run(env.step("<action>look</action>"))  # only `checked` changes: same state
    assert looked.observation.anchor == first.anchor
    moved = asyncio.run(env.step(f"<action>{first.admissible_actions[0]}</action>"))
    assert moved.observation.anchor != first.anchor
    asyncio.run(env.close())


@pytest.mark.slow
def test_an_expert_that_gives_up_publishes_no_plan_and_the_episode_goes_on(suite):
    # The hand-coded expert raises after 200 steps of its own (a timeout), and whenever its
    # script runs out; ALFWorld's wrapper would end the episode with an exception.
    task = suite.tasks("valid_seen", 1, seed=0)[0]
    env = make_suite("alfworld", cache_dir=str(suite.root.parent), games=suite.sizes,
                     max_steps=205, **SMALL).make()
    asyncio.run(env.reset(task))
    for _ in range(202):
        step = asyncio.run(env.step("<action>inventory</action>"))
    assert step.observation.info["expert_plan"] == []
    assert "Timeout" in step.observation.info["expert_error"]
    assert not step.done and step.observation.text == "You are not carrying anything."
    asyncio.run(env.close())


@pytest.mark.slow
def test_the_cpu_tiny_recipe_trains_on_the_real_engine(tmp_path):
    import subprocess

    games = "{train: 8, valid_seen: 4, valid_unseen: 4}"
    out = subprocess.run(
        [sys.executable, "-m", "turnwise.trainer.cli", "train", "alfworld_gigpo", "preset=cpu-tiny",
         "train.iterations=1", "sft.episodes=8", "sft.cache=false", "eval.tasks=4",
         "rollout.tasks_per_iteration=2", "rollout.group_size=2", f"env.options.games={games}",
         f"env.options.cache_dir={tmp_path / 'games'}", f"log.dir={tmp_path}", "log.run_name=r",
         "log.quiet=true", "checkpoint.every=0"],
        check=False, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    sft = next(r for r in rows if r["iteration"] == -1)
    assert sft["sft/rows"] >= 8 * 5  # every demonstration played (the expert needs 5+ steps)
    trained = next(r for r in rows if r["iteration"] == 1 and "rollout/episodes" in r)
    assert trained["rollout/episodes"] == 4 and trained["train/optimizer_steps"] > 0
    assert "eval/success" in next(r for r in rows if r["iteration"] == 0)
