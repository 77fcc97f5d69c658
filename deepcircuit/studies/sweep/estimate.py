"""How long a sweep will take: a per-substrate time model from finished or calibration runs.

``deepcircuit sweep --dry-run`` prints it; nothing here prints.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from .run import RUNS, execute_run
from .spec import Run


def estimate_seconds(runs: Sequence[Run], out: Path) -> tuple[float, str]:
    """Seconds the runs take one after the other, and how that was found (text).

    A run's time is modelled as ``fixed + per_epoch * epochs`` per substrate: fitted to the
    finished runs under ``out`` (mean seconds per epoch when all share one epoch count), or
    measured here with a warm-up run, then runs of 1 and 3 epochs of the first pending run of
    each substrate. Runs without an epoch count are taken as 200 epochs (the preset's).
    """
    model: dict[str, tuple[float, float]] = {}
    finished: dict[str, list[tuple[int, float]]] = {}
    for p in (out / RUNS).glob("*.json") if (out / RUNS).is_dir() else ():
        try:
            row = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if row.get("seconds") and row.get("epochs") is not None:
            finished.setdefault(row.get("substrate"), []).append((int(row["epochs"]), float(row["seconds"])))
    for sub, pts in finished.items():
        model[sub] = (0.0, sum(t for _, t in pts) / max(sum(e for e, _ in pts), 1))
    how = "from the finished runs"
    for sub in sorted({r.substrate for r in runs} - set(model)):
        first = next(r for r in runs if r.substrate == sub)
        _timed(first, 1)  # warm-up: imports, JIT compilation, simulator start
        t1, t3 = _timed(first, 1), _timed(first, 3)
        per_epoch = max((t3 - t1) / 2, 0.0)
        model[sub] = (max(t1 - per_epoch, 0.0), per_epoch)
        how = "from calibration runs of 1 and 3 epochs"
    total = 0.0
    for r in runs:
        epochs = r.params.get("epochs")
        fixed, per_epoch = model[r.substrate]
        total += fixed + per_epoch * (200 if epochs is None else int(epochs))
    return total, how


def _timed(run: Run, epochs: int) -> float:
    """Wall seconds of ``run`` trained for ``epochs`` epochs, here (its row's ``seconds``)."""
    argv = list(run.argv)
    if "--epochs" in argv:
        argv[argv.index("--epochs") + 1] = str(epochs)
    else:
        argv += ["--epochs", str(epochs)]
    short = replace(run, params={**run.params, "epochs": epochs}, argv=tuple(argv), given=run.given | {"epochs"})
    return execute_run(short)["row"]["seconds"]
