"""``train --tune``: the call to :func:`deepcircuit.studies.tune.tune` and its printed table.

Kept apart from ``cli/train.py`` so that ``train`` stays one parser and one training call; the
tuner's options are in ``studies/run_options.py`` (with every other ``train`` option) and the
tuner itself (grid, Dask, resuming, the choice) lives in ``studies/tune.py``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .output import format_table, print_warnings, shown_path


def wants_tuning(args) -> bool:
    """Whether any tuning option was given (each of them needs --tune)."""
    extra = [o for o, v in (("--tune-grid", getattr(args, "tune_grid", None)),
                            ("--tune-workers", getattr(args, "tune_workers", None)),
                            ("--tune-scheduler", getattr(args, "tune_scheduler", None))) if v is not None]
    if extra and not getattr(args, "tune", False):
        from ..errors import InvalidInputError

        raise InvalidInputError(f"{', '.join(extra)} appl{'y' if len(extra) > 1 else 'ies'} to --tune; add --tune.")
    return bool(getattr(args, "tune", False))


def tune_from_args(args, out: "Path | None", dataset, *, model, topology, hidden, seeds, config, substrate,
                   params, callbacks):
    """Run the tuner for ``train --tune`` and print its table; returns ``(result, config)`` of the
    retrained choice, as a plain training does, and leaves the tuning record in ``args.tuning``."""
    from ..errors import InvalidInputError
    from ..studies.tune import VALIDATION_FRACTION, parse_grid, tune
    from ..studies import option_checks as checks

    if getattr(args, "init", None):
        raise InvalidInputError("--init does not combine with --tune: the tuner trains fresh networks at every "
                                "grid point; fine-tune the tuned model with --init afterwards.")
    if args.record_certificates:
        raise InvalidInputError("--record-certificates does not combine with --tune; record them when training "
                                "the chosen settings without --tune.")
    if not isinstance(substrate, str):
        raise InvalidInputError("--tune sends its grid points to Dask workers by substrate name; options that "
                                "build a substrate object (--brian2-target, --transconductor, --ota-*, --clamp) "
                                "do not combine with --tune.")
    grid = parse_grid(args.tune_grid) if args.tune_grid else None
    checks.count("--tune-workers", args.tune_workers, low=0)
    if out is None:
        out = checks.output_folder("--out", args.out)
    with warnings.catch_warnings(record=True) as caught:  # the retrain's (each point keeps its own)
        warnings.simplefilter("always")
        tuned = tune(dataset, grid=grid, model=model, topology=topology, hidden=hidden, config=config,
                     seeds=seeds, substrate=substrate, params=params,
                     validation_fraction=args.validation_fraction or VALIDATION_FRACTION,
                     split_seed=args.split_seed, out=Path(out) / "tune", workers=args.tune_workers,
                     scheduler=args.tune_scheduler, progress=not args.quiet)
    print_warnings(caught)
    axes = list(tuned.grid)
    rows = [(r["point"], *[("x".join(map(str, r[a])) if a == "hidden" else ("yes" if r[a] else "no") if a == "sink"
                            else r[a]) for a in axes],
             "-" if r["validation_accuracy"] is None else f"{100 * r['validation_accuracy']:.1f} %",
             r["status"] + (" *" if r["point"] == tuned.choice["point"] else ""))
            for r in tuned.table]
    print(format_table(["point", *axes, "validation acc", "status"], rows))
    print(f"tuning: {len(tuned.table)} grid points ({tuned.skipped} already done, kept in "
          f"{shown_path(Path(out) / 'tune')}/); chose point {tuned.choice['point']} (*), validation accuracy "
          f"{100 * tuned.choice['validation_accuracy']:.1f} %, retrained on train + validation; "
          f"{tuned.seconds:.1f} s in all\n")
    args.tuning = tuned.to_dict()
    return tuned.result, tuned.config
