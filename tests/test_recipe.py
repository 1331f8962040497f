"""Recipes: presets, overrides, and errors that name the key and what is allowed."""

from __future__ import annotations

import pytest
import yaml

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


def _write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return str(path)


def test_a_childs_own_keys_beat_the_parents_preset_and_its_preset_beats_them(tmp_path):
    # household_gigpo's cpu-tiny preset sets iterations 30, lr 1e-4, group size 8.
    child = _write(tmp_path, "mine.yaml", "extends: household_gigpo\n"
                   "train: {iterations: 5, lr: 5.0e-5}\nrollout: {group_size: 4}\n"
                   "presets:\n  cpu-tiny:\n    rollout: {group_size: 6}\n")
    cfg = load_recipe(child)
    assert (cfg.train.iterations, cfg.train.lr) == (5, 5.0e-5)  # child over parent preset
    assert cfg.rollout.group_size == 6  # child preset over child
    assert cfg.preset == "cpu-tiny"  # recorded: the parent's default_preset
    assert load_recipe(child, ["rollout.group_size=3"]).rollout.group_size == 3  # command line last
    # Everything the child leaves alone still comes from the parent's preset.
    assert cfg.sft.episodes == load_recipe("household_gigpo").sft.episodes > 0


def test_a_child_that_changes_env_starts_with_that_envs_own_options(tmp_path):
    child = _write(tmp_path, "shop.yaml", "extends: household_gigpo\nenv: {name: shop}\n")
    cfg = load_recipe(child)  # household's preset options would be rejected by shop
    assert cfg.env.name == "shop" and cfg.env.options == {}
    assert load_recipe("household_gigpo", ["env.name=shop"]).env.options == {}


def test_the_resolved_config_reloads_to_itself(tmp_path):
    import yaml

    cfg = load_recipe("search_igpo", ["preset=cpu-tiny"])
    saved = _write(tmp_path, "config.yaml", yaml.safe_dump(cfg.model_dump()))
    again = load_recipe(saved)
    assert again == cfg and again.preset == "cpu-tiny"


def test_a_preset_key_in_a_recipe_is_refused_not_ignored(tmp_path):
    child = _write(tmp_path, "c.yaml", "extends: household_gigpo\npreset: gpu\n")
    with pytest.raises(RecipeError, match="default_preset"):
        load_recipe(child)


@pytest.mark.parametrize("override, key, hint", [
    ("train.iteratons=3", "train.iteratons", "did you mean 'iterations'"),
    ("rollout.grup_size=3", "rollout.grup_size", "did you mean 'group_size'"),
    ("tarin.lr=1", "tarin", "did you mean 'train'"),
    ("rollout.arpo.alpah=0.3", "rollout.arpo.alpah", "did you mean 'alpha'"),
])
def test_unknown_keys_suggest_the_closest_and_list_the_allowed(override, key, hint):
    with pytest.raises(RecipeError, match=f"{hint}.*allowed are") as info:
        load_recipe("search_arpo", [override])
    assert f"{key}: unknown key" in str(info.value)


def test_yaml_errors_name_the_file_and_a_bad_parent_names_the_extends_line(tmp_path):
    broken = _write(tmp_path, "broken.yaml", "train:\n  lr: [1\n")
    with pytest.raises(RecipeError, match="broken.yaml\", line") as info:
        load_recipe(broken)
    assert "<unicode string>" not in str(info.value)
    orphan = _write(tmp_path, "orphan.yaml", "name: x\nextends: houshold_gigpo\n")
    with pytest.raises(RecipeError, match=r"orphan.yaml, line 2: extends: 'houshold_gigpo'"):
        load_recipe(orphan)


def test_overrides_may_follow_the_commands_options(capsys):
    """`turnwise train R --import M key=value` (docs/guides/environment.md writes it so): the
    overrides after an option are overrides, and an unknown option still stops."""
    from turnwise.trainer.cli import main

    assert main(["config", "household_grpo", "--import", "json", "train.iterations=7"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["iterations"] == 7
    with pytest.raises(SystemExit):
        main(["config", "household_grpo", "train.iterations=7", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
