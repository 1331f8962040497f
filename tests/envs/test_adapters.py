"""Adapters to the real ALFWorld and WebShop: actionable errors when absent, and their wiring.

The wiring tests install stand-ins for the APIs the adapters call (TextWorld's `start` and game
states, ALFWorld's game listing, WebShop's `WebAgentTextEnv`), driven by our own household world
and store, so reset/step/oracle plumbing is exercised without the real packages.
"""

from __future__ import annotations

import asyncio
import json
import sys
import types
from pathlib import Path

import pytest
from turnwise.envs import make_suite
from turnwise.envs.base import EnvUnavailable
from turnwise.envs.household import plan
from turnwise.envs.household.generate import build_world, make_tasks


def test_missing_packages_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "alfworld", None)  # importing it raises ImportError
    with pytest.raises(EnvUnavailable, match=r"pip install alfworld.*alfworld-download"):
        make_suite("alfworld")
    monkeypatch.setitem(sys.modules, "web_agent_site", None)
    with pytest.raises(EnvUnavailable, match=r"princeton-nlp/WebShop.*setup.sh -d all.*PYTHONPATH"):
        make_suite("webshop")
    from turnwise.trainer.recipe import RecipeError, load_recipe

    with pytest.raises(RecipeError, match="env.name='alfworld' needs the alfworld package"):
        load_recipe("household_grpo", ["env.name=alfworld", "env.options={}"])


class _State(dict):
    feedback = ""


class _Game:
    """A TextWorld game over a household world, answering like AlfredTWEnv's games."""

    def __init__(self, path: str) -> None:
        self.data = json.loads(Path(path).read_text())

    def reset(self) -> _State:
        self.world = build_world(self.data)
        self.plan = plan(build_world(self.data), explore=False)
        intro = f"{self.world.describe_room()}\n\nYour task is to: {self.world.goal.text}"
        return self._state(f"-= Welcome to TextWorld, ALFRED! =-\n\n{intro}")

    def step(self, command: str):
        feedback, valid = self.world.apply(command)
        if valid and self.plan and command == self.plan[0]:
            self.plan.pop(0)
        state = self._state(feedback)
        return state, 0, state["won"]

    def _state(self, feedback: str) -> _State:
        state = _State(won=self.world.satisfied(), expert_plan=self.plan[:1],
                       admissible_commands=self.world.admissible() + ["help"])
        state.feedback = feedback
        return state

    def close(self) -> None: ...


def _install_fake_alfworld(monkeypatch, root: Path) -> None:
    textworld = types.ModuleType("textworld")
    textworld.EnvInfos = lambda **kw: kw
    textworld.start = lambda path, request_infos=None, wrappers=(): _Game(path)
    tw_env = types.ModuleType("alfworld.agents.environment.alfred_tw_env")

    class AlfredTWEnv:
        def __init__(self, config, train_eval):
            key = {"train": "data_path", "eval_in_distribution": "eval_id_data_path",
                   "eval_out_of_distribution": "eval_ood_data_path"}[train_eval]
            self.game_files = [str(p) for p in Path(config["dataset"][key]).rglob("game.tw-pddl")]

    tw_env.AlfredTWEnv, tw_env.AlfredInfos = AlfredTWEnv, object
    tw_env.AlfredDemangler = lambda shuffle=False: None
    for name in ("alfworld", "alfworld.agents", "alfworld.agents.environment"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "alfworld.agents.environment.alfred_tw_env", tw_env)
    monkeypatch.setitem(sys.modules, "textworld", textworld)
    for split, folder in (("train", "train"), ("valid_seen", "valid_seen")):
        for task in make_tasks(split, 3, seed=0):
            game = root / "json_2.1.1" / folder / f"{task.kind}-x-{task.id.split('/')[-1]}" / "trial_1"
            game.mkdir(parents=True)
            (game / "game.tw-pddl").write_text(json.dumps(task.data))
    (root / "logic").mkdir()
    for name in ("alfred.pddl", "alfred.twl2"):
        (root / "logic" / name).write_text("")


def test_alfworld_adapter_plays_games_with_the_expert(monkeypatch, tmp_path):
    with pytest.raises(EnvUnavailable, match="lacks"):
        _install_fake_alfworld(monkeypatch, tmp_path / "elsewhere")
        make_suite("alfworld", data_dir=str(tmp_path))
    _install_fake_alfworld(monkeypatch, tmp_path)
    suite = make_suite("alfworld", data_dir=str(tmp_path), max_steps=40)
    tasks = suite.tasks("valid_seen", 3, seed=1)
    assert {t.kind for t in tasks} <= set(suite.task_types) and len(tasks) == 3
    for task in tasks:
        env, oracle = suite.make(), suite.oracle(task)
        obs = asyncio.run(env.reset(task))
        assert obs.text.startswith("You are in the middle of a room.")  # banner stripped
        assert "help" not in obs.admissible_actions and obs.info["goal"]
        step = asyncio.run(env.step("open the pod bay doors"))  # no tags
        assert step.info["invalid"] and step.observation.text == "Nothing happens."
        while not step.done:
            step = asyncio.run(env.step(oracle.act(step.observation)))
        assert step.info["success"] and step.reward == 10.0
        asyncio.run(env.close())


def test_webshop_adapter_plays_goals(monkeypatch):
    from turnwise.envs.shop import Store
    from turnwise.envs.shop.catalogue import generate_catalogue
    from turnwise.envs.shop.reward import score_purchase

    store = Store(generate_catalogue(0, 40))

    class Server:
        goals = store.catalogue.goals

    class WebAgentTextEnv:
        def __init__(self, observation_mode="html", server=None, **kwargs):
            assert observation_mode == "text"
            self.server = server or Server()

        def reset(self, session=None):
            self.goal = self.server.goals[session]
            self.instruction_text = self.goal["instruction_text"]
            self.site = store.site(self.instruction_text)
            return self.site.text(), None

        def step(self, action):
            self.site.act(action)
            if self.site.page != "done":
                return self.site.text(), 0.0, False, None
            asin = self.site.asin
            score = score_purchase(store.catalogue.by_asin[asin], self.goal,
                                   store.catalogue.prices[asin], self.site.options)
            return self.site.text(), score.reward, True, None

        def get_available_actions(self):
            return {"has_search_bar": self.site.page == "search",
                    "clickables": list(self.site.clickables())}

        def close(self): ...

    module = types.ModuleType("web_agent_site.envs.web_agent_text_env")
    module.WebAgentTextEnv = WebAgentTextEnv
    for name in ("web_agent_site", "web_agent_site.envs"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "web_agent_site.envs.web_agent_text_env", module)
    suite = make_suite("webshop", reward="score")
    with pytest.raises(EnvUnavailable, match="only 80 goals"):
        suite.tasks("train", 1, 0)  # WebShop trains on goals from 1500 on
    for task in suite.tasks("test", 10, seed=0):
        env, oracle = suite.make(), suite.oracle(task)
        obs = asyncio.run(env.reset(task))
        assert obs.admissible_actions == ["search[<your query>]"]
        step = asyncio.run(env.step(oracle.act(obs)))
        while not step.done:
            step = asyncio.run(env.step(oracle.act(step.observation)))
        assert step.info["success"] and step.reward == 1.0
