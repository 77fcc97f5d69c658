"""``deepcircuit sweep``: a study of many training runs on Dask, results in Parquet, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from .output import print_json_line, shown_path


def add_parser(sub) -> argparse.ArgumentParser:
    from ..studies.sweep.spec import train_options

    p = sub.add_parser(
        "sweep", help="run a study: a grid of training runs on Dask, results in Parquet",
        description="Run every combination of the grid axes (or, with --zip, the axes paired), times "
                    "--seeds seeds, each as one `deepcircuit train` run (one seed) on Dask worker "
                    "processes, then evaluate it (accuracy, MSE, sparsity, settled fraction, Lyapunov "
                    "verdict). An axis is any train option (model, hidden, epochs, eta, ...) or a "
                    "substrate option SUBSTRATE:OPTION (spice:mismatch, spice:bits, spice:clamp). "
                    "Rows go to DIR/results (Parquet), models to DIR/models. Rerunning the same "
                    "command runs only the runs not done yet. Exit status: the number of failed runs "
                    "(0 when none; at most 100). See docs/sweep.md.")
    p.add_argument("spec", nargs="?", default=None, metavar="SPEC.toml",
                   help="a TOML sweep spec ([grid], [fixed], seeds, zip, compare_to); the command line "
                        "adds to it and overrides it")
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the study (created; reused to resume)")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="an axis: a train option or SUBSTRATE:OPTION and its values (repeatable); write "
                        "values that contain commas with ';' between values: hidden=5;5,3")
    p.add_argument("--seeds", type=int, default=1, help="seeds per grid point: seed .. seed+K-1 (default 1)")
    p.add_argument("--zip", action="store_true", help="pair the axes element by element instead of the product")
    p.add_argument("--dry-run", action="store_true",
                   help="print the number of runs (and how many are done) and an estimate of the time; run nothing")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the local Dask cluster (default: one per core)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                   help="run on an existing Dask cluster (started with `dask scheduler` and `dask worker`)")
    p.add_argument("--compare-to", choices=["ode"], default=None,
                   help="also run each trained network on the accurate ODE and report the deviation")
    p.add_argument("--memory-limit", default=None, metavar="SIZE",
                   help="per-worker memory limit, e.g. 2GiB: a worker past 95%% of it is restarted "
                        "(its run is retried once more, then recorded as failed)")
    p.add_argument("--restart-after", default=None, metavar="DURATION",
                   help="restart each worker gracefully after this long, e.g. '10 minutes' (bounds "
                        "simulator memory growth over long sweeps)")
    p.add_argument("--report", action="store_true", help="write report.md and plots when done (as sweep-report)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    fixed = p.add_argument_group("train options (the same for every run; any of them can be an axis instead)")
    for dest, action in train_options().items():
        kwargs = dict(dest=dest, default=argparse.SUPPRESS, help=action.help)
        if action.nargs == 0:
            fixed.add_argument(*action.option_strings, action="store_true", **kwargs)
        else:
            fixed.add_argument(*action.option_strings, metavar=action.metavar or dest.upper(), **kwargs)
    return p


def spec_from_args(args):
    """The :class:`~deepcircuit.studies.sweep.spec.SweepSpec` of the command line (file, then options)."""
    from ..studies.sweep.spec import SweepSpec, load_spec, parse_grid

    base = load_spec(args.spec) if args.spec else SweepSpec()
    axes = dict(parse_grid(g) for g in args.grid)
    from ..studies.sweep.spec import train_options

    options = train_options()
    fixed = {k: v for k, v in vars(args).items() if k in options}
    if args.seeds < 1:
        from ..errors import InvalidInputError

        raise InvalidInputError(f"--seeds must be >= 1; got {args.seeds}.")
    return base.merged(SweepSpec(axes, fixed, args.seeds, args.zip, args.compare_to))


def run(args) -> int:
    import os

    from ..studies.sweep.run import done_ids, run_sweep
    from ..studies.sweep.spec import describe, expand

    spec = spec_from_args(args)
    runs = expand(spec)
    out = Path(args.out)
    if args.workers is not None and args.workers < 1:
        from ..errors import InvalidInputError

        raise InvalidInputError(f"--workers must be >= 1; got {args.workers}.")
    done = done_ids(out) & {r.id for r in runs}
    swept = describe(runs)
    axes = ", ".join(f"{k} ({len(v)})" for k, v in swept.items()) or "none"
    if args.dry_run:
        workers = args.workers or os.cpu_count() or 1
        todo = [r for r in runs if r.id not in done]
        print(f"{len(runs)} runs ({len(done)} done, {len(todo)} to run); swept: {axes}")
        if todo:
            from ..studies.sweep.estimate import estimate_seconds

            total, how = estimate_seconds(todo, out)
            print(f"estimated time: about {total / max(workers, 1):.0f} s on {workers} worker(s) ({how}; rough)")
        if args.json:
            print_json_line({"runs": len(runs), "done": len(done), "to_run": len(todo), "swept": swept})
        return 0
    out.mkdir(parents=True, exist_ok=True)
    if not args.quiet:
        print(f"{len(runs)} runs ({len(done)} already done); swept: {axes}", flush=True)
    state = getattr(args, "run_state", None)  # what Ctrl-C reports
    finished = [0]
    todo = len(runs) - len(done)

    def on_row(row):
        finished[0] += 1
        if state is not None:
            state.stage = (f"with {finished[0]} of {todo} runs finished (their rows are kept under "
                           f"{shown_path(out)}/runs; rerun the same command to resume)")

    outcome = run_sweep(runs, out, compare_to=spec.compare_to, progress=not args.quiet, on_row=on_row,
                        workers=args.workers, scheduler=args.scheduler, memory_limit=args.memory_limit,
                        restart_after=args.restart_after,
                        on_client=lambda c: print(f"dask dashboard: {c.dashboard_link}", flush=True))
    c = outcome.counts
    print(f"{sum(c.values())} runs executed in {outcome.seconds:.1f} s: {c['ok']} ok, {c['failed']} failed, "
          f"{c['diverged']} diverged; {outcome.skipped} were already done; results in "
          f"{shown_path(outcome.results.parent) if outcome.results else '-'}/")
    if args.report and outcome.results:
        from ..studies.sweep.report import write_sweep_report

        path = write_sweep_report(out)
        print(f"report: {shown_path(path)}")
    if args.json:
        print_json_line({"runs": outcome.total, "executed": sum(c.values()), "skipped": outcome.skipped,
                         **c, "seconds": outcome.seconds, "results": str(outcome.results),
                         "dashboard": outcome.dashboard})
    return min(c["failed"], 100)
