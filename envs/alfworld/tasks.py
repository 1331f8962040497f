"""One ALFWorld game drawn from a seed: a room, a task of one of the six types, where things are.

The draw follows ALFRED's rules: which rooms admit a task type (`GOALS_VALID`), which objects can
be heated, cooled, cleaned (`VAL_ACTION_OBJECTS`), which receptacles may hold them
(`VAL_RECEPTACLE_OBJECTS`), up to three instances of an object. The goal objects never start in
a receptacle of the target type (the task would be done). `max_receptacles` and `distractors`
shrink a room for small models; the receptacles a task needs always stay.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from .scenes import (
    LAMP_SPOTS,
    Receptacle,
    affords,
    can_contain,
    constants,
    load_scene,
    location_name,
    scene_numbers,
)

TASK_TYPES = ("pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
              "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep",
              "pick_two_obj_and_place")
SPLITS = ("train", "valid_seen", "valid_unseen")
# The appliance a task type needs, and which objects it accepts.
NEEDS = {"pick_clean_then_place_in_recep": ("SinkBasin", "Cleanable"),
         "pick_heat_then_place_in_recep": ("Microwave", "Heatable"),
         "pick_cool_then_place_in_recep": ("Fridge", "Coolable")}
MAX_INSTANCES = 3  # ALFRED's MAX_NUM_OF_OBJ_INSTANCES


@dataclass(frozen=True)
class Placed:
    id: str  # "Apple|+01.25|+00.90|-00.50"
    type: str
    receptacle: str  # the id of the receptacle it is in


@dataclass
class GameSpec:
    """Everything a game file says: room, task, initial state."""

    scene: int
    task_type: str
    object_target: str
    parent_target: str  # "" for look_at_obj_in_light
    toggle_target: str  # "DeskLamp" for look_at_obj_in_light, else ""
    goal: str  # "put a apple in fridge"
    receptacles: list[Receptacle]
    objects: list[Placed]
    start: str  # the agent's location, where no receptacle is
    openable: set[str] = field(default_factory=set)  # receptacle types that open

    @property
    def pddl_params(self) -> dict:
        return {"object_target": self.object_target, "parent_target": self.parent_target,
                "toggle_target": self.toggle_target, "mrecep_target": "", "object_sliced": False}

    @property
    def folder_name(self) -> str:
        """ALFWorld's folder name: task-Object-Mrecep-Target-FloorPlan."""
        target = self.parent_target or self.toggle_target
        return f"{self.task_type}-{self.object_target}-None-{target}-{self.scene}"


def draw_game(split: str, seed: int, index: int, task_type: str, *,
              max_receptacles: int | None = None, distractors: int | None = None) -> GameSpec:
    """Game `index` of `split` for `seed`; the same arguments always give the same game."""
    if split not in SPLITS:
        raise ValueError(f"alfworld split={split!r}: allowed are {list(SPLITS)}")
    if task_type not in TASK_TYPES:
        raise ValueError(f"alfworld task type {task_type!r}: allowed are {list(TASK_TYPES)}")
    rng = random.Random(_digest(split, seed, index, task_type))
    rooms = constants().GOALS_VALID[task_type]
    scenes = [n for n in scene_numbers(split) if load_scene(n).room in rooms]
    for _ in range(1000):  # rejection sampling of a (room, object, target) the rules admit
        spec = _try_draw(rng, rng.choice(scenes), task_type, max_receptacles, distractors)
        if spec is not None:
            return spec
    raise RuntimeError(f"no {task_type} game fits split {split}")  # pragma: no cover


def _try_draw(rng: random.Random, number: int, task_type: str, max_receptacles: int | None,
              distractors: int | None) -> GameSpec | None:
    scene = load_scene(number)
    appliance, skill = NEEDS.get(task_type, (None, None))
    if appliance and not any(r.type == appliance for r in scene.receptacles):
        return None
    lamp = task_type == "look_at_obj_in_light"
    spots = [r for r in scene.receptacles if r.type in LAMP_SPOTS]
    if lamp and ("DeskLamp" not in scene.object_types or not spots):
        return None
    kinds = [o for o in scene.object_types if o != "DeskLamp" and (skill is None or affords(skill, o))]
    if not kinds:
        return None
    obj = rng.choice(kinds)
    targets = sorted({r.type for r in scene.receptacles if r.type != appliance
                      and can_contain(r.type, obj)}) if not lamp else [""]
    target = rng.choice(targets) if targets else None
    sources = [r for r in scene.receptacles if r.type != target and can_contain(r.type, obj)]
    if target is None or not sources:
        return None
    needed = [rng.choice(sources)]
    needed += [rng.choice([r for r in scene.receptacles if r.type == t])
               for t in (target, appliance) if t]
    needed += [rng.choice(spots)] if lamp else []
    receptacles = _keep(rng, list(scene.receptacles), needed, max_receptacles)
    sources = [r for r in receptacles if r.type != target and can_contain(r.type, obj)]
    low = 2 if task_type == "pick_two_obj_and_place" else 1
    placed = [(obj, rng.choice(sources)) for _ in range(rng.randint(low, MAX_INSTANCES))]
    if lamp:
        placed.append(("DeskLamp", rng.choice([r for r in receptacles if r.type in LAMP_SPOTS])))
    placed += _distractors(rng, scene.object_types, obj, receptacles, distractors)
    template = rng.choice(constants_goals()[task_type]["templates"])
    goal = template.format(obj=obj.lower(), recep=target.lower(), toggle="desklamp")
    used = {r.location for r in receptacles}
    start = _start(rng, scene.floor, used)
    return GameSpec(scene=number, task_type=task_type, object_target=obj, parent_target=target,
                    toggle_target="DeskLamp" if lamp else "", goal=goal,
                    receptacles=receptacles, objects=_ids(rng, placed), start=start,
                    openable=set(constants().OPENABLE_CLASS_LIST))


def constants_goals() -> dict:
    """ALFWorld's goal library: per task type, the PDDL goal and the goal sentences."""
    from alfworld.gen import goal_library

    return goal_library.gdict


def _keep(rng: random.Random, receptacles: list[Receptacle], needed: list[Receptacle],
          cap: int | None) -> list[Receptacle]:
    """The receptacles the task needs plus random others, up to `cap`, in the room's order."""
    if cap is None:
        return receptacles
    others = [r for r in receptacles if r not in needed]
    rng.shuffle(others)
    kept = set(needed) | set(others[:max(cap - len(set(needed)), 0)])
    return [r for r in receptacles if r in kept]


def _distractors(rng: random.Random, kinds: tuple[str, ...], goal_obj: str,
                 receptacles: list[Receptacle], cap: int | None) -> list[tuple[str, Receptacle]]:
    """The room's other objects, 1-3 of each where some receptacle may hold them; at most `cap`."""
    placed = []
    for kind in kinds:
        spots = [r for r in receptacles if can_contain(r.type, kind)]
        if kind in (goal_obj, "DeskLamp") or not spots:
            continue
        placed += [(kind, rng.choice(spots)) for _ in range(rng.randint(1, MAX_INSTANCES))]
    rng.shuffle(placed)
    return placed if cap is None else placed[:cap]


def _ids(rng: random.Random, placed: list[tuple[str, Receptacle]]) -> list[Placed]:
    # ALFRED names an object by its type and position; ALFWorld numbers same-type objects in
    # the sorted order of these ids, so random positions give a random numbering, as in ALFRED.
    out, seen = [], set()
    for kind, receptacle in placed:
        oid = kind
        while oid == kind or oid in seen:
            x, y, z = (rng.uniform(-4, 4), rng.uniform(0, 2), rng.uniform(-4, 4))
            oid = f"{kind}|{x:+06.2f}|{y:+06.2f}|{z:+06.2f}"
        seen.add(oid)
        out.append(Placed(oid, kind, receptacle.id))
    return out


def _start(rng: random.Random, floor: tuple[tuple[float, float], ...], used: set[str]) -> str:
    """A floor point facing some way, where no receptacle stands: the middle of the room."""
    while True:
        x, z = rng.choice(floor)
        start = location_name(x, z, 90 * rng.randrange(4), 30)
        if start not in used:
            return start


def _digest(*parts: object) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:16], 16)
