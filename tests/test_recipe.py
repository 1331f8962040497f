"""Recipes: presets, overrides, and errors that name the key and what is allowed."""

from __future__ import annotations

import pytest

from turnwise.trainer.recipe import RecipeError, bundled_recipes, load_recipe


def test_bundled_recipe_with_preset_and_override():
    cfg = load_recipe("household_grpo", ["preset=cpu-tiny", "train.iterations=3", "rollout.mode=full_trajectory"])
    assert cfg.train.iterations == 3 and cfg.rollout.mode == "full_trajectory"
    assert cfg.model.name == "tiny:household"
    assert "household_grpo" in bundled_recipes()


@pytest.mark.parametrize("override, message", [
    (["rollout.mode=sideways"], "rollout.mode"),
    (["rollout.group_size=many"], "rollout.group_size"),
    (["train.bogus=1"], "train.bogus: unknown key"),
    (["preset=tpu"], "has presets"),
    (["env.name=mars"], "env.name='mars'"),
    (["credit.options={gama: 0.9}"], "not options of estimator 'grpo'"),
    (["env.options={colour: red}"], "env.options"),
    (["iterations"], "expected key=value"),
])
def test_bad_recipes_name_the_problem(override, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(")):
        load_recipe("household_grpo", override)


def test_missing_recipe_lists_the_bundled_ones():
    with pytest.raises(RecipeError, match="bundled recipes are"):
        load_recipe("no_such_recipe")


def test_extends_starts_from_the_base_recipe_and_drops_foreign_estimator_options(tmp_path):
    base = load_recipe("household_gigpo", ["preset=cpu-tiny"])
    grpo = load_recipe("household_grpo", ["preset=cpu-tiny"])
    assert (base.credit.estimator, grpo.credit.estimator) == ("gigpo", "grpo")
    assert grpo.credit.options == {"norm": "mean_std"}  # gigpo's gamma/omega are not inherited
    # Everything else, presets included, comes from the base: equal budgets by construction.
    same = lambda c: c.model_dump(exclude={"name", "description", "credit"})
    assert same(base) == same(grpo)
    child = tmp_path / "mine.yaml"
    child.write_text("extends: household_grpo\nname: mine\ntrain: {weight_decay: 0.5}\n")
    cfg = load_recipe(str(child), ["preset=cpu-tiny"])
    assert cfg.train.weight_decay == 0.5 and cfg.rollout.history == 2 and cfg.credit.estimator == "grpo"
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop\nname: loop\n")
    with pytest.raises(RecipeError, match="makes a cycle"):
        load_recipe(str(loop))
