"""What the tool-using suites (`search_qa`, `math_code`) share.

A suite builds its tools, executor and parser once (`ToolEnvFactory`) and makes one `ToolEnv` per
episode. The tool-call format is an option: `xml` (Search-R1 / ARPO tags, the default) or
`hermes` (JSON inside `<tool_call>`; the tool schemas then go into the chat template's `tools`
argument, see `tool_schemas`). The oracle writes its script in the same format, so its
demonstrations are what the model should say, and the executor's per-tool counters are exposed
for the training loop to log (`tool_metrics`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..tools.base import Tool
from ..tools.parsers import make_parser
from .base import Task
from .scripted import Render, ScriptedOracle, ScriptStep, hermes_render, render_for, tag_render
from .tool_env import ANCHORS, Evidence, Reward, ToolEnv, ToolEnvFactory

PARSERS = ("xml", "hermes")


class ToolSuite(ABC):
    """The shared half of a tool suite; a subclass adds `tasks`, `oracle_steps` and `corpus`.

    Args:
        tools: the suite's tools (built once, shared by every episode).
        reward: the final answer's reward, `(answer, task) -> float` (see `ToolEnv`).
        success: whether an answer solves the task (see `ToolEnv`).
        score: the task's own score of an answer (see `ToolEnv`).
        evidence: whether the episode's tool results held what the answer needs (see `ToolEnv`).
        instructions: the task's instructions, put before the format's instructions.
        parser: "xml" or "hermes".
        anchor: "observation" or "state" (see `ToolEnv`).
        think: the oracle writes a one-line `<think>` before each move (and the xml prompt
            asks the model to reason there).
        max_calls_per_episode: tool calls one episode may make.
        executor: `Executor` options (timeout, max_concurrency, retries, max_output_tokens).
    """

    name = "tool_suite"

    def __init__(self, tools: Sequence[Tool], *, reward: Reward, instructions: str,
                 parser: str, anchor: str, think: bool, max_calls_per_episode: int | None,
                 executor: dict[str, Any] | None,
                 success: Callable[[str, Task], bool] | None = None,
                 score: Reward | None = None, evidence: Evidence | None = None) -> None:
        if parser not in PARSERS:
            raise ValueError(f"env.options.parser={parser!r}: allowed are {list(PARSERS)}")
        if anchor not in ANCHORS:
            raise ValueError(f"env.options.anchor={anchor!r}: allowed are {list(ANCHORS)}")
        if not isinstance(think, bool):  # a recipe error: ValueError, as `make_suite` promises
            raise ValueError(f"env.options.think={think!r}: must be true or false")  # noqa: TRY004
        # Hermes: the template lists the schemas (tool_schemas), so the prompt must not repeat them.
        parser_options = {"think": think} if parser == "xml" else {"list_tools": False}
        self.parser_name = parser
        self.factory = ToolEnvFactory(
            tools, reward, parser=parser, parser_options=parser_options,
            executor_options=executor, instructions=instructions, success=success, score=score,
            evidence=evidence, anchor=anchor, max_calls_per_episode=max_calls_per_episode)
        self.render: Render = render_for(parser, think=think)
        self.system_prompt = self.factory().system_prompt

    def make(self) -> ToolEnv:
        """A fresh environment for one episode (tools and executor shared)."""
        return self.factory()

    @abstractmethod
    def tasks(self, split: str, count: int, seed: int) -> list[Task]: ...

    @abstractmethod
    def oracle_steps(self, task: Task) -> list[ScriptStep]:
        """The expert's moves for `task`, independent of the format."""

    @abstractmethod
    def corpus(self) -> Iterable[str]: ...

    def oracle(self, task: Task) -> ScriptedOracle:
        """The expert, writing each turn's full response in this suite's format."""
        return ScriptedOracle(self.oracle_steps(task), self.render)

    def tool_schemas(self) -> list[dict[str, Any]] | None:
        """OpenAI schemas for the chat template's `tools` argument (hermes); None for xml,
        whose tags the system prompt describes."""
        return self.factory.registry.schemas() if self.parser_name == "hermes" else None

    def tool_metrics(self, *, reset: bool = False) -> dict[str, float]:
        """Per-tool calls, errors, timeouts and latency percentiles since the last reset, as
        `tools/<name>/<metric>`; a tool that was never called reports zero calls."""
        out: dict[str, float] = {}
        for name in self.factory.registry.names():
            out.update({f"tools/{name}/calls": 0.0, f"tools/{name}/errors": 0.0,
                        f"tools/{name}/timeouts": 0.0})
        out.update(self.factory.executor.metrics.summary())
        if reset:
            self.factory.executor.metrics.reset()
        return out

    def format_texts(self, steps: Iterable[ScriptStep]) -> Iterable[str]:
        """Text of every format (prompts, both renderings, error replies) for tokenizer corpora,
        so one tiny tokenizer serves the suite whichever parser a recipe picks."""
        registry = self.factory.registry
        for parser in PARSERS:
            yield make_parser(parser, registry).instructions()
            yield make_parser(parser, registry).format_error("no tool call found")[1]
        yield self.system_prompt
        yield "Answer recorded."
        for step in steps:
            for render in (tag_render, hermes_render, render_for("xml", think=True)):
                yield render(step)
