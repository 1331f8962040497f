"""The shop: WebShop's reward by hand, its pages and clicks, and an oracle that always scores 1."""

from __future__ import annotations

import asyncio
import json

import pytest
from turnwise.envs import Task, make_suite
from turnwise.envs.shop.catalogue import generate_catalogue
from turnwise.envs.shop.reward import normalize_color, score_purchase, token_set_ratio, type_reward
from turnwise.envs.shop.search import tokenize

PRODUCT = {
    "asin": "B0TEST0001", "query": "face moisturizer", "category": "beauty",
    "product_category": "Beauty & Personal Care › Skin Care › Face › Moisturizers",
    "name": "Kalo paraben free face moisturizer", "Title": "Kalo paraben free face moisturizer travel size",
    "Attributes": ["paraben free", "long lasting formula"],
    "BulletPoints": ["cruelty free and built to last"], "Description": "A cream.",
    "options": {"size": ["small", "x-large"], "color": ["navy blue", "white"]},
}
GOAL = {
    "asin": "B0TEST0001", "query": "face moisturizer",
    "product_category": "Beauty & Personal Care › Skin Care › Face › Moisturizers",
    "name": "Kalo paraben free face moisturizer travel size",
    "attributes": ["paraben free", "long lasting", "travel size"],
    "goal_options": {"size": "x-large", "color": "light blue"}, "price_upper": 40.0,
}


def test_fuzzy_ratio_and_colours_by_hand():
    # {gluten, free} vs {sugar, free}: common "free" (4 chars), rest "gluten" (6) / "sugar" (5).
    # Full strings: indel(gluten, sugar) = 6 + 5 - 2*LCS(1) = 9 over 11 + 10 chars -> 57.14;
    # "free" vs "free sugar": distance 6 over 4 + 10 -> 57.14; vs "free gluten": 7/15 -> 53.3.
    assert token_set_ratio("gluten free", "sugar free") == 57
    assert token_set_ratio("long lasting", "long lasting formula") == 100  # a subset scores 100
    assert token_set_ratio("x-large", "large") == 100  # hence WebShop matches sizes exactly
    assert token_set_ratio("navy", "blue") == 0
    assert normalize_color("navy blue") == normalize_color("light blue") == "blue"
    assert normalize_color("pack of 2") == "pack of 2"


def test_reward_of_a_perfect_purchase():
    # 3 attributes: "paraben free" (fuzzy 100), "long lasting" (subset of "long lasting
    # formula"), "travel size" (in the title); 2 options: size exact, colour normalised to blue;
    # price 30 <= 40: (3 + 2 + 1) / (3 + 2 + 1) = 1, r_type 1 (same query).
    score = score_purchase(PRODUCT, GOAL, 30.0, {"size": "x-large", "color": "navy blue"})
    assert (score.attribute_matches, score.option_matches, score.r_price) == (3, 2, True)
    assert score.reward == 1.0 and score.r_type == 1.0


def test_reward_of_imperfect_purchases():
    # Size "small" is not exactly "x-large" and not in the texts: (3 + 1 + 1) / 6.
    score = score_purchase(PRODUCT, GOAL, 30.0, {"size": "small", "color": "navy blue"})
    assert score.reward == pytest.approx(5 / 6)
    # Over the price ceiling and no option chosen: (3 + 0 + 0) / 6.
    assert score_purchase(PRODUCT, GOAL, 45.0, {}).reward == pytest.approx(3 / 6)
    # A goal with no matching attribute in the product at all: (0 + 2 + 1) / (1 + 2 + 1).
    goal = {**GOAL, "attributes": ["gluten free"]}
    assert score_purchase(PRODUCT, goal, 30.0, {"size": "x-large", "color": "white"}).reward == \
        pytest.approx(2 / 4)  # white is neither blue nor in the texts: 1 option match


def test_type_reward_levels():
    other = {"query": "deodorant", "product_category": "Beauty & Personal Care › Deodorants"}
    # No query match, 1 shared category level; the goal name has 6 content words, 1 shared.
    goal = {**GOAL, "name": "kalo alpha beta gamma delta epsilon"}
    r, query, category, title = type_reward({**other, "name": "kalo deodorant"}, goal)
    assert (query, category) == (False, False) and title == pytest.approx(1 / 6) and r == 0.5
    goal = {**GOAL, "name": "kalo bb cc dd ee ff gg hh ii jj kk"}  # 11 words, share 1 -> 0.0909
    assert type_reward({**other, "name": "kalo deodorant"}, goal)[0] == 0.1
    assert type_reward({**other, "name": "zorp deodorant"}, goal)[0] == 0.0  # no shared word
    same_query = {**other, "query": "face moisturizer", "name": "kalo deodorant"}
    assert type_reward(same_query, {**GOAL, "name": "kalo alpha beta gamma delta epsilon"})[0] == 1.0


async def _play(env, oracle, task):
    obs = await env.reset(task)
    while True:
        step = await env.step(oracle.act(obs))
        obs = step.observation
        if step.done:
            return step


@pytest.fixture(scope="module")
def shop():
    return make_suite("shop", num_products=300)


def test_oracle_scores_one_on_every_task(shop):
    for split, count in (("train", 200), ("valid", 50), ("test", 50)):
        for task in shop.tasks(split, count, seed=4):
            step = asyncio.run(_play(shop.make(), shop.oracle(task), task))
            assert step.info["success"] and step.info["score"] == 1.0 and step.reward == 10.0, task


def test_oracle_clicks_the_product_as_the_page_spells_it(shop):
    task = shop.tasks("train", 1, seed=3)[0]
    asin = task.data["goal"]["asin"]
    assert asin != asin.lower()  # the page shows ids in upper case
    env, oracle = shop.make(), shop.oracle(task)
    obs = asyncio.run(env.reset(task))
    for _ in range(len(oracle.actions)):
        if obs.text.startswith("Back to Search") and f"[SEP] {asin} [SEP]" in obs.text:
            break
        obs = asyncio.run(env.step(oracle.act(obs))).observation
    else:
        raise AssertionError("the oracle never reached a results page with the goal's product")
    click = oracle.act(obs)
    assert click == f"<action>click[{asin}]</action>"
    assert not asyncio.run(env.step(click)).info["noop"]  # accepted: clicks ignore case


def test_pages_clicks_and_ignored_actions(shop):
    task = shop.tasks("test", 1, seed=0)[0]
    env = shop.make()
    obs = asyncio.run(env.reset(task))
    assert obs.text.startswith("WebShop [SEP] Instruction: [SEP] ")
    assert obs.admissible_actions == ["search[<your query>]"]
    # WebShop ignores what it cannot do: the page stays as it was.
    for action in ("<action>click[buy now]</action>", "<action>search[]</action>"):
        step = asyncio.run(env.step(action))
        assert step.info["noop"] and not step.info["invalid"] and step.observation.text == obs.text
    step = asyncio.run(env.step("search[shoes]"))  # no tags: a format error
    assert step.info["invalid"] and step.observation.text == obs.text
    step = asyncio.run(env.step("<action>search[free long lasting easy machine wash]</action>"))
    results = step.observation
    total = shop.store.engine.search("free long lasting easy machine wash")
    assert 20 < len(total) <= 50  # at most 50 results, 10 per page
    assert results.text.startswith(f"Back to Search [SEP] Page 1 (Total results: {len(total)}) [SEP] Next >")
    assert f"[SEP] {total[0]} [SEP] " in results.text and f"[SEP] {total[10]} [SEP] " not in results.text
    assert "click[next >]" in results.admissible_actions and "click[< prev]" not in results.admissible_actions
    page2 = asyncio.run(env.step("<action>click[next >]</action>")).observation
    assert f"Page 2 (Total results: {len(total)}) [SEP] < Prev [SEP] Next >" in page2.text
    assert f"[SEP] {total[10]} [SEP] " in page2.text
    back = asyncio.run(env.step("<action>click[< prev]</action>")).observation
    assert back.text == results.text and back.anchor == results.anchor
    asin = next(a for a in results.admissible_actions if a.startswith("click[b0"))
    item = asyncio.run(env.step(f"<action>{asin}</action>")).observation
    assert "[SEP] Buy Now" in item.text and "click[buy now]" in item.admissible_actions
    features = asyncio.run(env.step("<action>click[features]</action>")).observation
    assert features.admissible_actions == ["click[back to search]", "click[< prev]"]
    assert asyncio.run(env.step("<action>click[< prev]</action>")).observation.text == item.text
    start = asyncio.run(env.step("<action>click[back to search]</action>")).observation
    assert start.text == obs.text and start.anchor == obs.anchor


def test_truncation_and_score_reward_mode():
    shop = make_suite("shop", num_products=60, max_steps=2, reward="score")
    task = shop.tasks("train", 1, seed=1)[0]
    env = shop.make()
    asyncio.run(env.reset(task))
    asyncio.run(env.step("<action>search[anything]</action>"))
    step = asyncio.run(env.step("<action>click[back to search]</action>"))
    assert step.done and step.info["truncated"] and not step.info["success"] and step.reward == 0.0
    step = asyncio.run(_play(shop.make(), shop.oracle(task), task))  # 2 steps cannot buy
    assert step.info["truncated"]


def test_catalogue_is_determined_by_its_seed_and_splits_are_disjoint():
    a, b = generate_catalogue(5, 80), generate_catalogue(5, 80)
    generate_catalogue.cache_clear()
    assert json.dumps(a.products) == json.dumps(generate_catalogue(5, 80).products)
    assert a.products[0]["asin"] != generate_catalogue(6, 80).products[0]["asin"]
    splits = {s: {json.dumps(g, sort_keys=True) for g in a.split(s)} for s in ("train", "valid", "test")}
    assert not (splits["train"] & splits["test"]) and not (splits["valid"] & splits["test"])
    assert sum(len(v) for v in splits.values()) == len(a.goals)
    assert b is a  # cached: every suite with these options shares one catalogue and index


def test_generated_texts_do_not_leak_options_or_missing_attributes():
    # Otherwise WebShop's substring fallback would credit a wrong choice.
    catalogue = generate_catalogue(0, 300)
    from turnwise.envs.shop.vocab import CATEGORIES
    for p in catalogue.products:
        texts = " ".join([p["Title"], p["Description"], *p["BulletPoints"]]).lower()
        for values in p["options"].values():
            assert not [v for v in values if normalize_color(v) in texts], p
        absent = set(CATEGORIES[p["category"]].attributes) - set(p["Attributes"])
        assert not [a for a in absent if a in texts], p


def test_loading_a_catalogue_file(tmp_path):
    rows = [{**PRODUCT, "asin": f"B0FILE000{i}", "pricing": [10.0 + i]} for i in range(4)]
    rows[0]["goals"] = [{"instruction_text": "i need a face moisturizer", "attributes": ["paraben free"],
                         "goal_options": {"size": "small"}, "price_upper": 20.0}]
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    shop = make_suite("shop", catalogue_file=str(path), goals_per_product=1)
    goals = [g["instruction_text"] for g in shop.store.catalogue.goals]
    assert len(goals) == 4 and "i need a face moisturizer with size: small, and price lower than 20.00 dollars" in goals
    task = shop.tasks("train", 1, seed=0)[0]
    assert asyncio.run(_play(shop.make(), shop.oracle(task), task)).info["success"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"asin": "B0X"}))
    with pytest.raises(ValueError, match="lacks"):
        make_suite("shop", catalogue_file=str(bad))


def test_bad_options_name_the_key():
    with pytest.raises(ValueError, match="env.options.reward='money'"):
        make_suite("shop", num_products=20, reward="money")
    shop = make_suite("shop", num_products=20)
    with pytest.raises(ValueError, match="allowed are \\['train', 'valid', 'test'\\]"):
        shop.tasks("valid_seen", 1, 0)
    assert tokenize("I need the Red-Shoes, size 9") == ["red", "shoes", "size", "9"]
    assert isinstance(shop.tasks("train", 1, 0)[0], Task)
