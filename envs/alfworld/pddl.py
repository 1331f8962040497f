"""A `GameSpec` as ALFWorld's files: the PDDL problem, `game.tw-pddl` and `traj_data.json`.

The problem states what ALFRED's `initial_state.pddl` files state (types, where each receptacle
and object is, what can hold what, each object's affordances, the agent's start) with the goal
from ALFWorld's goal library; the game file bundles it with ALFWorld's own domain and grammar,
the goal sentence written into the grammar as `alfworld-generate` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .scenes import affords, can_contain, constants, mangle
from .tasks import GameSpec, constants_goals

# ALFRED's object properties and the rule deciding each.
_PROPERTIES = (("cleanable", "Cleanable"), ("heatable", "Heatable"), ("coolable", "Coolable"),
               ("toggleable", "Toggleable"), ("sliceable", "Sliceable"))


@dataclass(frozen=True)
class Rules:
    """What may hold what, what each object affords, which objects hold others (by type)."""

    can_contain: Callable[[str, str], bool]  # (receptacle type, object type)
    affords: Callable[[str, str], bool]  # (Cleanable | Heatable | ..., object type)
    receptacle_objects: frozenset[str]


def alfred_rules() -> Rules:
    """ALFRED's rules, as `alfworld/gen/constants.py` states them."""
    return Rules(can_contain, affords, frozenset(constants().MOVABLE_RECEPTACLES))


def problem(spec: GameSpec, *, name: str = "turnwise", rules: Rules | None = None) -> str:
    """The PDDL problem of `spec` under `rules` (ALFRED's by default)."""
    rules = rules or alfred_rules()
    rtypes = sorted({r.type for r in spec.receptacles})
    otypes = sorted({o.type for o in spec.objects} | {spec.object_target})
    where = {r.id: r.location for r in spec.receptacles}
    locations = sorted(set(where.values()) | {spec.start})
    declare = (["agent1 - agent"] + [f"{t}Type - otype" for t in otypes]
               + [f"{t}Type - rtype" for t in rtypes]
               + [f"{mangle(o.id)} - object" for o in spec.objects]
               + [f"{mangle(r.id)} - receptacle" for r in spec.receptacles]
               + [f"{mangle(loc)} - location" for loc in locations])
    facts = [f"(atLocation agent1 {mangle(spec.start)})"]
    for r in spec.receptacles:
        facts += [f"(receptacleType {mangle(r.id)} {r.type}Type)",
                  f"(receptacleAtLocation {mangle(r.id)} {mangle(r.location)})"]
        facts += [f"(openable {mangle(r.id)})"] if r.type in spec.openable else []
    for o in spec.objects:
        oid = mangle(o.id)
        facts += [f"(objectType {oid} {o.type}Type)", f"(inReceptacle {oid} {mangle(o.receptacle)})",
                  f"(objectAtLocation {oid} {mangle(where[o.receptacle])})"]
        facts += _properties(o.type, oid, rules)
    facts += [f"(canContain {r}Type {o}Type)" for r in rtypes for o in otypes
              if rules.can_contain(r, o)]
    return "\n".join([f"(define (problem {name})", "(:domain alfred)", "(:objects",
                      *declare, ")", "(:init", *facts, ")", goal_pddl(spec)])


def goal_pddl(spec: GameSpec) -> str:
    """The goal from ALFWorld's goal library (it closes the problem's `define`)."""
    template = constants_goals()[spec.task_type]["pddl"]
    # The library writes `?r # receptacle` so the template survives str.format; PDDL wants `-`.
    return template.format(obj=spec.object_target, recep=spec.parent_target,
                           toggle=spec.toggle_target).replace("#", "-").strip()


def _properties(object_type: str, oid: str, rules: Rules) -> list[str]:
    facts = [f"({fact} {oid})" for fact, rule in _PROPERTIES if rules.affords(rule, object_type)]
    if object_type != "DeskLamp":  # a lamp is used where it stands, never carried
        facts.append(f"(pickupable {oid})")
    if object_type in rules.receptacle_objects:
        facts.append(f"(isReceptacleObject {oid})")
    return facts


def game_data(spec: GameSpec, pddl_problem: str) -> dict:
    """The `game.tw-pddl` content before solving (`solvable` and `walkthrough` unknown)."""
    domain, grammar = logic_files()
    return {"pddl_domain": domain.read_text(),
            "grammar": grammar.read_text().replace("UNKNOWN GOAL", spec.goal),
            "pddl_problem": pddl_problem, "solvable": None, "walkthrough": None}


def traj_data(spec: GameSpec, **extra: object) -> dict:
    """The `traj_data.json` fields ALFWorld reads (task type and parameters) plus the room."""
    return {"task_type": spec.task_type, "pddl_params": spec.pddl_params,
            "scene": {"floor_plan": f"FloorPlan{spec.scene}", "scene_num": spec.scene},
            "turk_annotations": {"anns": [{"task_desc": spec.goal}]}, **extra}


def logic_files() -> tuple[Path, Path]:
    """ALFWorld's PDDL domain and text grammar, as the package ships them."""
    from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH

    return Path(ALFRED_PDDL_PATH), Path(ALFRED_TWL2_PATH)
