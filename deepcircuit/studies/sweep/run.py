"""Running a sweep on Dask: one task per run, each result saved atomically, then gathered.

Layout of a sweep folder ``DIR``::

    DIR/runs/<id>.json       one finished run's row (written last: its presence = run done)
    DIR/models/<id>.json     the run's trained model file (deepcircuit model-file format)
    DIR/results/results.parquet   every row of DIR/runs, gathered (pyarrow)

Runs execute in Dask worker *processes* (``distributed.LocalCluster`` by default, one worker
per core, one thread each: ngspice is not thread-safe and keeps state per process). The client
writes the files as results arrive, so a worker needs no shared file system, and a sweep killed
at any moment leaves only complete files: rerunning it runs the missing runs only.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ...atomic_files import atomic_output, write_atomic
from ...substrates.cluster import dask_client  # noqa: F401  (shared with the SPICE substrate; re-exported)
from .spec import Run, build_substrate

RUNS, MODELS, RESULTS = "runs", "models", "results"
STATUSES = ("ok", "failed", "diverged")


def _json_value(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def execute_run(run: Run, compare_to: str | None = None) -> dict:
    """Train and evaluate one run; never raises. Returns ``{"row": {...}, "model": dict | None}``.

    The row holds the run's parameters, its figures (``train_accuracy``, ``test_accuracy``,
    ``mse``, ``sparsity``, ``settled_fraction``, Lyapunov verdict, ODE deviation), ``status``
    (``ok``, ``diverged`` or ``failed``), ``error`` and ``seconds`` (wall time of the run).
    """
    from ... import __version__
    from ..training_run import run_training

    t0 = time.perf_counter()
    row: dict[str, Any] = {"id": run.id, **run.params, "run_seed": run.run_seed, "status": "failed",
                           "error": None, "train_accuracy": None, "test_accuracy": None, "mse": None,
                           "sparsity": None, "settled_fraction": None, "lyapunov_monotone": None,
                           "stability": None, "spectral_abscissa": None, "ode_deviation": None,
                           "ode_accuracy": None, "warnings": None, "version": __version__,
                           "pid": os.getpid(), "command": run.command()}
    model = None
    warned: list[str] = []
    try:
        options = dict(run.substrate_options)
        if "seed" in _substrate_option_names(run.substrate) and "seed" not in options:
            # A substrate's own randomness (mismatch draw, noise) follows the run: each seed is a new chip.
            options["seed"] = run.run_seed
        # What a run prints to stderr is not the sweep's output (the row keeps its warnings).
        with contextlib.redirect_stderr(io.StringIO()), build_substrate(run.substrate, options) as sub:
            # The client writes every file; nothing is written in the worker.
            result, config, warned = run_training(run.settings(), substrate=sub)
            model = _model_dict(result, config)
            diverged = result.diverged[0]
            row.update(train_accuracy=1.0 - float(result.train_error[0]), mse=float(result.mse[0]),
                       sparsity=float(result.sparsity[0]))
            # Training results that know a held-out split report its accuracy (data sets).
            for key in ("train_accuracy", "test_accuracy"):
                value = getattr(result, key, None)
                if value is not None:
                    row[key] = float(np.asarray(value)[0])
            if diverged:
                row.update(status="diverged", error=diverged)
            else:
                row.update(_evaluate(result, config, sub, run.run_seed, compare_to))
                row["status"] = "ok"
    except Exception as exc:  # a failed run is a row, not a crashed sweep
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}".strip())
    row["warnings"] = "\n".join(warned) or None
    row["seconds"] = time.perf_counter() - t0
    return {"row": {k: _json_value(v) for k, v in row.items()}, "model": model}


def _substrate_option_names(name: str) -> set:
    from .spec import substrate_options

    return set(substrate_options(name))


def _model_dict(result, config) -> dict:
    from ...learning.model_file import ModelFile, model_to_dict

    return model_to_dict(ModelFile(
        result.networks[0], seed=result.seeds[0], task=result.task.name, substrate=result.substrate,
        config=config.to_dict(), history=result.histories[0].to_dict(),
        metrics={"train_error": float(result.train_error[0]), "mse": float(result.mse[0]),
                 "diverged": result.diverged[0]}))


def _evaluate(result, config, sub, run_seed: int, compare_to: str | None) -> dict:
    """Settled fraction and Lyapunov verdict of the trained network on its substrate, and its
    deviation from the accurate ODE (settled free states, max over neurons and inputs)."""
    from ...stability.lyapunov import check_phases
    from ...model.network import NetworkBatch
    from ...substrates import initial_states
    from ...substrates.ode import OdeSubstrate

    task, net = result.task, result.networks[0]
    batch = NetworkBatch.of(net)
    s0 = initial_states(np.random.default_rng([run_seed, 1]), 1, task.inputs, net.roles, config.state_init_high)
    schedule = config.schedule
    res = sub.run(batch, task.inputs, s0, schedule, targets=task.targets)
    overshoot = max(float(res.free.meta.get("clamp_overshoot_max", 0.0) or 0.0),
                    float(res.nudged.meta.get("clamp_overshoot_max", 0.0) or 0.0) if res.nudged else 0.0)
    checks = check_phases(res, batch, beta=schedule.beta, targets=task.targets,
                          bound_tol=max(1e-6, 2.0 * overshoot))
    free = checks["free"].checks
    an = [c.analysis for c in free if c.analysis is not None]
    order = {"stable": 0, "marginal": 1, "unstable": 2}
    out = {"settled_fraction": float(res.free.settled.mean()),
           "lyapunov_monotone": bool(all(ch.monotone for ch in checks.values())),
           "stability": (max((a.status for a in an), key=order.__getitem__)
                         if an and len(an) == len(free) else "diverged"),
           "spectral_abscissa": max((float(a.spectral_abscissa) for a in an), default=float("nan"))}
    if compare_to == "ode":
        ref = OdeSubstrate(method="adaptive", rtol=1e-8, atol=1e-10).run(batch, task.inputs, s0, schedule)
        fr = net.roles.free
        out["ode_deviation"] = float(np.abs(res.free.final[..., fr] - ref.free.final[..., fr]).max())
        out["ode_accuracy"] = float(1.0 - task.error(ref.free.outputs)[0])
    return out


# -- files ----------------------------------------------------------------------------------------
def done_ids(out: "str | Path") -> set[str]:
    """Ids of the runs whose row file exists under ``out/runs``."""
    d = Path(out) / RUNS
    return {p.stem for p in d.glob("*.json")} if d.is_dir() else set()


def remove_partial_files(out: "str | Path") -> int:
    """Delete temporary files a killed sweep left behind (never read: results are renamed into place)."""
    n = 0
    for sub in (RUNS, MODELS, RESULTS):
        for p in (Path(out) / sub).glob(".*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
    return n


def save_outcome(out: "str | Path", outcome: dict) -> dict:
    """Write a run's model file, then its row (atomically, in that order); returns the row."""
    row = outcome_row(outcome)
    write_outcome(out, outcome, row)
    return row


def outcome_row(outcome: dict) -> dict:
    """The row to store for ``outcome``: its row plus where its model file goes."""
    row = dict(outcome["row"])
    row["model_file"] = str(Path(MODELS) / f"{row['id']}.json") if outcome.get("model") is not None else None
    return row


def write_outcome(out: "str | Path", outcome: dict, row: dict) -> None:
    """Write the model file, then the row file; each atomically (temporary file, fsync, rename)."""
    out = Path(out)
    if row.get("model_file"):
        write_atomic(out / row["model_file"], json.dumps(outcome["model"], indent=1, allow_nan=False) + "\n")
    write_atomic(out / RUNS / f"{row['id']}.json", json.dumps(row, allow_nan=False) + "\n")


def gather(out: "str | Path") -> Path:
    """Gather every ``out/runs/*.json`` row into ``out/results/results.parquet`` (atomically)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    rows = []
    for p in sorted((out / RUNS).glob("*.json")):
        try:
            rows.append(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):  # not ours (our writes are atomic): leave it out
            continue
    df = pd.DataFrame(rows)
    for col in df.columns:
        kinds = {type(r[col]) for r in rows if r.get(col) is not None}
        if kinds == {int} and df[col].dtype != object:  # integers with gaps: keep them integers
            df[col] = df[col].astype("Int64")
        elif df[col].dtype == object:
            kinds = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and math.isnan(v))}
            if kinds == {int, float}:
                df[col] = pd.to_numeric(df[col])
            elif len(kinds) > 1:  # mixed types in one column: keep them readable as text
                df[col] = df[col].map(lambda v: None if v is None else str(v))
    table = pa.Table.from_pandas(df, preserve_index=False)
    path = out / RESULTS / "results.parquet"
    with atomic_output(path, suffix=".parquet.tmp") as tmp:
        pq.write_table(table, tmp)
    return path


# -- the engine -----------------------------------------------------------------------------------
@dataclass
class SweepOutcome:
    """What :func:`run_sweep` did: counts by status over the runs it executed, and where things are."""

    total: int
    skipped: int
    counts: dict = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    seconds: float = 0.0
    results: Path | None = None
    dashboard: str | None = None

    @property
    def failed(self) -> int:
        return self.counts["failed"]


KEY_PREFIX = "deepcircuit-run-"


def run_sweep(runs: Sequence[Run], out: "str | Path", *, client=None, compare_to: str | None = None,
              progress: bool = True, on_row: Callable[[dict], None] | None = None,
              on_client: Callable[[Any], None] | None = None, **client_options) -> SweepOutcome:
    """Run every run of ``runs`` not already done under ``out``; gather; return the counts.

    ``client`` is a ``distributed.Client`` to use; otherwise one is made with
    :func:`dask_client` (``workers``, ``scheduler``, ``memory_limit``, ``restart_after``).
    ``on_row(row)`` is called for every finished run, ``on_client(client)`` once the client is
    connected (the command line prints the dashboard address there). Interrupted (Ctrl-C),
    the rows finished so far are gathered before the interruption propagates.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    remove_partial_files(out)
    done = done_ids(out)
    todo = [r for r in runs if r.id not in done]
    outcome = SweepOutcome(total=len(runs), skipped=len(runs) - len(todo))
    if todo:
        with (contextlib.nullcontext(client) if client is not None else dask_client(**client_options)) as c:
            outcome.dashboard = c.dashboard_link
            from .worker import LoadSubstrates

            c.register_plugin(LoadSubstrates({r.substrate for r in todo}))
            if on_client is not None:
                on_client(c)
            try:
                _execute(c, todo, out, compare_to, outcome, progress, on_row)
            except KeyboardInterrupt:
                gather(out)
                raise
    outcome.results = gather(out) if done_ids(out) else None
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _execute(client, todo: Sequence[Run], out: Path, compare_to, outcome: SweepOutcome, progress: bool,
             on_row) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from distributed import as_completed

    (out / RUNS).mkdir(parents=True, exist_ok=True)
    (out / MODELS).mkdir(parents=True, exist_ok=True)
    # Files are written by a few threads: each write waits on fsync (the GIL is released
    # meanwhile), so writes overlap each other and the next results instead of queueing.
    writer = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sweep-writer")
    writes = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="run", desc="sweep", disable=None)
    by_key = {}
    futures = []
    for run in todo:
        # The key names the run, so resubmitting an identical run (another client) reuses it.
        f = client.submit(execute_run, run, compare_to, key=f"{KEY_PREFIX}{run.id}", pure=False)
        by_key[f.key] = run
        futures.append(f)
    try:
        # with_results: results stream to the client in the background, not one round trip each.
        for f, result in as_completed(futures, with_results=True, raise_errors=False):
            run = by_key[f.key]
            if isinstance(result, BaseException):  # the worker process died (KilledWorker) or similar
                exc = result
                result = {"row": {"id": run.id, **run.params, "run_seed": run.run_seed, "status": "failed",
                                  "error": f"{type(exc).__name__}: {exc}", "seconds": None,
                                  "command": run.command()}, "model": None}
            f.release()
            row = outcome_row(result)
            writes.append(writer.submit(write_outcome, out, result, row))
            if len(writes) > 64:  # surface a failed write (disk full, permissions) promptly
                for w in writes[:-32]:
                    w.result()
                writes = writes[-32:]
            outcome.counts[row["status"]] = outcome.counts.get(row["status"], 0) + 1
            if on_row is not None:
                on_row(row)
            if bar is not None:
                c = outcome.counts
                bar.set_postfix(ok=c["ok"], failed=c["failed"], diverged=c["diverged"],
                                remaining=len(todo) - sum(c.values()), refresh=False)
                bar.update(1)
    finally:
        writer.shutdown(wait=True)
        if bar is not None:
            bar.close()
        for f in futures:
            f.release()
    for w in writes:
        w.result()
