"""The household world answers as ALFWorld's text engine does (grammar 2.1.2, alfred.pddl rules)."""

from __future__ import annotations

import pytest
from turnwise.envs.household import HouseholdSuite, plan
from turnwise.envs.household.generate import build_world, make_tasks
from turnwise.envs.household.objects import can_contain
from turnwise.envs.household.world import Goal, Receptacle, World


def _kitchen(goal: Goal) -> World:
    return World(receptacles={
        "countertop 1": Receptacle("countertop 1", contents=["apple 1", "mug 1"]),
        "microwave 1": Receptacle("microwave 1", openable=True, is_open=False),
        "fridge 1": Receptacle("fridge 1", openable=True, is_open=False),
        "coffeemachine 1": Receptacle("coffeemachine 1"),
        "cabinet 1": Receptacle("cabinet 1", openable=True, is_open=False),
    }, goal=goal)


def test_texts_follow_alfworld():
    w = _kitchen(Goal("pick_heat_then_place_in_recep", "apple", "countertop", state="hot"))
    assert w.apply("go to countertop 1") == (
        "You arrive at countertop 1. On the countertop 1, you see a apple 1, and a mug 1.", True)
    assert w.apply("take apple 1 from countertop 1") == (
        "You pick up the apple 1 from the countertop 1.", True)
    assert w.apply("examine apple 1") == ("There's nothing special about apple 1.", True)
    assert w.apply("go to microwave 1") == ("You arrive at microwave 1. The microwave 1 is closed.", True)
    assert w.apply("heat apple 1 with microwave 1") == (
        "You heat the apple 1 using the microwave 1.", True)  # ALFWorld heats in a closed microwave
    assert w.apply("examine apple 1") == ("This is a hot apple 1.", True)
    assert w.apply("open microwave 1") == (
        "You open the microwave 1. The microwave 1 is open. In it, you see nothing.", True)
    assert w.apply("inventory") == ("You are carrying: a apple 1.", True)
    assert w.apply("go to countertop 1")[1]
    # The 2.1.1 form is gone from ALFWorld's grammar: it does nothing.
    assert w.apply("put apple 1 in/on countertop 1") == ("Nothing happens.", False)
    assert w.apply("move apple 1 to countertop 1") == ("You move the apple 1 to the countertop 1.", True)
    assert w.satisfied()
    assert w.apply("look") == ("You are facing the countertop 1. Next to it, you see nothing.", True)


def test_affordances_and_state_changes():
    w = _kitchen(Goal("pick_cool_then_place_in_recep", "apple", "countertop", state="cool"))
    w.apply("go to countertop 1")
    w.apply("take mug 1 from countertop 1")
    w.apply("go to coffeemachine 1")
    assert "move mug 1 to coffeemachine 1" in w.admissible()
    w.apply("move mug 1 to coffeemachine 1")
    w.apply("go to countertop 1")
    w.apply("take apple 1 from countertop 1")
    w.apply("go to coffeemachine 1")
    # canContain: a coffee machine holds mugs only.
    assert not can_contain("coffeemachine", "apple")
    assert "move apple 1 to coffeemachine 1" not in w.admissible()
    assert w.apply("move apple 1 to coffeemachine 1") == ("Nothing happens.", False)
    w.apply("go to microwave 1")
    w.apply("heat apple 1 with microwave 1")
    w.apply("go to fridge 1")
    w.apply("cool apple 1 with fridge 1")
    assert w.states["apple 1"] == {"cool"}  # cooling undoes heating (alfred.pddl CoolObject)
    assert w.apply("examine apple 1") == ("This is a cold apple 1.", True)
    assert w.apply("clean apple 1 with fridge 1") == ("Nothing happens.", False)


def test_admissible_commands_are_sorted_and_exclude_the_current_place():
    w = _kitchen(Goal("pick_and_place_simple", "apple", "cabinet"))
    w.apply("go to countertop 1")
    commands = w.admissible()
    assert commands == sorted(commands)
    assert "go to countertop 1" not in commands and "go to fridge 1" in commands
    assert {"examine countertop 1", "inventory", "look", "take apple 1 from countertop 1"} <= set(commands)
    assert "help" not in commands and w.apply("help")[1]


def test_pick_two_needs_both_in_one_receptacle():
    w = World(receptacles={n: Receptacle(n) for n in ("shelf 1", "shelf 2", "desk 1")},
              goal=Goal("pick_two_obj_and_place", "book", "shelf", count=2))
    w.receptacles["shelf 1"].contents = ["book 1"]
    w.receptacles["shelf 2"].contents = ["book 2"]
    assert not w.satisfied()
    w.receptacles["shelf 1"].contents.append("book 3")
    assert w.satisfied()


def test_generated_worlds_respect_receptacle_contents():
    for task in make_tasks("train", 120, seed=9):
        world = build_world(task.data)
        for rec in world.receptacles.values():
            kind = rec.name.rsplit(" ", 1)[0]
            assert all(can_contain(kind, o.rsplit(" ", 1)[0]) for o in rec.contents
                       if not o.startswith("desklamp")), (task.id, rec)
        if world.goal.target_type:
            assert can_contain(world.goal.target_type, world.goal.obj_type)
        assert not world.satisfied()
        # The privileged expert also solves it (plan raises when its actions fail or fall short).
        assert plan(build_world(task.data), explore=False)[-1].split()[0] in ("move", "use")


def test_a_detour_first_visits_a_receptacle_that_can_hold_neither_object_nor_goal():
    world = _kitchen(Goal("pick_and_place_simple", "apple", "fridge"))
    direct = plan(world)
    assert direct == ["go to countertop 1", "take apple 1 from countertop 1", "go to fridge 1",
                      "open fridge 1", "move apple 1 to fridge 1"]
    # Neither the coffee machine nor the cabinet holds apples; the draw picks one of the two.
    assert plan(world, detour=0.0) == ["go to coffeemachine 1"] + direct
    assert plan(world, detour=0.99) == ["go to cabinet 1", "open cabinet 1"] + direct
    # Nothing useless to visit: no detour.
    small = World(receptacles={
        "countertop 1": Receptacle("countertop 1", contents=["apple 1"]),
        "fridge 1": Receptacle("fridge 1", openable=True, is_open=False),
    }, goal=Goal("pick_and_place_simple", "apple", "fridge"))
    assert plan(small, detour=0.5) == plan(small) == direct


def test_detour_demos_take_a_fixed_share_of_tasks_and_fit_the_step_limit():
    options = {"max_steps": 10, "task_types": ["pick_and_place_simple"], "max_receptacles": 5,
               "distractors": [1, 3]}
    plain, detoured = HouseholdSuite(**options), HouseholdSuite(**options, detour_demos=0.5)
    tasks = plain.tasks("train", 200, 0)
    extra = [len(detoured.oracle(t).actions) - len(plain.oracle(t).actions) for t in tasks]
    assert set(extra) <= {0, 1, 2} and 0.25 < sum(e > 0 for e in extra) / len(tasks) < 0.5
    assert all(len(detoured.oracle(t).actions) <= 10 for t in tasks)
    assert extra == [len(detoured.oracle(t).actions) - len(plain.oracle(t).actions) for t in tasks]
    for bad in (-0.1, "half", True):
        with pytest.raises(ValueError, match=r"env.options.detour_demos=.*: allowed is a number in"):
            HouseholdSuite(detour_demos=bad)
