"""`ToolEnv`: an executor (running a tool registry's tools), a tool-call parser and a reward
function make an environment.

Each reply of the agent is parsed: tool calls run through the shared `Executor` and their
results become the next observation; a final answer ends the episode with
`reward(answer, task)`; a malformed reply gets an error observation and `invalid=True`.

A suite builds the shared parts once (the index behind a search tool, the executor with its
concurrency limits and metrics) and makes one `ToolEnv` per episode:

    factory = ToolEnvFactory(tools=[bm25_search_tool("wiki.jsonl")], parser="xml", reward=f1)
    env = factory()            # in EnvSuite.make()
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from ..tools.base import Tool, ToolContext
from ..tools.builtin import build_tools
from ..tools.executor import Executor
from ..tools.parsers import PARSERS, ActionParser, ToolParser, make_parser
from ..tools.plugins import check_options
from ..tools.registry import ToolRegistry
from .base import Observation, Step, Task

Reward = Callable[[str, Task], float]
Evidence = Callable[[Sequence[str], Task], bool]
ANCHORS = ("observation", "state")


class ToolEnv:
    """One episode of answering a task with tools.

    Args:
        executor: runs the calls (shared by all episodes of a suite).
        parser: the tool-call format (shared too).
        reward: (final answer, task) -> reward of the episode.
        instructions: task-specific text put before the format instructions.
        max_calls_per_episode: calls beyond it are refused with an observation asking for the
            answer (None: no limit). Calls per reply are limited by the parser's `max_calls`.
        success_threshold: an episode succeeds when its reward reaches this.
        prompt_field: the `task.data` key holding the question shown first.
        success: (final answer, task) -> whether the episode succeeded, instead of the threshold
            (search QA: exact match while the reward is F1).
        score: (final answer, task) -> the task's own score, reported as the final step's
            `info["score"]` (what `turnwise eval` reports as score).
        evidence: (the episode's tool results, task) -> whether they held what the answer needs
            (search QA: a gold answer in a retrieved passage), reported as the final step's
            `info["evidence_found"]`; it tells failures to find from failures to read.
        anchor: "observation" keys a state by the observation text (the question at the start);
            "state" by the set of distinct tool results seen so far, so turns that gathered the
            same information share an anchor whatever their order or malformed replies between.
    """

    def __init__(self, executor: Executor, parser: ToolParser, reward: Reward, *,
                 instructions: str = "", max_calls_per_episode: int | None = 8,
                 success_threshold: float = 1.0, prompt_field: str = "question",
                 success: Callable[[str, Task], bool] | None = None, score: Reward | None = None,
                 evidence: Evidence | None = None, anchor: str = "observation") -> None:
        _check_parts(executor, parser, reward)
        if isinstance(parser, ActionParser) and parser.tool is None:
            raise ValueError("ToolEnv with the action parser needs parser option tool=<tool name> "
                             "(the tool that carries out actions)")
        if max_calls_per_episode is not None and max_calls_per_episode < 0:
            raise ValueError(f"max_calls_per_episode={max_calls_per_episode}: must be >= 0 or None")
        if anchor not in ANCHORS:
            raise ValueError(f"anchor={anchor!r}: allowed are {list(ANCHORS)}")
        self.executor = executor
        self.parser = parser
        self.reward = reward
        self.instructions = instructions
        self.max_calls_per_episode = max_calls_per_episode
        self.success_threshold = success_threshold
        self.prompt_field = prompt_field
        self.success = success
        self.score = score
        self.evidence = evidence
        self.anchor_mode = anchor
        self.seen: set[str] = set()  # distinct ok tool results of this episode ("state" anchors)
        self.system_prompt = "\n\n".join(p for p in (instructions, parser.instructions()) if p)
        self.task: Task | None = None
        self.context: ToolContext | None = None
        self.calls_made = 0

    async def reset(self, task: Task) -> Observation:
        if self.context is not None:
            await self.context.aclose()
        if self.prompt_field not in task.data:
            raise ValueError(f"ToolEnv: task {task.id} has no data[{self.prompt_field!r}] "
                             f"(keys: {sorted(task.data)}); set prompt_field")
        self.task, self.calls_made, self.seen = task, 0, set()
        self.context = ToolContext(episode_id=task.id, task=task)
        question = str(task.data[self.prompt_field])
        return Observation(text=question, anchor=self._anchor(question))

    async def step(self, action_text: str) -> Step:
        if self.task is None or self.context is None:
            raise RuntimeError("ToolEnv.step before reset")
        parsed = self.parser.parse(action_text)
        if parsed.invalid:
            return self._refuse(parsed.error or "malformed response", invalid=True,
                                action=action_text.strip())
        if parsed.final:
            reward = float(self.reward(parsed.answer, self.task))
            success = (bool(self.success(parsed.answer, self.task)) if self.success is not None
                       else reward >= self.success_threshold)
            info = {"success": success, "invalid": False, "action": parsed.answer,
                    "answer": parsed.answer, "tool_calls": [], "error": None}
            if self.score is not None:
                info["score"] = float(self.score(parsed.answer, self.task))
            if self.evidence is not None:
                results = [seen.split("\0", 1)[1] for seen in sorted(self.seen)]
                info["evidence_found"] = bool(self.evidence(results, self.task))
            text = "Answer recorded."
            return Step(Observation(text, anchor=self._anchor(text)), reward=reward, done=True,
                        info=info)
        limit = self.max_calls_per_episode
        if limit is not None and self.calls_made + len(parsed.calls) > limit:
            return self._refuse(f"the tool budget of this episode ({limit} calls) is spent; "
                                "give your final answer now", invalid=False,
                                action=_describe(parsed.calls))
        self.calls_made += len(parsed.calls)
        results = await self.executor.call_many(parsed.calls, self.context)
        role, text = self.parser.format_results(results)
        errors = [f"{r.name}: {r.error}" for r in results if r.error]
        self.seen.update(f"{r.name}\0{r.content}" for r in results if r.ok)
        info = {"success": False, "invalid": any(r.status == "invalid" for r in results),
                "action": parsed.action if parsed.action is not None else _describe(parsed.calls),
                "tool_calls": [r.to_info() for r in results],
                "error": "; ".join(errors) if errors else None}
        return Step(Observation(text, anchor=self._anchor(text), role=role), reward=0.0,
                    done=False, info=info)

    def fork(self) -> ToolEnv:
        """A copy at this point of the episode (ARPO branches): it shares the executor, parser
        and reward, and copies the episode's counters. Tool sessions cannot be copied, so an
        episode whose stateful tools opened one refuses to fork."""
        if self.context is not None and self.context.state:
            raise ValueError(f"ToolEnv.fork: episode {self.context.episode_id} holds stateful "
                             f"tool sessions ({sorted(self.context.state)}), which cannot be "
                             "copied; ARPO branching needs stateless tools (env.options."
                             "stateful=false)")
        twin = copy.copy(self)
        twin.seen = set(self.seen)
        if self.task is not None:
            twin.context = ToolContext(episode_id=self.context.episode_id if self.context
                                       else None, task=self.task)
        return twin

    async def close(self) -> None:
        if self.context is not None:
            await self.context.aclose()
            self.context = None

    def _anchor(self, text: str) -> Hashable:
        if self.anchor_mode == "observation":
            return text
        # A digest keeps logged anchors short; equal sets of results give equal digests.
        digest = hashlib.sha256("\1".join(sorted(self.seen)).encode()).hexdigest()[:16]
        return f"seen{len(self.seen)}:{digest}"

    def _refuse(self, error: str, *, invalid: bool, action: str) -> Step:
        role, text = self.parser.format_error(error)
        info = {"success": False, "invalid": invalid, "action": action, "tool_calls": [],
                "error": error}
        return Step(Observation(text, anchor=self._anchor(text), role=role), reward=0.0,
                    done=False, info=info)


def _check_parts(executor: Any, parser: Any, reward: Any) -> None:
    """Refuse at construction what would only fail at the first step."""
    if not isinstance(executor, Executor):
        how = ("wrap the registry: Executor(registry)" if isinstance(executor, ToolRegistry)
               else "e.g. Executor(ToolRegistry([...]))")
        raise TypeError(f"ToolEnv: executor must be a turnwise.tools.Executor, got "
                        f"{type(executor).__name__}; {how}, or let ToolEnvFactory(tools, reward, "
                        f"parser=...) build the executor and the parser")
    missing = [m for m in ("instructions", "parse", "format_results", "format_error")
               if not callable(getattr(parser, m, None))]
    if missing:
        how = (f"make_parser({parser!r}, registry)" if isinstance(parser, str)
               else f"make_parser(name, registry) with a name from {sorted(PARSERS)}")
        raise TypeError(f"ToolEnv: parser must be a tool-call parser (it lacks {missing}), got "
                        f"{type(parser).__name__}; {how} (turnwise.tools.parsers)")
    if not callable(reward):
        raise TypeError(f"ToolEnv: reward must be a function (answer, task) -> float, got "
                        f"{type(reward).__name__}")


def _describe(calls: Sequence[Any]) -> str:
    """Calls as short text for viewers: search(query='paris')."""
    return "; ".join(f"{c.name}({', '.join(f'{k}={v!r}' for k, v in c.arguments.items())})"
                     for c in calls)


class ToolEnvFactory:
    """Builds the shared parts once (tools, executor, parser); each call makes a fresh ToolEnv.

    `tools` holds `Tool`s, plain typed functions, or built-in tool specs from a recipe such as
    `{"name": "bm25_search", "options": {"corpus": "wiki.jsonl", "top_k": 3}}`.
    """

    def __init__(self, tools: Sequence[Tool | Callable[..., Any] | dict[str, Any] | str],
                 reward: Reward, *, parser: str = "hermes",
                 parser_options: dict[str, Any] | None = None,
                 executor_options: dict[str, Any] | None = None, **env_options: Any) -> None:
        self.registry = ToolRegistry(build_tools(tools))
        check_options("executor options", Executor, executor_options or {})
        self.executor = Executor(self.registry, **(executor_options or {}))
        self.parser = make_parser(parser, self.registry, **(parser_options or {}))
        self.reward = reward
        check_options("ToolEnv options", ToolEnv, env_options)
        self.env_options = env_options
        self()  # a bad env option fails here, at suite construction, not in the first episode

    def __call__(self) -> ToolEnv:
        return ToolEnv(self.executor, self.parser, self.reward, **self.env_options)

    def metrics(self) -> dict[str, float]:
        """Per-tool counters and latency percentiles of every episode so far."""
        return self.executor.metrics.summary()

