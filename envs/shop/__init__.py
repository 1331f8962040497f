"""`shop`: a WebShop-style store (Yao et al. 2022) with WebShop's pages, actions and reward.

The agent answers `<action>search[red running shoes]</action>` or `<action>click[b0abc12345]</action>`.
A reply without an action tag is a format error (`invalid`); an action WebShop would ignore
(unknown clickable, empty search) leaves the page as it was, as WebShop does. Buying ends the
episode with WebShop's score in [0, 1]; success is a score of exactly 1. The step reward is
`success_reward` on success and 0 otherwise (`reward: success`, verl-agent's choice), or the
score itself (`reward: score`).
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from ..base import Observation, Step, Task, register_suite
from .catalogue import SPLITS, Catalogue, generate_catalogue, load_catalogue
from .reward import score_purchase
from .search import SearchEngine
from .site import BUY, NEXT, Site

SYSTEM_PROMPT = (
    "You are an expert shopper on a web store. Each turn, choose one admissible action and "
    "reply with it inside <action> </action> tags: search[keywords] on the search page, or "
    "click[value] for a button, product or option, for example <action>search[red shoes]</action>."
)
_ACTION = re.compile(r"<action>(.*?)</action>", re.DOTALL)


class Store:
    """A catalogue and its search engine, shared by every episode of a suite."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.engine = SearchEngine(catalogue.products)

    def site(self, instruction: str) -> Site:
        return Site(self.catalogue, self.engine, instruction)


class ShopEnv:
    """One shopping episode."""

    system_prompt = SYSTEM_PROMPT

    def __init__(self, store: Store, *, max_steps: int = 15, reward: str = "success",
                 success_reward: float = 10.0, anchor: str = "state") -> None:
        if reward not in ("success", "score"):
            raise ValueError(f"env.options.reward={reward!r}: allowed are 'success', 'score'")
        if anchor not in ("state", "observation"):
            raise ValueError(f"env.options.anchor={anchor!r}: allowed are 'state', 'observation'")
        if max_steps < 1:
            raise ValueError(f"env.options.max_steps={max_steps}: must be >= 1")
        self.store, self.max_steps, self.reward_mode = store, max_steps, reward
        self.success_reward, self.anchor_mode = success_reward, anchor
        self.site: Site | None = None
        self.goal: dict[str, Any] = {}
        self.steps = 0

    async def reset(self, task: Task) -> Observation:
        self.goal = task.data["goal"]
        if self.goal["asin"] not in self.store.catalogue.by_asin:
            raise ValueError(f"shop task {task.id}: product {self.goal['asin']} is not in the catalogue")
        self.site, self.steps = self.store.site(self.goal["instruction_text"]), 0
        return self._observe()

    async def step(self, action_text: str) -> Step:
        if self.site is None:
            raise RuntimeError("ShopEnv.step before reset")
        self.steps += 1
        found = _ACTION.findall(action_text)
        action = found[-1].strip() if found else ""
        changed = bool(found) and self.site.act(action)
        info: dict[str, Any] = {"invalid": not found, "noop": not changed, "action": action,
                                "success": False}
        reward = 0.0
        if self.site.page == "done":
            catalogue = self.store.catalogue
            score = score_purchase(catalogue.by_asin[self.site.asin], self.goal,
                                   catalogue.prices[self.site.asin], self.site.options)
            info.update(score=score.reward, success=score.reward == 1.0,
                        purchased=self.site.asin, options=dict(self.site.options),
                        r_type=score.r_type, r_attribute=score.r_attribute,
                        r_option=score.r_option, r_price=score.r_price)
            if self.reward_mode == "score":
                reward = score.reward
            else:
                reward = self.success_reward if info["success"] else 0.0
        done = self.site.page == "done" or self.steps >= self.max_steps
        info["truncated"] = done and self.site.page != "done"
        return Step(self._observe(), reward, done, info)

    async def close(self) -> None:
        self.site = None

    def _observe(self) -> Observation:
        text = self.site.text()
        anchor = self.site.state_key() if self.anchor_mode == "state" else text
        return Observation(text=text, anchor=anchor, admissible_actions=self.site.available_actions(),
                           info={"goal": self.goal["instruction_text"]})


class ShopOracle:
    """Replays a purchase planned on a private session: search the instruction, page through
    the results to the goal's product (searching its title if it is not in the first 50),
    click its id as the page shows it, select the goal's options, buy."""

    def __init__(self, store: Store, task: Task) -> None:
        self.actions = plan(store, task.data["goal"])
        self.position = 0

    def act(self, observation: Observation) -> str:
        action = self.actions[min(self.position, len(self.actions) - 1)]
        self.position += 1
        return f"<action>{action}</action>"


def plan(store: Store, goal: dict[str, Any]) -> list[str]:
    """Actions that buy the goal's product with the goal's options."""
    site = store.site(goal["instruction_text"])
    actions: list[str] = []

    def do(action: str) -> None:
        if not site.act(action):
            raise RuntimeError(f"shop oracle action {action!r} was ignored on page {site.page}")
        actions.append(action)

    target = goal["asin"].lower()  # clickables are keyed lower-cased, as WebShop's
    for query in (search_query(goal["instruction_text"]), goal["name"].lower()):
        do(f"search[{query}]")
        while target not in site.clickables() and NEXT in site.clickables():
            do(f"click[{NEXT}]")
        if target in site.clickables():
            break
    else:
        raise RuntimeError(f"shop oracle cannot find {goal['asin']} by search")
    # Click the product as the results page spells it (clicks match case-insensitively), so a
    # model copies the id from the page token for token instead of also lower-casing it.
    do(f"click[{goal['asin']}]")
    for value in goal["goal_options"].values():
        do(f"click[{value}]")
    do(f"click[{BUY}]")
    score = score_purchase(store.catalogue.by_asin[site.asin], goal,
                           store.catalogue.prices[site.asin], site.options)
    if score.reward != 1.0:
        raise RuntimeError(f"shop oracle's purchase scores {score.reward}, not 1: {goal}")
    return actions


def search_query(instruction: str) -> str:
    """The part of an instruction a shopper would type: before its options and price."""
    return re.split(r" with |, and price", instruction, maxsplit=1)[0].strip()


@register_suite("shop")
class ShopSuite:
    """Tasks, environments and oracles of the store."""

    name = "shop"

    def __init__(self, *, seed: int = 0, num_products: int = 1000, goals_per_product: int = 2,
                 catalogue_file: str | None = None, max_steps: int = 15, reward: str = "success",
                 success_reward: float = 10.0, anchor: str = "state") -> None:
        self.env_options = dict(max_steps=max_steps, reward=reward, success_reward=success_reward,
                                anchor=anchor)
        self.store = (Store(load_catalogue(catalogue_file, seed, goals_per_product))
                      if catalogue_file else _generated_store(seed, num_products, goals_per_product))
        ShopEnv(self.store, **self.env_options)  # validate options now, not at the first episode

    def make(self) -> ShopEnv:
        return ShopEnv(self.store, **self.env_options)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        """`count` goals of `split`, drawn without replacement (cycling when count exceeds it)."""
        goals = self.store.catalogue.split(split)
        order = list(range(len(goals)))
        random.Random(seed).shuffle(order)
        picked = [order[i % len(order)] for i in range(count)]
        return [Task(id=f"shop/{split}/{seed}/{i}", kind=goals[g]["category"],
                     data={"goal": copy.deepcopy(goals[g])}) for i, g in enumerate(picked)]

    def oracle(self, task: Task) -> ShopOracle:
        return ShopOracle(self.store, task)

    def corpus(self) -> Iterable[str]:
        yield SYSTEM_PROMPT
        for split in SPLITS:
            for task in self.tasks(split, 60, 7):
                site = self.store.site(task.data["goal"]["instruction_text"])
                yield site.text()
                for action in plan(self.store, task.data["goal"]):
                    site.act(action)
                    yield f"<action>{action}</action>\n{site.text()}"
                    yield "\n".join(site.available_actions())


@lru_cache(maxsize=8)
def _generated_store(seed: int, num_products: int, goals_per_product: int) -> Store:
    # Suites built with the same options (a recipe check, then the run) share one index.
    return Store(generate_catalogue(seed, num_products, goals_per_product))


__all__ = ["SPLITS", "ShopEnv", "ShopOracle", "ShopSuite", "Store", "plan", "search_query"]
