"""`turnwise view RUN_DIR` and `turnwise plot RUN_DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .plots import write_plots
from .view import LARGE_BYTES, build_viewer, parse_iterations, saved_iterations


def add_report_commands(commands: argparse._SubParsersAction) -> None:
    """Register `view` and `plot` on the CLI's subcommands."""
    view = commands.add_parser("view", help="write a run's trajectory viewer: one HTML file, "
                                            "opens from disk")
    view.add_argument("run_dir", help="a run folder (runs/<name>)")
    view.add_argument("-o", "--out", help="where to write it (default RUN_DIR/viewer.html; with "
                                          "--iterations or --last, a file named after them)")
    view.add_argument("--iterations", help="saved iterations to include, e.g. 1-5,10 (default all)")
    view.add_argument("--last", type=int, help="only the last N saved iterations")
    plot = commands.add_parser("plot", help="redraw a run's plots from its metrics.jsonl")
    plot.add_argument("run_dir")


def next_commands(run_dir: Path) -> str:
    """What a finished run prints last: its folder and the commands to look at it with."""
    return (f"run folder: {run_dir}\n"
            f"  turnwise view {run_dir}   # trajectories token by token: writes viewer.html\n"
            f"  turnwise eval {run_dir}   # evaluate the final policy (--tasks N, --policy DIR)")


def _selection(iterations: str | None, last: int | None) -> list[str]:
    """The options that narrow the viewer to some iterations, as given."""
    return ([f"--iterations {iterations}"] if iterations else []) + \
        ([f"--last {last}"] if last is not None else [])


def _file_name(args: argparse.Namespace) -> str:
    """viewer-it1-5_10.html, viewer-last2.html, viewer-it1-9-last2.html."""
    parts = ([f"it{args.iterations.replace(' ', '').replace(',', '_')}"] if args.iterations
             else []) + ([f"last{args.last}"] if args.last is not None else [])
    return f"viewer-{'-'.join(parts)}.html"


def _ranges(iterations: list[int]) -> str:
    """[1, 2, 3, 7] as '1-3,7'."""
    parts: list[str] = []
    for it in iterations:
        if parts and it == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{it}"
        else:
            parts.append(str(it))
    return ",".join(parts) or "none"


def run_report_command(args: argparse.Namespace) -> int:
    """Run `view` or `plot`; 2 with a message on stderr when the folder or options are wrong."""
    run_dir = Path(args.run_dir)
    try:
        if args.command == "plot":
            if not (run_dir / "metrics.jsonl").exists():
                raise FileNotFoundError(f"{run_dir}: no metrics.jsonl to plot")
            for path in write_plots(run_dir):
                print(path)
            return 0
        available = saved_iterations(run_dir)
        chosen = parse_iterations(args.iterations, available, args.last)
        asked = _selection(args.iterations, args.last)
        if asked and not chosen:
            raise ValueError(f"{' '.join(asked)}: none of the saved iterations {available} is "
                             f"selected")
        # A selection gets a file of its own: the full viewer.html stays as it was.
        out = build_viewer(run_dir, args.out or (run_dir / _file_name(args) if asked else None),
                           iterations=chosen)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = out.stat().st_size
    print(f"{out}  ({size / 2**20:.1f} MiB, {len(chosen)} iterations: {_ranges(chosen)}; open "
          f"it in a browser)")
    if size > LARGE_BYTES:
        print("the file is large; --last N or --iterations 1-5,10 make it smaller", file=sys.stderr)
    return 0
