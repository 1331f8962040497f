"""Plots from metrics.jsonl, and the `turnwise view` / `turnwise plot` commands."""

from __future__ import annotations

import json
import shutil

import pytest
from turnwise.trainer.cli import main
from turnwise.trainer.report.plots import PLOTS, Panel, series, write_plots
from turnwise.trainer.report.view import load_run, parse_iterations, render_html

PNG = b"\x89PNG\r\n\x1a\n"


def test_synthetic_run_has_every_plot(synthetic_run):
    # the fixture logged reward, losses, KL, entropy, clipfrac, lengths, tools, turns, timing
    for name in PLOTS:
        path = synthetic_run.dir / "plots" / f"{name}.png"
        assert path.read_bytes()[:8] == PNG, name


@pytest.mark.slow
def test_plots_only_for_logged_metrics_and_stale_ones_removed(tmp_path):
    records = [{"iteration": 0, "eval/success": 0.1}, {"iteration": 1, "rollout/reward": 1.0},
               {"iteration": 2, "rollout/reward": None}, {"iteration": 3, "rollout/reward": 3.0}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n{broken")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "timing.png").write_bytes(PNG)  # from an earlier draw
    written = write_plots(tmp_path)
    assert [p.name for p in written] == ["reward_success.png"]
    assert not (tmp_path / "plots" / "timing.png").exists()
    assert series(records, "rollout/reward") == ([1, 3], [1.0, 3.0])
    loss = PLOTS["loss"][0]
    assert isinstance(loss, Panel)
    # train/loss repeats train/pg_loss and is drawn once
    assert loss.select({"train/loss", "train/pg_loss", "train/kl_loss", "train/kl"}) == [
        "train/kl_loss", "train/pg_loss"]


def test_parse_iterations():
    assert parse_iterations(None, [1, 2, 3]) == [1, 2, 3]
    assert parse_iterations("1-2, 5", [1, 2, 3, 5, 8]) == [1, 2, 5]
    assert parse_iterations(None, [1, 2, 3], last=2) == [2, 3]
    with pytest.raises(ValueError, match="'x' is not N or N-M"):
        parse_iterations("1,x", [1])


def test_view_command_writes_one_self_contained_file(synthetic_run, tmp_path, capsys):
    out = tmp_path / "v.html"
    assert main(["view", str(synthetic_run.dir), "-o", str(out), "--iterations", "2"]) == 0
    assert str(out) in capsys.readouterr().out
    html = out.read_text()
    # nothing fetched from anywhere: no external script, style or image
    for needle in ('src="http', "src='http", 'href="http', "<link", "import("):
        assert needle not in html
    # text from the run can never close the data script or open a tag
    assert "<script>alert(1)" not in html
    data = load_run(synthetic_run.dir, [2])
    assert [t["traj_id"] for t in data["trajectories"]] == ["it1/0/0", "it1/0/1"]
    assert set(data["plots"]) == set(PLOTS)
    assert html == render_html(data)


def test_view_and_plot_errors_name_the_problem(tmp_path, capsys):
    assert main(["view", str(tmp_path / "nope")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["plot", str(tmp_path)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err


def test_view_rejects_an_old_record_format(synthetic_run, tmp_path, capsys):
    run = tmp_path / "old"
    shutil.copytree(synthetic_run.dir, run)
    path = run / "trajectories" / "iter_00002.jsonl"
    record = json.loads(path.read_text().splitlines()[0])
    del record["format"]
    path.write_text(json.dumps(record) + "\n")
    assert main(["view", str(run), "--last", "1"]) == 2
    assert "iter_00002.jsonl:1: trajectory record format None" in capsys.readouterr().err
    assert main(["view", str(run), "--iterations", "7"]) == 2
    err = capsys.readouterr().err
    assert "error: --iterations 7: none of the saved iterations [1, 2] is selected" in err
    assert "--last" not in err  # only the options given are named


def test_a_selection_leaves_the_full_viewer_alone(synthetic_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(synthetic_run.dir, run)
    assert main(["view", str(run)]) == 0
    full = (run / "viewer.html").read_text()
    assert f"{run / 'viewer.html'}  (" in capsys.readouterr().out
    assert main(["view", str(run), "--last", "1"]) == 0
    assert f"{run / 'viewer-last1.html'}  (" in capsys.readouterr().out
    assert main(["view", str(run), "--iterations", "1, 2"]) == 0
    printed = capsys.readouterr().out
    assert f"{run / 'viewer-it1_2.html'}  (" in printed and "2 iterations: 1-2;" in printed
    assert (run / "viewer.html").read_text() == full  # not overwritten by either
    assert main(["view", str(run), "--iterations", "1-2", "--last", "5"]) == 0
    assert (run / "viewer-it1-2-last5.html").exists()
    assert main(["view", str(run), "--iterations", "5", "--last", "1"]) == 2
    assert "--iterations 5 --last 1: none of the saved" in capsys.readouterr().err


@pytest.mark.slow
def test_plot_command_redraws(synthetic_run, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(synthetic_run.dir, run)
    shutil.rmtree(run / "plots")
    assert main(["plot", str(run)]) == 0
    assert sorted(p.stem for p in (run / "plots").iterdir()) == sorted(PLOTS)


def _busy_records(n: int = 30) -> list[dict]:
    """Every plotted metric, with the spans that crowd a figure: tiny clip fractions, tall
    stacked bars, lines that reach the top-left corner where legends used to sit."""
    logged = {key for panels in PLOTS.values() for panel in panels
              for key in (panel.keys if isinstance(panel.keys, list) else [])}
    logged |= {"train/pg_loss", "train/entropy_loss", "train/approx_kl", "train/ref_kl"}
    return [{"iteration": i, **{key: (1e-4 if "clipfrac" in key else 120.0) * (1 + (i * 7 + j) % 5)
                                for j, key in enumerate(sorted(logged))}}
            for i in range(1, n + 1)]


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_legends_sit_below_the_data_and_every_label_fits(name):
    from turnwise.trainer.report.plots import draw

    records = _busy_records()
    fig = draw(PLOTS[name], records, {k for r in records for k in r})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    inside = lambda box: (box.x0 >= page.x0 - 0.5 and box.y0 >= page.y0 - 0.5
                          and box.x1 <= page.x1 + 0.5 and box.y1 <= page.y1 + 0.5)
    for ax in fig.axes:
        legend = ax.get_legend().get_window_extent(renderer)
        assert not legend.overlaps(ax.get_window_extent(renderer)), (name, "legend on the data")
        drawn = [tick.label1 for axis in (ax.xaxis, ax.yaxis) for tick in axis.get_major_ticks()
                 if min(axis.get_view_interval()) <= tick.get_loc() <= max(axis.get_view_interval())]
        texts = [ax.title, ax.xaxis.label, ax.yaxis.get_offset_text(), *drawn]
        for text in texts:
            if text.get_visible() and text.get_text():
                assert inside(text.get_window_extent(renderer)), (name, text.get_text())
        assert inside(legend), (name, "legend cut off")
