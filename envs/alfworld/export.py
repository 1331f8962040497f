"""A household task as an ALFWorld game: the same room, objects, goal and rules, written as
ALFWorld's files, so ALFWorld's engine can play what `household` plays and the two be compared.

ALFWorld names things from their ALFRED ids, numbering the instances of a type in the sorted
order of their ids, highest number first; the ids written here are chosen so every receptacle
and object keeps its household name. Each receptacle stands at a location of its own and the
agent starts where none is, as household's agent starts in the middle of the room. The rules
are household's own (its containment table and affordances), with no slicing, which household
does not model.
"""

from __future__ import annotations

from collections import Counter

from ..household.generate import build_world
from ..household.objects import CLEANABLE, COOLABLE, HEATABLE, OPENABLE, TOGGLEABLE
from ..household.objects import can_contain as household_can_contain
from ..household.world import World
from .pddl import Rules
from .scenes import Receptacle, constants
from .tasks import GameSpec, Placed

_AFFORDS = {"Cleanable": CLEANABLE, "Heatable": HEATABLE, "Coolable": COOLABLE,
            "Toggleable": TOGGLEABLE, "Sliceable": frozenset()}
_STATE_TASK = {"clean": "pick_clean_then_place_in_recep", "hot": "pick_heat_then_place_in_recep",
               "cool": "pick_cool_then_place_in_recep"}


def household_rules() -> Rules:
    """Household's containment table and affordances, on ALFRED's type names."""
    return Rules(can_contain=lambda r, o: household_can_contain(r.lower(), o.lower()),
                 affords=lambda kind, o: o.lower() in _AFFORDS[kind],
                 receptacle_objects=frozenset())


def export_task(data: dict) -> GameSpec:
    """The ALFWorld game of a household task's data (`Task.data`)."""
    world = build_world(data)
    if world is None:
        raise ValueError(f"household task data {data} does not describe a possible world")
    return export_world(world)


def export_world(world: World) -> GameSpec:
    """The ALFWorld game of a household world in its initial state."""
    goal = world.goal
    names = [*world.receptacles, *(o for r in world.receptacles.values() for o in r.contents)]
    for kind, count in Counter(_type(n) for n in names).items():
        numbers = sorted(int(n.rsplit(" ", 1)[1]) for n in names if _type(n) == kind)
        if numbers != list(range(1, count + 1)):  # a room cut to max_receptacles keeps gaps
            raise ValueError(f"household {kind}s are numbered {numbers}: ALFWorld numbers the "
                             f"instances of a type 1 to {count}, so this room has no ALFWorld twin")
    counts = Counter(_type(n) for n in world.receptacles)
    receptacles = [Receptacle(_id(name, counts), alfred_type(_type(name)), f"loc|{i + 1}|0|0|30")
                   for i, name in enumerate(world.receptacles)]
    rid = {name: r.id for name, r in zip(world.receptacles, receptacles)}
    objects = [(o, name) for name, r in world.receptacles.items() for o in r.contents]
    counts = Counter(_type(o) for o, _ in objects)
    placed = [Placed(_id(o, counts), alfred_type(_type(o)), rid[name]) for o, name in objects]
    if goal.kind == "look_at_obj_in_light":
        task_type, parent, toggle = goal.kind, "", "DeskLamp"
    else:
        task_type = _STATE_TASK.get(goal.state, goal.kind)
        parent, toggle = alfred_type(goal.target_type), ""
    return GameSpec(scene=0, task_type=task_type, object_target=alfred_type(goal.obj_type),
                    parent_target=parent, toggle_target=toggle, goal=goal.text.rstrip("."),
                    receptacles=receptacles, objects=placed, start="loc|0|0|0|30",
                    openable={alfred_type(t) for t in OPENABLE})


def alfred_type(name: str) -> str:
    """ALFRED's type of a household type name: "sinkbasin" -> "SinkBasin"."""
    c = constants()
    return {t.lower(): t for t in [*c.OBJECTS, *c.RECEPTACLES]}[name]


def _id(name: str, counts: Counter) -> str:
    """An ALFRED id that ALFWorld names `name` ("cabinet 2"): the k-th of n instances of a type
    must come (n - k)-th in the sorted ids, so the position goes into the id's first number."""
    kind, number = _type(name), int(name.rsplit(" ", 1)[1])
    prefix = alfred_type(kind)
    position = f"+{counts[kind] - number:02d}.00|+00.00|+00.00"
    if prefix.endswith("Basin"):  # ALFRED's basins: "Sink|...|SinkBasin" names "sinkbasin"
        return f"{prefix[:-len('Basin')]}|{position}|{prefix}"
    return f"{prefix}|{position}"


def _type(name: str) -> str:
    return name.rsplit(" ", 1)[0]
