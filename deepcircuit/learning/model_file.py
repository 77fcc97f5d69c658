"""Model files: one trained network per file, JSON, versioned, written atomically.

The format is documented in ``docs/model-file.md``. Floats are written with Python's shortest
round-trip repr, so weights load back bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeepCircuitError, InvalidInputError, ModelFileError, OutputWriteError
from ..model.network import Network
from ..model.roles import Roles
# The atomic-write helpers moved to the bottom layer (substrates use them too); they are
# re-exported here so that imports written before the move keep working.
from ..atomic_files import (  # noqa: F401
    TMP_MARKER, STALE_TMP_SECONDS, _TMP_RE, _pid_alive, remove_stale_temporaries, atomic_output, _write_error, write_atomic)

FORMAT = "deepcircuit-model"
VERSION = 1


@dataclass
class ModelFile:
    """The contents of a model file: the network and how it was trained."""

    network: Network
    seed: int | None = None
    task: str | None = None
    substrate: str | None = None
    config: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    #: Where it was loaded from (for messages); not stored in the file.
    path: str | None = None
    #: The data set it was trained on (name, source, split seed and fractions, classes, scaler):
    #: :meth:`deepcircuit.data.split.Dataset.to_dict`. None for logic tasks and older files.
    dataset: dict | None = None
    #: How the settings were chosen by ``train --tune`` / :func:`deepcircuit.tune`: the grid, its
    #: table of validation accuracies and the choice (docs/model-file.md). None otherwise.
    tuning: dict | None = None
    #: The chip the networks were trained on, when it was not ideal: the substrate's
    #: :meth:`~deepcircuit.substrates.chip.Chip.describe` (mismatch, seed, transconductor, ...).
    #: A record for people; nothing is built from it. None otherwise.
    chip: dict | None = None

    def task_for(self, name: str | None = None):
        """The :class:`~deepcircuit.data.tasks.Task` to run: ``name``, else the one the model was trained on.

        Fails with a clear message when neither is known or the task does not fit the network.
        """
        from ..data.tasks import TASKS, get_task
        from .evaluation import check_task_fits

        if not (name or self.task):
            where = f"{self.path!r}" if self.path else "This model file"
            raise ModelFileError(f"{where} does not say which task it was trained on; give --task.")
        if self.dataset or (name and name.lower() not in TASKS):
            from ..data.split import dataset_for_model

            task = dataset_for_model(self, task=name).test
        else:
            task = get_task(name or self.task)
        check_task_fits(task, self.network.roles)
        return task

    def training_config(self):
        """The stored settings as a :class:`~deepcircuit.learning.config.TrainingConfig`."""
        from .config import TrainingConfig

        return TrainingConfig.from_dict(self.config) if self.config else TrainingConfig()


def _json_default(o: Any):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    raise TypeError(f"cannot store {type(o).__name__} in a model file")


def _finite(o: Any) -> Any:
    # JSON has no NaN/inf; store them as strings so the file stays standard JSON.
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def model_to_dict(model: ModelFile) -> dict:
    """The JSON-ready dictionary of a model file."""
    from .. import __version__

    net = model.network
    return _finite(json.loads(json.dumps({
        "format": FORMAT,
        "version": VERSION,
        "deepcircuit_version": __version__,
        "network": {
            "roles": net.roles.to_dict(),
            "family": net.family,
            "params": dict(net.params),
            "topology": net.topology,
            "weights": net.weights,
            "bias": net.bias,
            "topology_mask": net.topology_mask.astype(int),
            "mask": net.mask.astype(int),
        },
        "seed": model.seed,
        "task": model.task,
        "substrate": model.substrate,
        "config": model.config,
        "history": model.history,
        "metrics": model.metrics,
        **({"dataset": model.dataset} if model.dataset else {}),
        **({"tuning": model.tuning} if model.tuning else {}),
        **({"chip": model.chip} if model.chip else {}),
    }, default=_json_default, allow_nan=True)))


def save_model(path: "str | Path", model: "ModelFile | Network") -> Path:
    """Save a model (or a bare network) to ``path`` atomically; returns the path."""
    if isinstance(model, Network):
        model = ModelFile(model)
    text = json.dumps(model_to_dict(model), indent=1, allow_nan=False)
    return write_atomic(path, text + "\n")


class _TooManyDigits(ValueError):
    pass


def _parse_int(text: str) -> int:
    # Called by the JSON parser for every integer literal, before Python converts it: a 10**400 or
    # a 5000-digit literal is refused here instead of overflowing later.
    from ..limits import MAX_INT_DIGITS

    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _TooManyDigits(f"an integer with {len(text.lstrip('-'))} digits (limit MAX_INT_DIGITS = "
                             f"{MAX_INT_DIGITS}, deepcircuit.limits)")
    return int(text)


#: Text of JSON strings, to skip them when measuring nesting depth.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def json_depth(text: str) -> int:
    """Deepest nesting of arrays and objects in JSON ``text`` (0 for a scalar), without parsing
    it: the parser recurses once per level, so a 200 000-deep file would exhaust the stack."""
    b = np.frombuffer(_JSON_STRING.sub('""', text).encode("utf-8", "replace"), dtype=np.uint8)
    step = (np.isin(b, (ord("["), ord("{"))).astype(np.int64) - np.isin(b, (ord("]"), ord("}"))))
    return int(np.cumsum(step).max(initial=0))


def read_model_text(path: "str | Path") -> str:
    """The text of a model file, after checking it is a regular file within the size limit."""
    from ..limits import MAX_MODEL_FILE_BYTES

    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelFileError(f"Model file {str(path)!r} does not exist.") from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"Cannot read model file {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(f"Model file {str(path)!r} is not a regular file (a folder, device or pipe).")
    if st.st_size > MAX_MODEL_FILE_BYTES:
        raise ModelFileError(
            f"Model file {str(path)!r} is {st.st_size} bytes, above the limit MAX_MODEL_FILE_BYTES = "
            f"{MAX_MODEL_FILE_BYTES} (deepcircuit.limits).")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_MODEL_FILE_BYTES + 1)  # the file may grow after stat()
        if len(data) > MAX_MODEL_FILE_BYTES:
            raise ModelFileError(f"Model file {str(path)!r} is above the limit MAX_MODEL_FILE_BYTES = "
                                 f"{MAX_MODEL_FILE_BYTES} (deepcircuit.limits).")
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"Cannot read model file {str(path)!r}: byte {exc.start} is not UTF-8 text "
                             "(a model file is JSON text).") from None
    except OSError as exc:
        raise ModelFileError(f"Cannot read model file {str(path)!r}: {exc.strerror or exc}") from None


def parse_model_text(text: str, where: str = "the model file") -> dict:
    """Parse model-file JSON with the nesting and integer-size limits; returns the raw dict."""
    from ..limits import MAX_JSON_DEPTH

    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ModelFileError(f"{where} nests arrays/objects {depth} deep, above the limit MAX_JSON_DEPTH = "
                             f"{MAX_JSON_DEPTH} (deepcircuit.limits); it is not a deepcircuit model file.")
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise ModelFileError(
            f"{where} is not a deepcircuit model file: it is not valid JSON "
            f"({exc.msg} at line {exc.lineno}); the file may be truncated or corrupt.") from None
    except (_TooManyDigits, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{where} is not a usable deepcircuit model file: {exc}.") from None


def load_model(path: "str | Path") -> ModelFile:
    """Load a model file; a missing, corrupt, foreign, newer or malformed file raises
    :class:`ModelFileError` naming the offending field (``network.weights[3][2]: ...``).

    Nothing in the file is trusted: its size, nesting depth and integers are bounded
    (:mod:`deepcircuit.limits`), every field is checked against the schema of
    ``docs/model-file.md`` (:func:`deepcircuit.learning.model_schema.validate_model_dict`), and the network
    is then rebuilt, which re-checks its consistency.
    """
    from .model_schema import validate_model_dict

    path = Path(path)
    where = repr(str(path))
    d = parse_model_text(read_model_text(path), where)
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ModelFileError(
            f"{where} is not a deepcircuit model file (no \"format\": \"{FORMAT}\" field).")
    version = d.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > VERSION or version < 1:
        raise ModelFileError(
            f"{where} has model-file version {version!r}; this deepcircuit reads version "
            f"{VERSION}. Upgrade deepcircuit to read newer files.")
    validate_model_dict(d, where)
    try:
        n = d["network"]
        net = Network(Roles.from_dict(n["roles"]), np.array(n["weights"], dtype=float),
                      np.array(n["topology_mask"], dtype=bool), np.array(n["mask"], dtype=bool),
                      n["family"], n.get("params", {}), np.array(n["bias"], dtype=float),
                      n.get("topology", "custom"))
    except (KeyError, TypeError, ValueError, OverflowError, DeepCircuitError) as exc:
        raise ModelFileError(f"{where} is a damaged deepcircuit model file: {exc}") from None
    return ModelFile(net, d.get("seed"), d.get("task"), d.get("substrate"), d.get("config") or {},
                     d.get("history") or {}, d.get("metrics") or {}, str(path),
                     d.get("dataset") if isinstance(d.get("dataset"), dict) else None, d.get("tuning"),
                     d.get("chip") or None)
