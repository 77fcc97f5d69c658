"""``deepcircuit sweep-report``: report.md and plots of a finished (or partial) sweep."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sweep-report", help="write report.md and plots of a sweep's results",
        description="Read DIR/results (the Parquet data set `deepcircuit sweep` writes; rows of DIR/runs are "
                    "gathered first, so a sweep that was interrupted can be reported) and write "
                    "DIR/report.md and DIR/plots/: success rate with Wilson 95%% intervals and mean "
                    "accuracy against every swept parameter, split by model family and substrate; "
                    "accuracy against each numeric substrate option beside the ideal ODE.")
    p.add_argument("out", metavar="DIR", help="the sweep's folder (its --out)")
    return p


def run(args) -> int:
    from pathlib import Path

    from ..studies.sweep.report import write_sweep_report
    from ..studies.sweep.run import done_ids, gather

    if done_ids(args.out):
        gather(args.out)  # rows of runs finished since the last gather (an interrupted sweep)
    path = write_sweep_report(Path(args.out))
    from .output import shown_path

    print(f"report: {shown_path(path)} (plots in {shown_path(path.parent / 'plots')}/)")
    return 0
