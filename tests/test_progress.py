"""The rollout progress bar counts what the orchestrator reports, and draws it."""

from __future__ import annotations

import asyncio
import io

from fakes import CountingSuite, ScriptedEngine
from rich.console import Console
from turnwise.agent.chat import ChatFormatter
from turnwise.envs.base import Task
from turnwise.rollouts.episode import EpisodeSettings
from turnwise.rollouts.orchestrator import Orchestrator
from turnwise.rollouts.progress import NullProgress, RichProgress


def test_the_orchestrator_reports_every_episode_tool_call_and_token(tokenizer):
    seen: list[NullProgress] = []

    def display(tag):
        seen.append(NullProgress())
        return seen[-1]

    engine = ScriptedEngine(tokenizer, lambda prompt, i: "<action>look</action>")
    orch = Orchestrator(engine, CountingSuite(), ChatFormatter(tokenizer), EpisodeSettings(),
                        progress=display)
    tasks = [Task(id="a", data={"steps": 2}), Task(id="b", data={"steps": 3})]
    trajs = asyncio.run(orch.rollout(tasks, group_size=2, tag="p"))
    [progress] = seen
    assert (progress.total, progress.done, progress.in_flight, progress.tools) == (4, 4, 0, 0)
    assert progress.tokens == sum(t.num_response_tokens() for t in trajs)


def test_the_bar_shows_counts():
    console = Console(file=io.StringIO(), record=True, width=120, force_terminal=False)
    bar = RichProgress("it3", console=console)
    bar.add_episodes(4)
    for _ in range(3):
        bar.episode_started()
    bar.tool_started()
    bar.generated(50)
    bar.episode_finished(None)
    bar.close()
    text = console.export_text()
    assert "it3" in text and "1/4" in text and "in flight 2" in text and "tools 1" in text
