"""The adapter to the real WebShop: an actionable error when absent, and its wiring.

The real WebShop cannot be installed from PyPI (its `webshop` package there is an empty stub),
so the wiring test installs a stand-in for `WebAgentTextEnv`, driven by our own store. ALFWorld
is tested against the real alfworld and textworld packages (tests/envs/test_alfworld*.py).
"""

from __future__ import annotations

import asyncio
import sys
import types

import pytest
from turnwise.envs import make_suite
from turnwise.envs.base import EnvUnavailable


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "web_agent_site", None)  # importing it raises ImportError
    with pytest.raises(EnvUnavailable, match=r"princeton-nlp/WebShop.*setup.sh -d all.*PYTHONPATH"):
        make_suite("webshop")


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
