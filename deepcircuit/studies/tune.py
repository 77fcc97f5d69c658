"""The tuner: a validation-based search over a small, named grid, on Dask, resumable.

:func:`tune` trains one network per seed at every point of a grid over four named axes,

* ``eta``: the learning rate (``TrainingConfig.eta``),
* ``beta``: the nudging strength (1/tau),
* ``hidden``: the hidden layer sizes,
* ``sink``: whether the topology has the sink neuron (``+sink``, see :mod:`deepcircuit.model.topology`),

scores every point by its mean accuracy on a validation split (never the test split), chooses
the best (the first in grid order on a tie; points where a seed diverged or the run failed are
never chosen), and retrains the choice on train + validation with the same seeds. The default
grid is placed around the data set's default configuration (what :func:`deepcircuit.train`
would use): ``eta`` x 1/3, 1, 3; ``beta`` x 1 and 1/10; ``hidden`` x 1 and 2: 12 points; and
``sink`` no and yes (24 points) unless the default topology already has the sink.

Grid points run as Dask tasks on a ``LocalCluster`` of single-threaded worker processes or on
an existing scheduler (:func:`deepcircuit.substrates.cluster.dask_client`, the cluster ``sweep``
uses), or in this process (``workers=0``). With ``out``, every finished point is written
atomically to ``out/points/<id>.json`` as it arrives; a rerun skips the points whose file
exists. The id hashes the point and everything else that decides its result (data, family,
settings, seeds, substrate), so a changed run never reuses a stale point.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..atomic_files import write_atomic
from ..data.split import Dataset, load_dataset
from ..data.tasks import Task
from ..errors import DeepCircuitError, InvalidInputError
from ..learning.model_schema import MAX_TUNING_ROWS, TUNING_AXES
from ..learning.config import TrainingConfig
from ..learning.results import TrainingResult
from ..learning.initial_networks import parse_hidden
from ..learning.training import train
from ..data.defaults import DataShape, dataset_defaults, default_model

#: The named axes of a grid, in the order of the table's columns (the model file's schema checks
#: a stored table against the same names).
AXES = TUNING_AXES
#: The default grid, as factors on the data set's default eta, beta and hidden size.
DEFAULT_FACTORS = {"eta": (1 / 3, 1.0, 3.0), "beta": (1.0, 0.1), "hidden": (1, 2), "sink": (False, True)}
#: Largest grid accepted (points): a grid is a small search, not a sweep.
MAX_GRID_POINTS = MAX_TUNING_ROWS
#: Distinct warning messages a grid point's row keeps.
MAX_WARNINGS = 5
#: Validation fraction held out of the training split when the data set has none.
VALIDATION_FRACTION = 0.2
POINTS = "points"
_TRUE, _FALSE = ("yes", "true", "1", "on"), ("no", "false", "0", "off")
#: What each axis takes, for messages.
ALLOWED = {"eta": "a finite number > 0", "beta": "a finite number > 0",
           "hidden": "hidden layer sizes >= 1 such as 16 or 32x16", "sink": "yes or no"}


# -- the grid ----------------------------------------------------------------------------------
def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """Grid axes from text items ``NAME=V1,V2,...`` (``--tune-grid``); hidden sizes of several
    layers are written with ``x``: ``hidden=16,32x16``. Values are checked by :func:`check_grid`."""
    grid: dict[str, list] = {}
    for item in items:
        name, eq, values = str(item).partition("=")
        name = name.strip()
        if not eq or not name or not values.strip():
            raise InvalidInputError(f"--tune-grid takes NAME=V1,V2,... with NAME one of {', '.join(AXES)}; "
                                    f"got {str(item)[:60]!r}.")
        if name in grid:
            raise InvalidInputError(f"--tune-grid names the axis {name!r} twice; give its values once.")
        grid[name] = [v.strip() for v in values.split(",")]
    return check_grid(grid)


def _value(axis: str, v: Any) -> Any:
    """One grid value of ``axis``, converted and range-checked; raises ValueError if not allowed."""
    if axis in ("eta", "beta"):
        x = float(v) if isinstance(v, (str, int, float)) and not isinstance(v, bool) else None
        if x is None or not np.isfinite(x) or x <= 0:
            raise ValueError(axis)
        return x
    if axis == "hidden":
        if isinstance(v, str):
            parts = v.lower().split("x")
            v = [int(h) for h in parts] if all(h.strip().isdigit() for h in parts) else None
        sizes = parse_hidden(v) if isinstance(v, (int, list, tuple)) and not isinstance(v, bool) else None
        if not sizes or any(h < 1 for h in sizes):
            raise ValueError(axis)
        return list(sizes)
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in _TRUE + _FALSE:
        return v.lower() in _TRUE
    raise ValueError(axis)


def check_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, list]:
    """A grid ``{axis: [values]}`` checked and converted; bad input raises one line naming the
    axis or value and what is allowed. Missing axes keep the data set's default."""
    if not isinstance(grid, Mapping) or not grid:
        raise InvalidInputError(f"A tuning grid is a non-empty mapping of axes ({', '.join(AXES)}) to lists of values.")
    out: dict[str, list] = {}
    for axis, values in grid.items():
        if axis not in AXES:
            raise InvalidInputError(f"Unknown tuning axis {str(axis)[:40]!r}; the axes are {', '.join(AXES)}.")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise InvalidInputError(f"Tuning axis {axis!r} needs a non-empty list of values; got {str(values)[:40]!r}.")
        checked = []
        for v in values:
            try:
                checked.append(_value(axis, v))
            except (ValueError, TypeError, OverflowError, DeepCircuitError):
                raise InvalidInputError(f"Tuning axis {axis!r}: value {str(v)[:30]!r} is not {ALLOWED[axis]}.") from None
        if len({json.dumps(c) for c in checked}) != len(checked):
            raise InvalidInputError(f"Tuning axis {axis!r} repeats a value: {values!r}.")
        out[axis] = checked
    n = int(np.prod([len(v) for v in out.values()]))
    if n > MAX_GRID_POINTS:
        raise InvalidInputError(f"The tuning grid has {n} points, above the limit of {MAX_GRID_POINTS}; "
                                "give fewer values.")
    return out


def _sink_topology(topology: Any, sink: bool) -> str:
    if not isinstance(topology, str):
        raise InvalidInputError("The tuning axis 'sink' applies to a named topology (complete or layered), "
                                "not to a graph; leave 'sink' out of the grid.")
    base = topology[:-len("+sink")] if topology.endswith("+sink") else topology
    return base + "+sink" if sink else base


def default_grid(config: TrainingConfig, hidden: Sequence[int], topology: Any) -> dict[str, list]:
    """The default grid around a configuration (:data:`DEFAULT_FACTORS`): 12 points, 24 with the
    sink axis.

    The sink axis is left out when the default topology already has the sink: on every data set
    tuned with it (wine, breast_cancer, suite:blobs; docs/tuning.md) all 36 points without the
    sink stayed at or near chance (25-63 %), so half the grid was spent on points that cannot be
    chosen. ``grid={"sink": [False, True], ...}`` still searches it."""
    f = DEFAULT_FACTORS
    grid = {"eta": [float(f"{config.eta * k:.4g}") for k in f["eta"]],
            "beta": [float(f"{config.beta * k:.4g}") for k in f["beta"]],
            "hidden": [[max(1, int(h * k)) for h in hidden] for k in f["hidden"]]}
    if isinstance(topology, str) and not topology.endswith("+sink"):
        grid["sink"] = list(f["sink"])
    return check_grid(grid)


# -- data --------------------------------------------------------------------------------------
def with_validation(dataset: Dataset, fraction: float = VALIDATION_FRACTION, seed: int = 0) -> Dataset:
    """``dataset`` if it has a validation split, else one with ``fraction`` of its training
    presentations held out for validation (stratified by class, seeded). The scaler stays the
    one fitted on the whole training split, which is what the retrained model uses."""
    if dataset.validation is not None:
        return dataset
    if dataset.test_is_train:
        raise InvalidInputError(f"{dataset.name} is a whole truth table (its own test set): it has no rows to "
                                "hold out for validation, so it cannot be tuned.")
    from sklearn.model_selection import train_test_split

    t = dataset.train
    labels = np.asarray(t.labels)
    labels = labels if labels.ndim == 1 else labels[:, 0]
    try:
        keep, held = train_test_split(np.arange(t.n_presentations), test_size=fraction, random_state=seed,
                                      stratify=labels)
    except ValueError as exc:
        raise InvalidInputError(f"{dataset.name}: cannot hold out a stratified validation fraction of "
                                f"{fraction:g} from {t.n_presentations} training rows ({exc}).") from None
    keep, held = np.sort(keep), np.sort(held)
    return replace(dataset, train=t.subset(keep), validation=replace(t.subset(held), split="validation"),
                   validation_fraction=fraction)


def merged_train(dataset: Dataset) -> Dataset:
    """The data set with its validation presentations added to the training split (for the retrain)."""
    t, v = dataset.train, dataset.validation
    train_task = Task(t.name, np.vstack([t.inputs, v.inputs]), np.vstack([t.targets, v.targets]), t.readout,
                      split="train")
    return replace(dataset, train=train_task, validation=None, validation_fraction=0.0)


# -- one grid point ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    """One grid point: its values and the training it stands for (picklable, sent to a worker)."""

    index: int
    values: Mapping[str, Any]
    id: str


def _point_settings(values: Mapping[str, Any], base: Mapping[str, Any]) -> tuple[TrainingConfig, Any, tuple]:
    config = base["config"].replace(**{k: values[k] for k in ("eta", "beta") if k in values})
    topology = _sink_topology(base["topology"], values["sink"]) if "sink" in values else base["topology"]
    hidden = tuple(values.get("hidden", base["hidden"]))
    return config, topology, hidden


def run_point(point: Point, dataset: Dataset, base: Mapping[str, Any]) -> dict:
    """Train every seed at one grid point; never raises. The row: the point's values, its mean
    validation accuracy (and per seed), mean train accuracy, status, error, seconds."""
    t0 = time.perf_counter()
    row: dict[str, Any] = {"point": point.index, "id": point.id, **_row_values(point.values),
                           "validation_accuracy": None, "validation_accuracy_per_seed": None,
                           "train_accuracy": None, "status": "failed", "error": None, "warnings": None}
    try:
        config, topology, hidden = _point_settings(point.values, base)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = train(dataset, model=base["model"], topology=topology, hidden=hidden, seeds=base["seeds"],
                        config=config, substrate=base["substrate"], params=base["params"], on_divergence="report")
        # Kept with the row (the table is the record), each distinct message once.
        said = list(dict.fromkeys(" ".join(str(w.message).split())[:300] for w in caught))
        row["warnings"] = said[:MAX_WARNINGS] or None
        per_seed = [float(a) for a in 1.0 - np.asarray(res.validation_error)]
        diverged = [m for m in res.diverged if m]
        row.update(validation_accuracy=float(np.mean(per_seed)), validation_accuracy_per_seed=per_seed,
                   train_accuracy=float(np.mean(res.train_accuracy)),
                   status="diverged" if diverged else "ok", error=diverged[0] if diverged else None)
    except Exception as exc:  # a failed point is a row, not a failed search
        row["error"] = f"{type(exc).__name__}: {exc}"[:500]
    row["seconds"] = time.perf_counter() - t0
    return row


def _row_values(values: Mapping[str, Any]) -> dict:
    return {k: values[k] for k in AXES if k in values}


# -- the search --------------------------------------------------------------------------------
@dataclass
class TuneResult:
    """What :func:`tune` returns: the grid, its table, the choice and the retrained model."""

    grid: dict
    table: list
    choice: dict
    result: TrainingResult
    config: TrainingConfig
    topology: Any
    hidden: tuple
    validation_fraction: float
    seeds: list
    skipped: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """The ``tuning`` record of the model file and the JSON output (docs/model-file.md)."""
        return {"metric": "validation_accuracy", "validation_fraction": self.validation_fraction,
                "seeds": list(self.seeds), "grid": self.grid, "table": self.table, "choice": self.choice,
                "retrained_on": "train+validation"}


def _fingerprint(dataset: Dataset, base: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    for task in (dataset.train, dataset.validation):
        h.update(np.ascontiguousarray(task.inputs).tobytes())
        h.update(np.ascontiguousarray(task.targets).tobytes())
    sub = base["substrate"]
    h.update(json.dumps({"model": base["model"], "seeds": base["seeds"], "params": base["params"],
                         "config": base["config"].to_dict(), "topology": str(base["topology"]),
                         "hidden": list(base["hidden"]), "substrate": sub if isinstance(sub, str) else repr(sub)},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()


def _points(grid: Mapping[str, list], fingerprint: str) -> list[Point]:
    import itertools

    axes = [a for a in AXES if a in grid]
    out = []
    for k, combo in enumerate(itertools.product(*(grid[a] for a in axes))):
        values = dict(zip(axes, combo))
        key = json.dumps({"point": values, "base": fingerprint}, sort_keys=True)
        out.append(Point(k, values, hashlib.sha256(key.encode()).hexdigest()[:16]))
    return out


def _load_done(out: Path | None, points: Sequence[Point]) -> dict[str, dict]:
    done = {}
    if out is None:
        return done
    for p in points:
        f = out / POINTS / f"{p.id}.json"
        try:
            row = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # absent (not run yet); our writes are atomic, so never half-written
        if isinstance(row, dict) and row.get("id") == p.id:
            done[p.id] = {**row, "point": p.index}
    return done


def _save(out: Path | None, row: dict) -> None:
    if out is not None:
        write_atomic(out / POINTS / f"{row['id']}.json", json.dumps(row, allow_nan=False) + "\n")


def _run_points(todo: Sequence[Point], dataset: Dataset, base: Mapping[str, Any], out: Path | None,
                *, workers: int | None, scheduler: str | None, client, progress: bool) -> list[dict]:
    rows: list[dict] = []
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="point", desc="tune", disable=None)

    def finished(row: dict) -> None:
        _save(out, row)
        rows.append(row)
        if bar is not None:
            bar.update(1)

    try:
        if not todo:
            return rows
        if client is None and workers == 0 and scheduler is None:
            for p in todo:
                finished(run_point(p, dataset, base))
            return rows
        import contextlib

        from distributed import as_completed

        from ..substrates.cluster import dask_client

        made = contextlib.nullcontext(client) if client is not None else dask_client(workers=workers,
                                                                                     scheduler=scheduler)
        with made as c:
            data = c.scatter(dataset, broadcast=True)
            futures = [c.submit(run_point, p, data, base, key=f"deepcircuit-tune-{p.id}", pure=False) for p in todo]
            for f in as_completed(futures):
                finished(f.result())  # run_point never raises; a dead worker's error propagates
        return rows
    finally:
        if bar is not None:
            bar.close()


def _choose(table: Sequence[dict]) -> dict:
    usable = [r for r in table if r["status"] == "ok" and r["validation_accuracy"] is not None]
    if not usable:
        why = next((r["error"] for r in table if r.get("error")), "no point finished")
        raise InvalidInputError(f"Tuning found no usable grid point: every point diverged or failed "
                                f"(first reason: {why}).")
    return max(usable, key=lambda r: (r["validation_accuracy"], -r["point"]))


def tune(task: "str | Path | Dataset", *, grid: "Mapping[str, Sequence] | None" = None, model: str | None = None,
         topology: Any = None, hidden: Any = None, config: TrainingConfig | None = None,
         seeds: "int | Sequence[int]" = (0,), substrate: str = "ode", params: Mapping[str, float] | None = None,
         validation_fraction: float = VALIDATION_FRACTION, split_seed: int = 0, out: "str | Path | None" = None,
         workers: int | None = None, scheduler: str | None = None, client=None,
         progress: bool = False) -> TuneResult:
    """Choose eta, beta, hidden size and the sink on a validation split; retrain the choice.

    Parameters
    ----------
    task : str, Path or Dataset
        A built-in data set, a data file, or a :class:`~deepcircuit.data.split.Dataset`. Without a
        validation split, ``validation_fraction`` of the training rows are held out (stratified,
        seeded by ``split_seed``).
    grid : mapping, optional
        ``{axis: [values]}`` over the axes ``eta``, ``beta``, ``hidden``, ``sink``; default: the
        grid around the data set's default configuration (module docstring). Axes left out keep
        the default configuration's value.
    model, topology, hidden, config, params, seeds, substrate
        As for :func:`deepcircuit.train` (the base every grid point changes); ``substrate`` is a
        name or spec string (it is sent to Dask workers).
    out : str or Path, optional
        Folder for the per-point results (``out/points/<id>.json``, atomic): a rerun skips the
        points done. ``None``: nothing is written, nothing is resumed.
    workers, scheduler, client
        Where points run: a new local cluster of ``workers`` processes (default one per core),
        an existing scheduler's address, or a ``distributed.Client``; ``workers=0`` runs them here.
    """
    t0 = time.perf_counter()
    if isinstance(task, Dataset):
        dataset = task
    else:
        dataset = load_dataset(task, validation_fraction=validation_fraction, split_seed=split_seed)
    dataset = with_validation(dataset, validation_fraction, split_seed)
    if model is None:
        model = default_model(dataset.name, source=dataset.source)
    defaults = dataset_defaults(dataset.name, model, source=dataset.source, shape=DataShape.of(dataset))
    config = config or TrainingConfig.for_task(dataset, model=model)
    if config.early_stopping is not None:
        raise InvalidInputError("Early stopping does not combine with tuning: the choice is retrained on train + "
                                "validation, which leaves no validation split to stop on.")
    given_config = config
    config = config.replace(eval_every=0)  # grid points read the validation split once, at the end
    topology = defaults.topology if topology is None else topology
    hidden = parse_hidden(defaults.hidden if hidden is None else hidden)
    if params is None and defaults.params:
        params = dict(defaults.params)
    seeds = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    grid = check_grid(grid) if grid is not None else default_grid(config, hidden, topology)
    if "sink" in grid:
        _sink_topology(topology, True)  # a graph cannot take the sink axis: fail before any work
    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 0):
        raise InvalidInputError(f"workers must be an integer >= 0 (0: in this process); got {workers!r}.")
    base = {"model": model, "topology": topology, "hidden": hidden, "config": config, "seeds": seeds,
            "substrate": substrate, "params": dict(params) if params else None}
    points = _points(grid, _fingerprint(dataset, base))
    out = Path(out) if out is not None else None
    done = _load_done(out, points)
    todo = [p for p in points if p.id not in done]
    rows = _run_points(todo, dataset, base, out, workers=workers, scheduler=scheduler, client=client,
                       progress=progress)
    by_id = {**done, **{r["id"]: r for r in rows}}
    table = [by_id[p.id] for p in points]
    best = _choose(table)
    choice = {**_row_values(points[best["point"]].values), "point": best["point"],
              "validation_accuracy": best["validation_accuracy"]}
    final_config, final_topology, final_hidden = _point_settings(points[best["point"]].values, base)
    final_config = final_config.replace(eval_every=given_config.eval_every)
    result = train(merged_train(dataset), model=model, topology=final_topology, hidden=final_hidden,
                   seeds=seeds, config=final_config, substrate=substrate, params=base["params"],
                   progress=progress, on_divergence="report")
    return TuneResult(grid={a: grid[a] for a in AXES if a in grid}, table=table, choice=choice, result=result,
                      config=final_config, topology=final_topology, hidden=final_hidden,
                      validation_fraction=float(dataset.validation_fraction or validation_fraction),
                      seeds=seeds, skipped=len(done), seconds=time.perf_counter() - t0)
