"""`household`: an ALFWorld-style text world with ALFWorld's six task types.

The agent answers `<action>go to countertop 1</action>`; a reply without an action tag is a
format error (`invalid`), an action the world cannot carry out gives "Nothing happens." The
observations, commands and success checks follow ALFWorld's text engine (see `world.py`); the
welcome banner ALFWorld prints before the first observation is left out (it carries nothing).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable

from ..base import Observation, Step, Task, register_suite
from ..scripted import check_share, task_draw
from .generate import SPLITS, TASK_TYPES, build_world, make_tasks
from .objects import can_contain
from .world import World

SYSTEM_PROMPT = (
    "You are an expert agent operating in a household. Each turn, choose one admissible "
    "action and reply with it inside <action> </action> tags, for example "
    "<action>go to countertop 1</action>."
)
_ACTION = re.compile(r"<action>(.*?)</action>", re.DOTALL)
_ANSWER_VERBS = {"clean": "sinkbasin", "hot": "microwave", "cool": "fridge"}
_VERB = {"clean": "clean", "hot": "heat", "cool": "cool"}


class HouseholdEnv:
    """One household episode."""

    system_prompt = SYSTEM_PROMPT

    def __init__(self, *, max_steps: int = 50, success_reward: float = 10.0,
                 anchor: str = "observation") -> None:
        if anchor not in ("observation", "state"):
            raise ValueError(f"env.options.anchor={anchor!r}: allowed are 'observation', 'state'")
        self.max_steps = max_steps
        self.success_reward = success_reward
        self.anchor_mode = anchor
        self.world: World | None = None
        self.steps = 0

    async def reset(self, task: Task) -> Observation:
        world = build_world(task.data)
        if world is None:
            raise ValueError(f"household task {task.id} does not describe a possible world")
        self.world, self.steps = world, 0
        text = f"{world.describe_room()}\n\nYour task is to: {world.goal.text}"
        return self._observe(text)

    async def step(self, action_text: str) -> Step:
        if self.world is None:
            raise RuntimeError("HouseholdEnv.step before reset")
        self.steps += 1
        found = _ACTION.findall(action_text)
        if found:
            action = found[-1].strip()
            feedback, valid = self.world.apply(action)
        else:
            action, feedback, valid = "", "Nothing happens.", False
        success = self.world.satisfied()
        done = success or self.steps >= self.max_steps
        info = {"success": success, "invalid": not found, "noop": not valid, "action": action,
                "truncated": done and not success}
        return Step(self._observe(feedback), self.success_reward if success else 0.0, done, info)

    async def close(self) -> None:
        self.world = None

    def _observe(self, text: str) -> Observation:
        world = self.world
        anchor = text if self.anchor_mode == "observation" else world.state_key()
        return Observation(text=text, anchor=anchor, admissible_actions=world.admissible(),
                           info={"goal": world.goal.text})


class HouseholdOracle:
    """Replays a plan computed on a private copy of the task's world."""

    def __init__(self, task: Task, *, explore: bool = True, detour: float | None = None,
                 max_steps: int | None = None) -> None:
        world = build_world(task.data)
        if world is None:
            raise ValueError(f"household task {task.id} does not describe a possible world")
        self.actions = plan(world, explore=explore, detour=detour)
        if detour is not None and max_steps is not None and len(self.actions) > max_steps:
            self.actions = plan(world, explore=explore)  # a detour that would not fit: none
        self.position = 0

    def act(self, observation: Observation) -> str:
        action = self.actions[min(self.position, len(self.actions) - 1)]
        self.position += 1
        return f"<action>{action}</action>"


def plan(world: World, *, explore: bool = True, detour: float | None = None) -> list[str]:
    """Actions that solve `world`'s goal.

    With `explore` the expert only knows what it has seen: it searches receptacles in the order
    the room description lists them, as a person would, so its demonstrations can be imitated
    from observations alone. Without it the expert walks straight to the objects. A `detour`
    (a draw in [0, 1)) first sends it to one of the receptacles that can hold neither the object
    nor the goal, chosen by the draw: wasted steps, for RL to learn to drop.
    """
    w = copy.deepcopy(world)
    actions: list[str] = []
    seen: dict[str, str] = {}  # object -> receptacle where it was last seen
    visited: set[str] = set()

    def do(action: str) -> None:
        feedback, valid = w.apply(action)
        if not valid:
            raise RuntimeError(f"oracle action {action!r} failed: {feedback}")
        actions.append(action)
        if w.location is not None:
            visited.add(w.location)
        if w.location is not None and w.receptacles[w.location].is_open:
            seen.update({o: w.location for o in w.receptacles[w.location].contents})

    def go(place: str) -> None:
        if w.location != place:
            do(f"go to {place}")
        if not w.receptacles[place].is_open:
            do(f"open {place}")

    def fetch(obj_type: str, exclude: set[str]) -> str:
        def known() -> str | None:
            hits = sorted(o for o in seen if o.rsplit(" ", 1)[0] == obj_type
                          and o not in exclude and w.where(o) == seen[o])
            return hits[0] if hits else None

        if explore:
            for place in w.receptacles:
                if known() is not None:
                    break
                kind = place.rsplit(" ", 1)[0]
                # Common sense: never search the goal's target, nor where this object cannot be.
                if place not in visited and kind != w.goal.target_type and can_contain(kind, obj_type):
                    go(place)
            obj = known()
        else:
            obj = next(o for o in _instances(w, obj_type) if o not in exclude)
        if obj is None:
            raise RuntimeError(f"oracle found no {obj_type} to fetch")
        go(w.where(obj))
        do(f"take {obj} from {w.location}")
        return obj

    goal = w.goal
    if detour is not None:
        useless = [p for p in w.receptacles if p.rsplit(" ", 1)[0] != goal.target_type
                   and not can_contain(p.rsplit(" ", 1)[0], goal.obj_type)]
        if useless:
            go(useless[int(detour * len(useless))])
    if goal.kind == "look_at_obj_in_light":
        fetch(goal.obj_type, set())
        go(w.where("desklamp 1"))
        do("use desklamp 1")
    else:
        target = sorted(n for n in w.receptacles if n.rsplit(" ", 1)[0] == goal.target_type)[0]
        for _ in range(goal.count):
            placed = {o for r in w.receptacles.values()
                      if r.name.rsplit(" ", 1)[0] == goal.target_type for o in r.contents}
            obj = fetch(goal.obj_type, placed)
            if goal.state:
                appliance = f"{_ANSWER_VERBS[goal.state]} 1"
                go(appliance)
                do(f"{_VERB[goal.state]} {obj} with {appliance}")
            go(target)
            do(f"move {obj} to {target}")
    if not w.satisfied():
        raise RuntimeError(f"oracle plan does not reach the goal {goal.text!r}")
    return actions


def _instances(world: World, obj_type: str) -> list[str]:
    return sorted(o for r in world.receptacles.values() for o in r.contents
                  if o.rsplit(" ", 1)[0] == obj_type)


@register_suite("household")
class HouseholdSuite:
    """Tasks, environments and oracles of the household world."""

    name = "household"

    def __init__(self, *, max_steps: int = 50, success_reward: float = 10.0,
                 anchor: str = "observation", task_types: list[str] | None = None,
                 oracle: str = "explore", max_receptacles: int | None = None,
                 distractors: tuple[int, int] | list[int] = (4, 9),
                 detour_demos: float = 0.0) -> None:
        if oracle not in ("explore", "privileged"):
            raise ValueError(f"env.options.oracle={oracle!r}: allowed are 'explore', 'privileged'")
        if max_receptacles is not None and max_receptacles < 3:
            raise ValueError(f"env.options.max_receptacles={max_receptacles}: allowed are null "
                             "(the full room) or an integer >= 3")
        low, high = distractors
        if not 0 <= low <= high:
            raise ValueError(f"env.options.distractors={list(distractors)}: allowed is [low, high] "
                             "with 0 <= low <= high")
        self.detour_demos = check_share("env.options.detour_demos", detour_demos)
        self.room = {"max_receptacles": max_receptacles, "distractors": (low, high)}
        self.env_options = dict(max_steps=max_steps, success_reward=success_reward, anchor=anchor)
        self.explore = oracle == "explore"
        self.task_types = tuple(task_types or TASK_TYPES)
        HouseholdEnv(**self.env_options)  # validate options now, not at the first episode
        make_tasks("train", 1, 0, self.task_types, **self.room)

    def make(self) -> HouseholdEnv:
        return HouseholdEnv(**self.env_options)

    def tasks(self, split: str, count: int, seed: int) -> list[Task]:
        return make_tasks(split, count, seed, self.task_types, **self.room)

    def oracle(self, task: Task) -> HouseholdOracle:
        """The expert; on a share `detour_demos` of the tasks it first visits a receptacle that
        cannot help (when the detour still fits in `max_steps`)."""
        detour = (task_draw(task.id, "detour-place:")
                  if task_draw(task.id, "detour:") < self.detour_demos else None)
        return HouseholdOracle(task, explore=self.explore, detour=detour,
                               max_steps=self.env_options["max_steps"])

    def corpus(self) -> Iterable[str]:
        yield SYSTEM_PROMPT
        for split in SPLITS:
            for task in make_tasks(split, 120, 7, TASK_TYPES):
                world = build_world(task.data)
                yield f"{world.describe_room()}\n\nYour task is to: {world.goal.text}"
                yield "\n".join(world.admissible())
                for action in plan(world):
                    feedback, _ = world.apply(action)
                    yield f"<action>{action}</action>\n{feedback}"
                    yield "\n".join(world.admissible())


__all__ = ["HouseholdEnv", "HouseholdOracle", "HouseholdSuite", "TASK_TYPES", "plan"]
