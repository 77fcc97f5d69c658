"""The schema of a model file (``docs/model-file.md``), checked field by field on load.

A model file comes from someone else: nothing in it is trusted. :func:`validate_model_dict`
checks the parsed JSON against the documented schema before anything is built from it, and
says which field is wrong with its path (``network.weights[3][2]: must be a finite number; got
'x'``), what was found and what is allowed. Sizes are bounded by :mod:`deepcircuit.limits`.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from ..errors import DeepCircuitError, ModelFileError

#: Longest text field (task, substrate, topology name, version string).
MAX_NAME_CHARS = 100


class _Bad(Exception):
    def __init__(self, where: str, msg: str) -> None:
        super().__init__(f"{where}: {msg}")


def _show(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _is_real(v: Any) -> bool:
    return type(v) in (int, float)


def _real(where: str, v: Any) -> float:
    if _is_real(v):
        f = float(v) if not isinstance(v, int) or abs(v) < 2 ** 1023 else math.inf
        if math.isfinite(f):
            return f
    raise _Bad(where, f"must be a finite number; got {_show(v)}")


def _int(where: str, v: Any, low: int | None = None, high: int | None = None, limit: str | None = None) -> int:
    if type(v) is not int:
        raise _Bad(where, f"must be an integer; got {_show(v)}")
    if low is not None and v < low:
        raise _Bad(where, f"must be an integer >= {low}; got {v}")
    if high is not None and v > high:
        lim = f" (limit {limit}, deepcircuit.limits)" if limit else ""
        raise _Bad(where, f"must be at most {high}{lim}; got {v}")
    return v


def _text(where: str, v: Any, *, optional: bool = True) -> None:
    if v is None and optional:
        return
    if not isinstance(v, str) or not v or len(v) > MAX_NAME_CHARS or not v.isprintable():
        raise _Bad(where, f"must be {'null or ' if optional else ''}a printable name of 1 to "
                          f"{MAX_NAME_CHARS} characters; got {_show(v)}")


def _dict(where: str, v: Any, *, optional: bool = True) -> dict:
    if v is None and optional:
        return {}
    if not isinstance(v, dict):
        raise _Bad(where, f"must be an object {{...}}; got {type(v).__name__} {_show(v)}")
    return v


def _vector(where: str, v: Any, n: int) -> None:
    if not isinstance(v, list) or len(v) != n:
        got = f"a list of {len(v)}" if isinstance(v, list) else f"{type(v).__name__} {_show(v)}"
        raise _Bad(where, f"must be a list of {n} finite numbers; got {got}")
    for k, x in enumerate(v):
        if not _is_real(x) or not math.isfinite(x if isinstance(x, float) else 0.0) or (
                isinstance(x, int) and abs(x) >= 2 ** 1023):
            raise _Bad(f"{where}[{k}]", f"must be a finite number; got {_show(x)}")


def _matrix(where: str, v: Any, n: int, *, boolean: bool) -> None:
    kind = "0 or 1" if boolean else "finite numbers"
    if not isinstance(v, list) or len(v) != n:
        got = f"{len(v)} rows" if isinstance(v, list) else f"{type(v).__name__} {_show(v)}"
        raise _Bad(where, f"must be an {n} x {n} list of lists of {kind}; got {got}")
    for i, row in enumerate(v):
        if boolean:
            if not isinstance(row, list) or len(row) != n:
                raise _Bad(f"{where}[{i}]", f"must be a list of {n} entries 0 or 1; got "
                                            f"{_show(row) if not isinstance(row, list) else f'{len(row)} entries'}")
            for j, x in enumerate(row):
                if x not in (0, 1) or type(x) not in (int, bool):
                    raise _Bad(f"{where}[{i}][{j}]", f"must be 0 or 1; got {_show(x)}")
        else:
            _vector(f"{where}[{i}]", row, n)


def _check_network(where: str, net: Any) -> None:
    from ..model.families import FAMILIES
    from ..limits import MAX_LAYERS, MAX_NEURONS

    net = _dict(where, net, optional=False)
    for key in ("roles", "family", "weights", "bias", "topology_mask", "mask"):
        if key not in net:
            raise _Bad(where, f"the field {key!r} is missing")
    roles = _dict(f"{where}.roles", net["roles"], optional=False)
    for key in ("n_inputs", "hidden", "n_outputs"):
        if key not in roles:
            raise _Bad(f"{where}.roles", f"the field {key!r} is missing")
    n_in = _int(f"{where}.roles.n_inputs", roles["n_inputs"], 2, MAX_NEURONS, "MAX_NEURONS")
    n_out = _int(f"{where}.roles.n_outputs", roles["n_outputs"], 1, MAX_NEURONS, "MAX_NEURONS")
    hidden = roles["hidden"]
    if not isinstance(hidden, list) or len(hidden) > MAX_LAYERS:
        raise _Bad(f"{where}.roles.hidden", f"must be a list of at most {MAX_LAYERS} layer sizes "
                                            f"(limit MAX_LAYERS); got {_show(hidden)}")
    for k, h in enumerate(hidden):
        _int(f"{where}.roles.hidden[{k}]", h, 0, MAX_NEURONS, "MAX_NEURONS")
    n = n_in + n_out + sum(hidden)
    if n > MAX_NEURONS:
        raise _Bad(f"{where}.roles", f"the network has {n} neurons, above the limit MAX_NEURONS = "
                                     f"{MAX_NEURONS} (deepcircuit.limits)")
    fam = net["family"]
    if not isinstance(fam, str) or fam not in FAMILIES:
        raise _Bad(f"{where}.family", f"must be one of {', '.join(map(repr, FAMILIES))}; got {_show(fam)}")
    params = _dict(f"{where}.params", net.get("params"))
    for k, v in params.items():
        _real(f"{where}.params.{k}", v)
    _text(f"{where}.topology", net.get("topology"))
    _matrix(f"{where}.weights", net["weights"], n, boolean=False)
    _vector(f"{where}.bias", net["bias"], n)
    _matrix(f"{where}.topology_mask", net["topology_mask"], n, boolean=True)
    _matrix(f"{where}.mask", net["mask"], n, boolean=True)


def _annotation_kinds(annotation: Any) -> set[str]:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return {part.strip() for part in text.split("|")}


def _check_config(config: Any) -> None:
    from ..limits import MAX_EPOCHS, MAX_PHASE_STEPS
    from .config import TrainingConfig

    config = _dict("config", config)
    known = {f.name: f for f in fields(TrainingConfig)}
    for key, v in config.items():
        where = f"config.{key}"
        if key not in known:
            raise _Bad(where, f"is not a training setting; settings are {', '.join(known)}")
        kinds = _annotation_kinds(known[key].type)
        if not kinds <= {"int", "float", "bool", "str", "None"}:
            continue  # a structured setting: TrainingConfig checks it below
        ok = ((v is None and "None" in kinds) or (type(v) is bool and "bool" in kinds)
              or (type(v) is int and ("int" in kinds or "float" in kinds))
              or (type(v) is float and "float" in kinds) or (type(v) is str and "str" in kinds))
        if not ok:
            want = " or ".join(sorted(k.replace("None", "null") for k in kinds))
            raise _Bad(where, f"must be {want}; got {_show(v)}")
        if type(v) is float and not math.isfinite(v):
            raise _Bad(where, f"must be a finite number; got {_show(v)}")
    limits = {"epochs": ("MAX_EPOCHS", MAX_EPOCHS), "free_steps": ("MAX_PHASE_STEPS", MAX_PHASE_STEPS),
              "nudged_steps": ("MAX_PHASE_STEPS", MAX_PHASE_STEPS)}
    for key, (name, cap) in limits.items():
        if key in config:
            _int(f"config.{key}", config[key], 0, cap, name)
    try:
        TrainingConfig.from_dict(config)
    except DeepCircuitError as exc:
        raise _Bad("config", str(exc)) from None


def validate_model_dict(d: Any, where: str = "the model file") -> None:
    """Check a parsed model file against the schema of ``docs/model-file.md``.

    Raises :class:`~deepcircuit.errors.ModelFileError` with ``where`` (the file), the path of the
    first offending field, what it must be and what it is. The format tag and version are checked
    by the caller (:func:`deepcircuit.learning.model_file.load_model`) first.
    """
    try:
        d = _dict("(top level)", d, optional=False)
        if "network" not in d:
            raise _Bad("(top level)", "the field 'network' is missing")
        _text("deepcircuit_version", d.get("deepcircuit_version"))
        _check_network("network", d["network"])
        if d.get("seed") is not None:
            _int("seed", d["seed"], 0, 2 ** 63 - 1)
        _text("task", d.get("task"))
        _text("substrate", d.get("substrate"))
        _check_config(d.get("config"))
        # History and metrics are records for people and plots, never used to build anything;
        # their entries are free-form JSON (bounded by the size and depth limits).
        _dict("history", d.get("history"))
        _dict("metrics", d.get("metrics"))
        _dict("chip", d.get("chip"))  # the chip trained on: a record, like the metrics
        if d.get("dataset") is not None:  # the data set a model was trained on (docs/model-file.md)
            from ..data.split import check_dataset_dict

            try:
                check_dataset_dict(d["dataset"])
            except ModelFileError as exc:
                raise _Bad("dataset", str(exc)) from None
        if d.get("tuning") is not None:
            _check_tuning(d["tuning"])
    except _Bad as exc:
        raise ModelFileError(f"{where} is not a valid deepcircuit model file: {exc}") from None


#: The tuning axes (deepcircuit.studies.tune.AXES) and the keys of a tuning record and its rows.
TUNING_AXES = ("eta", "beta", "hidden", "sink")
_TUNING_KEYS = {"metric", "validation_fraction", "seeds", "grid", "table", "choice", "retrained_on"}
_ROW_KEYS = {"point", "id", "validation_accuracy", "validation_accuracy_per_seed", "train_accuracy", "status",
             "error", "warnings", "seconds"}
#: Most grid points a stored table may have (the tuner's MAX_GRID_POINTS).
MAX_TUNING_ROWS = 256


def _axis_value(where: str, axis: str, v: Any) -> None:
    if axis == "sink":
        if type(v) is not bool:
            raise _Bad(where, f"must be true or false; got {_show(v)}")
    elif axis == "hidden":
        if not isinstance(v, list) or not v:
            raise _Bad(where, f"must be a non-empty list of layer sizes; got {_show(v)}")
        for k, h in enumerate(v):
            _int(f"{where}[{k}]", h, 1)
    elif _real(where, v) <= 0:
        raise _Bad(where, f"must be a number > 0; got {_show(v)}")


def _fraction(where: str, v: Any, optional: bool = False) -> None:
    if v is None and optional:
        return
    if not _is_real(v) or not 0 <= _real(where, v) <= 1:
        raise _Bad(where, f"must be {'null or ' if optional else ''}a number in [0, 1]; got {_show(v)}")


def _check_tuning(t: Any) -> None:
    """The ``tuning`` record (``train --tune``): every key known, every value of its type."""
    t = _dict("tuning", t, optional=False)
    if set(t) != _TUNING_KEYS:
        extra, missing = sorted(set(t) - _TUNING_KEYS), sorted(_TUNING_KEYS - set(t))
        raise _Bad("tuning", f"must have exactly the fields {', '.join(sorted(_TUNING_KEYS))}"
                             + (f"; unknown {extra}" if extra else "") + (f"; missing {missing}" if missing else ""))
    if t["metric"] != "validation_accuracy":
        raise _Bad("tuning.metric", f"must be 'validation_accuracy'; got {_show(t['metric'])}")
    if t["retrained_on"] != "train+validation":
        raise _Bad("tuning.retrained_on", f"must be 'train+validation'; got {_show(t['retrained_on'])}")
    _fraction("tuning.validation_fraction", t["validation_fraction"])
    if not isinstance(t["seeds"], list) or not t["seeds"]:
        raise _Bad("tuning.seeds", f"must be a non-empty list of seeds; got {_show(t['seeds'])}")
    for k, s in enumerate(t["seeds"]):
        _int(f"tuning.seeds[{k}]", s, 0, 2 ** 63 - 1)
    grid = _dict("tuning.grid", t["grid"], optional=False)
    if not grid or not set(grid) <= set(TUNING_AXES):
        raise _Bad("tuning.grid", f"must map some of the axes {', '.join(TUNING_AXES)} to lists; got {_show(sorted(grid))}")
    n = 1
    for axis, values in grid.items():
        if not isinstance(values, list) or not values:
            raise _Bad(f"tuning.grid.{axis}", f"must be a non-empty list; got {_show(values)}")
        for k, v in enumerate(values):
            _axis_value(f"tuning.grid.{axis}[{k}]", axis, v)
        n *= len(values)
    table = t["table"]
    if not isinstance(table, list) or len(table) != n or n > MAX_TUNING_ROWS:
        raise _Bad("tuning.table", f"must be a list of one row per grid point ({n}, at most {MAX_TUNING_ROWS}); "
                                   f"got {_show(table) if not isinstance(table, list) else f'{len(table)} rows'}")
    for k, row in enumerate(table):
        where = f"tuning.table[{k}]"
        row = _dict(where, row, optional=False)
        if set(row) != _ROW_KEYS | set(grid):
            raise _Bad(where, f"must have exactly the fields {', '.join(sorted(_ROW_KEYS | set(grid)))}")
        _int(f"{where}.point", row["point"], 0, MAX_TUNING_ROWS)
        _text(f"{where}.id", row["id"], optional=False)
        if row["status"] not in ("ok", "diverged", "failed"):
            raise _Bad(f"{where}.status", f"must be 'ok', 'diverged' or 'failed'; got {_show(row['status'])}")
        for axis in grid:
            _axis_value(f"{where}.{axis}", axis, row[axis])
        for key in ("validation_accuracy", "train_accuracy"):
            _fraction(f"{where}.{key}", row[key], optional=True)
        per_seed = row["validation_accuracy_per_seed"]
        if per_seed is not None:
            if not isinstance(per_seed, list):
                raise _Bad(f"{where}.validation_accuracy_per_seed", f"must be null or a list; got {_show(per_seed)}")
            for j, a in enumerate(per_seed):
                _fraction(f"{where}.validation_accuracy_per_seed[{j}]", a)
        if row["error"] is not None and not isinstance(row["error"], str):
            raise _Bad(f"{where}.error", f"must be null or a string; got {_show(row['error'])}")
        said = row["warnings"]
        if said is not None and (not isinstance(said, list) or not all(isinstance(w, str) for w in said)):
            raise _Bad(f"{where}.warnings", f"must be null or a list of strings; got {_show(said)}")
        if row["seconds"] is not None:
            _real(f"{where}.seconds", row["seconds"])
    choice = _dict("tuning.choice", t["choice"], optional=False)
    if set(choice) != set(grid) | {"point", "validation_accuracy"}:
        raise _Bad("tuning.choice", f"must have exactly the fields {', '.join(sorted(set(grid) | {'point', 'validation_accuracy'}))}")
    _int("tuning.choice.point", choice["point"], 0, n - 1)
    for axis in grid:
        _axis_value(f"tuning.choice.{axis}", axis, choice[axis])
    _fraction("tuning.choice.validation_accuracy", choice["validation_accuracy"])
