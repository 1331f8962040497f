"""Procedural household tasks: rooms, layouts, objects, and ALFWorld's six task types.

A task is a few integers (room, layout, seed, task type); the world is rebuilt from them at
reset, so tasks are cheap to store and every episode of a group starts from the same state.
Splits: `train` and `valid_seen` share layouts and object/target pairs; `valid_unseen` uses
layouts and (object, target) pairs that the other splits never contain.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from ..base import Task
from .objects import CLEANABLE, COOLABLE, HEATABLE, LAMP_SPOTS, LOOKABLE, OPENABLE, can_contain
from .world import Goal, Receptacle, World

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
SPLITS = ("train", "valid_seen", "valid_unseen")
LAYOUTS_PER_ROOM = 10
UNSEEN_LAYOUTS = (8, 9)  # layout indices reserved for valid_unseen



@dataclass(frozen=True)
class RoomKind:
    # receptacle type -> (min count, max count)
    receptacles: dict[str, tuple[int, int]]
    objects: tuple[str, ...]
    targets: tuple[str, ...]  # receptacle types a task may ask to place into


# Room kinds after ALFRED's scenes, smaller than ALFWorld's (whose kitchens reach 20 cabinets)
# to keep CPU runs short. ALFRED's GOALS_VALID says which task types each kind admits (heat and
# cool: kitchens; clean: kitchens and bathrooms; look-at: bedrooms and living rooms), which
# `_rooms_for` reproduces from the receptacles each kind has.
ROOMS: dict[str, RoomKind] = {
    "kitchen": RoomKind(
        {"cabinet": (2, 5), "countertop": (1, 3), "drawer": (1, 3), "fridge": (1, 1),
         "microwave": (1, 1), "sinkbasin": (1, 1), "stoveburner": (1, 2), "garbagecan": (1, 1),
         "shelf": (0, 2), "diningtable": (1, 1), "coffeemachine": (1, 1), "toaster": (1, 1)},
        ("apple", "potato", "tomato", "egg", "lettuce", "bread", "mug", "cup", "pan", "pot",
         "plate", "bowl", "knife", "fork", "spoon", "spatula", "kettle", "winebottle",
         "saltshaker", "peppershaker", "dishsponge", "ladle", "soapbottle"),
        ("countertop", "cabinet", "fridge", "microwave", "diningtable", "shelf", "drawer",
         "garbagecan", "stoveburner", "coffeemachine", "sinkbasin"),
    ),
    "bedroom": RoomKind(
        {"bed": (1, 1), "desk": (1, 1), "drawer": (2, 4), "shelf": (1, 3), "sidetable": (1, 2),
         "dresser": (1, 1), "garbagecan": (1, 1), "laundryhamper": (1, 1), "safe": (0, 1)},
        ("alarmclock", "book", "cd", "cellphone", "creditcard", "keychain", "laptop", "pen",
         "pencil", "pillow", "statue", "vase", "bowl", "mug", "watch", "cloth", "box"),
        ("bed", "desk", "drawer", "shelf", "sidetable", "dresser", "garbagecan", "safe",
         "laundryhamper"),
    ),
    "livingroom": RoomKind(
        {"sofa": (1, 1), "armchair": (1, 1), "coffeetable": (1, 1), "sidetable": (1, 2),
         "drawer": (1, 3), "cabinet": (1, 3), "tvstand": (1, 1), "garbagecan": (1, 1),
         "shelf": (1, 3)},
        ("remotecontrol", "newspaper", "box", "keychain", "creditcard", "laptop", "pillow",
         "statue", "vase", "watch", "book", "cellphone", "plate", "candle", "tissuebox"),
        ("sofa", "armchair", "coffeetable", "sidetable", "drawer", "cabinet", "tvstand",
         "shelf", "garbagecan"),
    ),
    "bathroom": RoomKind(
        {"sinkbasin": (1, 1), "bathtubbasin": (1, 1), "countertop": (1, 1), "toilet": (1, 1),
         "towelholder": (1, 1), "handtowelholder": (1, 1), "cabinet": (1, 4), "drawer": (1, 3),
         "garbagecan": (1, 1), "shelf": (0, 2), "toiletpaperhanger": (1, 1)},
        ("soapbar", "soapbottle", "spraybottle", "toiletpaper", "towel", "handtowel", "cloth",
         "candle", "tissuebox", "dishsponge", "plunger"),
        ("countertop", "cabinet", "drawer", "toilet", "garbagecan", "shelf", "bathtubbasin",
         "sinkbasin", "towelholder", "handtowelholder", "toiletpaperhanger"),
    ),
}

_PHRASES = {
    "pick_and_place_simple": ["put a {o} in {r}.", "put some {o} on {r}."],
    "look_at_obj_in_light": ["look at {o} under the desklamp.", "examine the {o} with the desklamp."],
    "pick_clean_then_place_in_recep": ["put a clean {o} in {r}.", "clean some {o} and put it in {r}."],
    "pick_heat_then_place_in_recep": ["put a hot {o} in {r}.", "heat some {o} and put it in {r}."],
    "pick_cool_then_place_in_recep": ["put a cool {o} in {r}.", "cool some {o} and put it in {r}."],
    "pick_two_obj_and_place": ["put two {o} in {r}.", "find two {o} and put them in {r}."],
}
_STATE = {"pick_clean_then_place_in_recep": "clean", "pick_heat_then_place_in_recep": "hot",
          "pick_cool_then_place_in_recep": "cool"}
_APPLIANCE = {"clean": "sinkbasin", "hot": "microwave", "cool": "fridge"}


def make_tasks(split: str, count: int, seed: int, task_types: tuple[str, ...] = TASK_TYPES, *,
               max_receptacles: int | None = None,
               distractors: tuple[int, int] = (4, 9)) -> list[Task]:
    """`count` tasks of `split`, cycling through `task_types`; fully determined by `seed`.

    `max_receptacles` caps a room's receptacles and `distractors` bounds the other objects
    placed in it: small rooms are a curriculum for small models (and short prompts).
    """
    if split not in SPLITS:
        raise ValueError(f"household split={split!r}: allowed are {list(SPLITS)}")
    unknown = set(task_types) - set(TASK_TYPES)
    if unknown:
        raise ValueError(f"env.options.task_types: unknown {sorted(unknown)}; allowed are {list(TASK_TYPES)}")
    tasks = []
    for i in range(count):
        kind = task_types[i % len(task_types)]
        rng = random.Random(_digest(split, seed, i))
        for _ in range(1000):  # rejection sampling of an admissible (room, layout, goal)
            data = {"kind": kind, "room": rng.choice(_rooms_for(kind)),
                    "layout": _pick_layout(rng, split), "seed": rng.randrange(1 << 30),
                    "max_receptacles": max_receptacles, "distractors": list(distractors)}
            world = build_world(data)
            if world is not None and _pair_in_split(world.goal, split):
                break
        else:  # pragma: no cover - the catalogue always admits some task
            raise RuntimeError(f"no household task of type {kind} fits split {split}")
        data["goal"] = world.goal.text
        tasks.append(Task(id=f"household/{split}/{seed}/{i}", kind=kind, data=data))
    return tasks


def build_world(data: dict) -> World | None:
    """The initial world of a task, or None when its random goal is impossible in this room."""
    kind, room_name = data["kind"], data["room"]
    room = ROOMS[room_name]
    rng = random.Random(_digest("world", room_name, data["layout"], data["seed"]))
    receptacles = _layout(room_name, data["layout"], data.get("max_receptacles"))
    candidates = _goal_objects(kind, room)
    if not candidates:
        return None
    obj_type = rng.choice(candidates)
    target_type = None
    state = _STATE.get(kind)
    if kind != "look_at_obj_in_light":
        # A target must be able to hold the object, and is never the appliance the task needs.
        appliance = _APPLIANCE.get(state)
        if appliance and not any(_type(n) == appliance for n in receptacles):
            return None  # a capped room may lack the sink, microwave or fridge the task needs
        targets = [t for t in room.targets if t != appliance and can_contain(t, obj_type)
                   and any(_type(n) == t for n in receptacles)]
        if not targets:
            return None
        target_type = rng.choice(targets)
    phrase = rng.choice(_PHRASES[kind]).format(o=obj_type, r=target_type)
    goal = Goal(kind=kind, obj_type=obj_type, target_type=target_type,
                count=2 if kind == "pick_two_obj_and_place" else 1, state=state, text=phrase)
    # Goal objects start where they may be, never in the target type (the task would be done).
    sources = [n for n in receptacles if _type(n) != target_type and can_contain(_type(n), obj_type)]
    if not sources:
        return None
    if kind == "look_at_obj_in_light":
        lamp_spots = [n for n in receptacles if _type(n) in LAMP_SPOTS]
        if not lamp_spots:
            return None
        receptacles[rng.choice(lamp_spots)].contents.append("desklamp 1")
    counters: dict[str, int] = {}
    for _ in range(goal.count + rng.randint(0, 1)):
        _place(receptacles, rng.choice(sources), obj_type, counters)
    distractors = [o for o in room.objects if o != obj_type]
    for _ in range(rng.randint(*data.get("distractors", (4, 9)))):
        other = rng.choice(distractors)
        spots = [n for n in receptacles if can_contain(_type(n), other)]
        if spots:
            _place(receptacles, rng.choice(spots), other, counters)
    for rec in receptacles.values():
        rng.shuffle(rec.contents)
    return World(receptacles=receptacles, goal=goal)


def _layout(room_name: str, layout: int, cap: int | None = None) -> dict[str, Receptacle]:
    rng = random.Random(_digest("layout", room_name, layout))
    receptacles: dict[str, Receptacle] = {}
    for rec_type, (low, high) in ROOMS[room_name].receptacles.items():
        for number in range(1, rng.randint(low, high) + 1):
            name = f"{rec_type} {number}"
            openable = rec_type in OPENABLE
            receptacles[name] = Receptacle(name, openable=openable, is_open=not openable)
    order = list(receptacles)
    rng.shuffle(order)
    return {n: receptacles[n] for n in order[:cap]}


def _goal_objects(kind: str, room: RoomKind) -> list[str]:
    allowed = {"pick_clean_then_place_in_recep": CLEANABLE, "pick_heat_then_place_in_recep": HEATABLE,
               "pick_cool_then_place_in_recep": COOLABLE, "look_at_obj_in_light": LOOKABLE}
    pool = allowed.get(kind)
    return [o for o in room.objects if pool is None or o in pool]


def _rooms_for(kind: str) -> list[str]:
    needs = {"pick_clean_then_place_in_recep": "sinkbasin", "pick_heat_then_place_in_recep": "microwave",
             "pick_cool_then_place_in_recep": "fridge", "look_at_obj_in_light": "|".join(sorted(LAMP_SPOTS))}
    need = needs.get(kind)
    if need is None:
        return list(ROOMS)
    return [r for r, room in ROOMS.items() if any(n in room.receptacles for n in need.split("|"))]


def _pick_layout(rng: random.Random, split: str) -> int:
    if split == "valid_unseen":
        return rng.choice(UNSEEN_LAYOUTS)
    return rng.choice([i for i in range(LAYOUTS_PER_ROOM) if i not in UNSEEN_LAYOUTS])


def _pair_in_split(goal: Goal, split: str) -> bool:
    """One (object, target) pair in five is held out for valid_unseen."""
    held_out = int(_digest("pair", goal.obj_type, goal.target_type), 16) % 5 == 0
    return held_out == (split == "valid_unseen")


def _place(receptacles: dict[str, Receptacle], where: str, obj_type: str, counters: dict[str, int]) -> None:
    counters[obj_type] = counters.get(obj_type, 0) + 1
    receptacles[where].contents.append(f"{obj_type} {counters[obj_type]}")


def _type(name: str) -> str:
    return name.rsplit(" ", 1)[0]


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
