"""ALFRED's rooms and object rules as ALFWorld ships them, read into plain data.

Each of the 120 AI2-THOR floor plans comes with `FloorPlan<N>-objects.json` (the object and
receptacle types in the room), `FloorPlan<N>-openable.json` (receptacle ids with the pose the
agent stands at to use them) and `FloorPlan<N>-layout.npy` (the reachable floor points).
`alfworld/gen/constants.py` says what each receptacle type may hold, which objects can be
cleaned, heated, cooled, toggled or sliced, and which room types admit which task types.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

GRID = 0.25  # metres per step of ALFRED's navigation grid: location names count in steps
# Where a desk lamp may stand (ALFRED's lamps sit on these; its rules list no lamp receptacle).
LAMP_SPOTS = ("Desk", "SideTable", "Dresser")


@dataclass(frozen=True)
class Receptacle:
    id: str  # ALFRED's id, "Cabinet|+00.68|+00.50|-02.20" or "Sink|...|SinkBasin"
    type: str  # "Cabinet", "SinkBasin"
    location: str  # "loc|0|-5|2|30": grid x, grid z, rotation / 90, camera horizon


@dataclass(frozen=True)
class Scene:
    number: int
    room: str  # Kitchen, LivingRoom, Bedroom, Bathroom
    receptacles: tuple[Receptacle, ...]
    object_types: tuple[str, ...]  # pickupable types found in the room, plus DeskLamp
    floor: tuple[tuple[float, float], ...]  # reachable (x, z) points


def constants():
    """ALFWorld's `alfworld.gen.constants` (imported late: the package is optional)."""
    from alfworld.gen import constants as alfred_constants

    return alfred_constants


def layouts_dir() -> Path:
    import alfworld.gen

    return Path(alfworld.gen.__file__).parent / "layouts"


def scene_numbers(split: str) -> list[int]:
    """Floor plans of a split: train and valid_seen share ALFRED's training rooms; valid_unseen
    has the rooms ALFRED holds out for testing (`TEST_SCENE_NUMBERS`), never seen in training."""
    c = constants()
    numbers = c.TEST_SCENE_NUMBERS if split == "valid_unseen" else c.TRAIN_SCENE_NUMBERS
    shipped = {int(p.name[len("FloorPlan"):-len("-objects.json")])
               for p in layouts_dir().glob("FloorPlan*-objects.json")}
    return sorted(n for n in numbers if n in shipped)


def room_of(number: int) -> str:
    return next(room for room, numbers in constants().SCENE_TYPE.items() if number in numbers)


@cache
def load_scene(number: int) -> Scene:
    """Floor plan `number` with its receptacles placed at their poses.

    A receptacle type the room has but whose pose the layout lacks (garbage cans, stove burners,
    toasters, towel holders ...) gets one instance at a reachable floor point of its own.
    """
    import numpy as np

    c, folder = constants(), layouts_dir()
    types = set(json.loads((folder / f"FloorPlan{number}-objects.json").read_text()))
    poses = json.loads((folder / f"FloorPlan{number}-openable.json").read_text())
    floor = tuple((float(x), float(z)) for x, z in np.load(folder / f"FloorPlan{number}-layout.npy"))
    receptacles = [Receptacle(rid, receptacle_type(rid), location_name(*pose))
                   for rid, pose in sorted(poses.items())]
    placed = {r.type for r in receptacles}
    missing = sorted((types & set(c.VAL_RECEPTACLE_OBJECTS)) - placed - set(c.MOVABLE_RECEPTACLES))
    for i, rtype in enumerate(missing):
        x, z = floor[(number * 7919 + i * 104729) % len(floor)]  # a fixed point per (room, type)
        rid = f"{rtype}|{x:+06.2f}|+00.00|{z:+06.2f}"
        receptacles.append(Receptacle(rid, rtype, location_name(x, z, 0, 30)))
    objects = sorted(t for t in types if t in pickupable_types()) + (
        ["DeskLamp"] if "DeskLamp" in types else [])
    return Scene(number, room_of(number), tuple(receptacles), tuple(objects), floor)


def receptacle_type(rid: str) -> str:
    """"Sink|...|SinkBasin" -> SinkBasin; "Cabinet|..." -> Cabinet."""
    parts = rid.split("|")
    return parts[-1] if parts[-1].endswith("Basin") else parts[0]


def location_name(x: float, z: float, rotation: float, horizon: float) -> str:
    return f"loc|{round(x / GRID)}|{round(z / GRID)}|{int(rotation) // 90}|{int(horizon)}"


@cache
def pickupable_types() -> frozenset[str]:
    """Object types some receptacle may hold (so they can be picked up and put down), whole
    objects only (ALFWorld leaves sliced objects out)."""
    c = constants()
    held = set().union(*c.VAL_RECEPTACLE_OBJECTS.values())
    return frozenset(o for o in c.OBJECTS if o in held)


def can_contain(receptacle_type: str, object_type: str) -> bool:
    return object_type in constants().VAL_RECEPTACLE_OBJECTS.get(receptacle_type, ())


def affords(kind: str, object_type: str) -> bool:
    """kind: Heatable, Coolable, Cleanable, Toggleable or Sliceable (ALFRED's action rules)."""
    return object_type in constants().VAL_ACTION_OBJECTS[kind]


def mangle(name: str) -> str:
    """An ALFRED id as a PDDL name: "Cabinet|+00.68" -> "Cabinet_bar__plus_00_dot_68"."""
    for char, word in (("|", "_bar_"), ("-", "_minus_"), ("+", "_plus_"), (".", "_dot_"),
                       (",", "_comma_")):
        name = name.replace(char, word)
    return name
