"""The documented metric list, the extra episode metrics, and the summary line."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from turnwise.rollouts import Trajectory, Turn
from turnwise.rollouts.metrics import rollout_time_split, summarize
from turnwise.trainer.report.metric_names import documented, render_markdown, undocumented
from turnwise.trainer.report.progress import TrainProgress, summary_line

ROOT = Path(__file__).resolve().parents[2]


def test_docs_metrics_md_is_the_rendered_list():
    assert (ROOT / "docs" / "metrics.md").read_text() == render_markdown(), (
        "docs/metrics.md is stale: "
        "python -m turnwise.trainer.report.metric_names > docs/metrics.md")


def test_placeholders_match_one_segment_only():
    assert documented("rollout/success/pick_and_place_simple")
    assert documented("eval/success/clean")
    assert documented("time/generation")
    assert not documented("rollout/success/a/b")
    assert not documented("train/made_up")
    keys = ["iteration", "train/made_up", "rollout/reward", "x"]
    assert undocumented(keys) == ["train/made_up", "x"]


def _turn(n_tokens, calls=(), gen=0.0, env=0.0):
    return Turn(response_ids=[1] * n_tokens, response_logprobs=[0.0] * n_tokens,
                tool_calls=list(calls), gen_seconds=gen, env_seconds=env)


def test_episode_metrics_by_hand():
    ok = {"name": "search", "status": "ok"}
    timeout = {"name": "search", "status": "timeout"}
    errored = {"name": "python", "status": "ok", "error": "boom"}
    a = Trajectory(uid="g", traj_id="a", mode="per_step", prompt_ids=[],
                   turns=[_turn(4, [ok, timeout], gen=1.0, env=0.5), _turn(2, gen=1.0)])
    b = Trajectory(uid="g", traj_id="b", mode="per_step", prompt_ids=[],
                   turns=[_turn(6, [errored], gen=2.0, env=1.5)])
    out = summarize([a, b])
    assert out["rollout/turn_tokens"] == pytest.approx(4.0)  # (4 + 2 + 6) / 3 turns
    assert out["rollout/tool_error_rate"] == pytest.approx(2 / 3)  # timeout and error of 3 calls
    assert out["rollout/gen_seconds"] == pytest.approx(2.0)  # (1 + 1 + 2) / 2 episodes
    assert out["rollout/env_seconds"] == pytest.approx(1.0)  # (0.5 + 1.5) / 2
    # engine 4 s, tools 2 s of episode time: the 9 s rollout splits 6 / 3
    split = rollout_time_split([a, b], 9.0)
    assert split == pytest.approx({"time/generation": 6.0, "time/tools": 3.0})
    assert summarize([], "eval/") == {"eval/episodes": 0.0}


def test_summary_line_by_hand():
    metrics = {"iteration": 3, "rollout/reward": 1.25, "rollout/success": 0.5,
               "train/loss": -0.01234, "train/kl": 0.00012, "train/clipfrac": float("nan"),
               "time/generation": 2.04, "time/update": 1.0, "time/iteration": 3.5}
    assert summary_line(metrics, 10) == ("iter 3/10  reward 1.250  success 0.500  loss -0.0123  "
                                         "kl 1.2e-04  | gen 2.0s update 1.0s = 3.5s")
    # Time in environment steps: "tools" where the suite has tools (it logs tool metrics).
    assert summary_line({"iteration": 1, "time/tools": 0.5}, 2) == "iter 1/2  | env 0.5s"
    assert summary_line({"iteration": 1, "time/tools": 0.5, "rollout/tool_calls": 2.0}, 2) == \
        "iter 1/2  tools 2.0  | tools 0.5s"


def test_progress_quiet_terminal_and_log_file():
    lines = []
    quiet = TrainProgress(2, quiet=True, echo=lines.append)
    quiet.phase("rollout")
    quiet.iteration_done({"iteration": 1})
    quiet.close()
    assert lines == [] and quiet.bar is None

    logfile = TrainProgress(2, echo=lines.append, console=Console(file=io.StringIO()))
    assert logfile.bar is None  # not a terminal: lines only
    logfile.iteration_done({"iteration": 1, "rollout/reward": 2.0})
    assert lines == ["iter 1/2  reward 2.000"]

    screen = io.StringIO()
    bar = TrainProgress(2, echo=lines.append,
                        console=Console(file=screen, force_terminal=True, width=100))
    weight = torch.nn.Parameter(torch.zeros(1))
    backend = SimpleNamespace(optimizer=torch.optim.SGD([weight], lr=0.1))
    bar.watch(backend)
    bar.phase("update")
    for _ in range(2):
        weight.grad = torch.ones(1)
        backend.optimizer.step()
    bar.bar.refresh()
    assert "update 0s \u00b7 step 2" in screen.getvalue() and "0/2" in screen.getvalue()
    bar.iteration_done({"iteration": 1})
    bar.close()
    assert "1/2" in screen.getvalue()
    backend.optimizer.step()  # the hook is gone with the bar
    assert bar.steps == 2
