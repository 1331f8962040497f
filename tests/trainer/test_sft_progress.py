"""SFT shows its progress (steps, loss, tokens/s, time left) and reports its time."""

from __future__ import annotations

import io

from rich.console import Console
from turnwise.rollouts.trajectory import Trajectory, Turn
from turnwise.trainer.backends.torch_backend import TorchBackend
from turnwise.trainer.config import LossConfig, TrainConfig
from turnwise.trainer.report.progress import SFTBar
from turnwise.trainer.sft import sft


def _demos(n: int) -> list[Trajectory]:
    return [Trajectory(uid=f"d{i}", traj_id=f"d{i}", mode="full_trajectory",
                       prompt_ids=[1, 2, 3 + i],
                       turns=[Turn([11, 12, 13, 14], [0.0] * 4, observation_ids=[20, 21])])
            for i in range(n)]


class Recorder:
    """A progress that keeps what SFT told it."""

    def __init__(self) -> None:
        self.steps: int | None = None
        self.calls: list[tuple[float, float]] = []
        self.closed = False

    def start(self, steps: int) -> None:
        self.steps = steps

    def step(self, loss: float, tokens: float) -> None:
        self.calls.append((loss, tokens))

    def close(self) -> None:
        self.closed = True


def test_sft_reports_every_step_and_its_time(tiny_model):
    backend = TorchBackend(tiny_model, TrainConfig(lr=1e-4), LossConfig())
    seen = Recorder()
    stats = sft(backend, _demos(5), epochs=2, lr=1e-2, rows_per_step=2, pad_id=0, progress=seen)
    # 5 rows at 2 per step: 3 steps an epoch, 2 epochs; each step trains 4 tokens a row.
    assert seen.steps == 6 and len(seen.calls) == 6 and seen.closed
    assert [tokens for _, tokens in seen.calls] == [8, 8, 4, 8, 8, 4]
    assert seen.calls[0][0] == stats["sft/loss_first"] and seen.calls[-1][0] == stats["sft/loss_last"]
    assert stats["sft/steps"] == 6 and stats["sft/tokens"] == 20
    assert stats["time/sft"] > 0
    assert abs(stats["perf/sft_tokens_per_s"] - 40 / stats["time/sft"]) < 1e-6


def test_without_a_terminal_sft_prints_a_line_every_tenth_of_its_steps():
    lines: list[str] = []
    bar = SFTBar(echo=lines.append, console=Console(file=io.StringIO(), force_terminal=False))
    bar.start(20)
    for i in range(20):
        bar.step(loss=2.0 - i * 0.05, tokens=100.0)
    bar.close()
    assert len(lines) == 10  # steps 2, 4, ..., 20
    assert lines[0].startswith("sft: step 2/20  loss 1.950  ")
    assert lines[-1].startswith("sft: step 20/20  loss 1.050  ")
    assert "tok/s" in lines[-1] and lines[-1].endswith("0s left")


def test_on_a_terminal_sft_draws_a_bar_with_loss_rate_and_time_left():
    out = io.StringIO()
    lines: list[str] = []
    bar = SFTBar(echo=lines.append, console=Console(file=out, force_terminal=True, width=120))
    bar.start(4)
    for _ in range(4):
        bar.step(loss=1.25, tokens=10.0)
    bar.close()
    drawn = out.getvalue()
    assert not lines  # the bar instead of lines
    assert "sft" in drawn and "4/4" in drawn and "loss 1.250" in drawn and "tok/s" in drawn
