"""A suite without tools (household) shows environment steps as such and no tool metrics; a
suite with tools keeps them, zeros included."""

from __future__ import annotations

import io

from rich.console import Console
from turnwise.envs.base import make_suite, suite_has_tools
from turnwise.rollouts.metrics import summarize
from turnwise.rollouts.progress import NullProgress, RichProgress, make_progress
from turnwise.rollouts.trajectory import Trajectory, Turn
from turnwise.trainer.build import basics, orchestrator
from turnwise.trainer.evaluate import build_report, format_table
from turnwise.trainer.recipe import load_recipe
from turnwise.trainer.report.plots import write_plots
from turnwise.trainer.report.sinks import JsonlSink

TOOL_KEYS = {"rollout/tool_calls", "rollout/tool_errors", "rollout/tool_error_rate",
             "rollout/tool_timeouts"}


def _episode(uid: str, calls: int) -> Trajectory:
    return Trajectory(uid=uid, traj_id=f"{uid}/0", mode="per_step", prompt_ids=[1], task_id=uid,
                      success=True, outcome_reward=1.0,
                      turns=[Turn([1], [0.0], tool_calls=[{"name": "s", "status": "ok"}] * calls),
                             Turn([2], [0.0])])


def test_which_suites_have_tools():
    assert not suite_has_tools(make_suite("household"))
    assert not suite_has_tools(make_suite("shop"))
    assert suite_has_tools(make_suite("search_qa"))


def test_episode_metrics_name_tools_only_where_there_are_any():
    quiet = [_episode("a", 0), _episode("b", 0)]
    assert not TOOL_KEYS & set(summarize(quiet, tools=False))
    # A suite with tools whose agent made no call yet: zeros, so its curves start at 0.
    zeros = summarize(quiet, tools=True)
    assert {k: zeros[k] for k in TOOL_KEYS} == dict.fromkeys(TOOL_KEYS, 0.0)
    # Calls made by a suite that did not say it has tools still count (2 calls, 2 episodes).
    called = summarize([_episode("a", 2), _episode("b", 0)], tools=False)
    assert called["rollout/tool_calls"] == 1.0 and called["rollout/tool_error_rate"] == 0.0


def test_the_eval_table_has_a_tool_calls_row_only_with_tools():
    trajs = [_episode("a", 0), _episode("b", 0)]
    without = build_report(trajs, samples=1, tools=False)
    assert "tool_calls" not in without["metrics"]
    assert "tool_calls" not in format_table(without, "t")
    with_tools = build_report(trajs, samples=1, tools=True)
    assert with_tools["metrics"]["tool_calls"]["value"] == 0.0
    assert "tool_calls" in format_table(with_tools, "t")


def test_no_tools_png_for_a_run_without_tool_metrics(tmp_path):
    sink = JsonlSink(tmp_path / "metrics.jsonl")
    for i in (1, 2):
        sink.log({"iteration": i, **summarize([_episode("a", 0)], tools=False)})
    sink.close()
    names = {p.name for p in write_plots(tmp_path)}
    assert "turns.png" in names and "tools.png" not in names


def test_the_rollout_bar_says_env_steps_for_a_suite_without_tools(tiny_path):
    cfg = load_recipe("household_grpo")
    bar = orchestrator(cfg, basics(cfg, tiny_path), None).progress("sft")
    bar.close()
    assert bar.steps_label == "env steps"
    tools = make_progress("rollout", tools=True)
    tools.close()
    assert tools.steps_label == "tools"
    assert isinstance(make_progress("rollout", quiet=True, tools=False), NullProgress)
    console = Console(file=io.StringIO(), record=True, width=120, force_terminal=False)
    drawn = RichProgress("sft", console=console, steps_label="env steps")
    drawn.add_episodes(2)
    drawn.tool_started()
    drawn.close()
    assert "env steps 1" in console.export_text() and "tools" not in console.export_text()
