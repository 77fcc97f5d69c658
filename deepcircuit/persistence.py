"""Model files: one trained network per file, JSON, versioned, written atomically.

The format is documented in ``docs/model-file.md``. Floats are written with Python's shortest
round-trip repr, so weights load back bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DeepCircuitError, ModelFileError
from .network import Network
from .roles import Roles

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
    #: :meth:`deepcircuit.data_split.Dataset.to_dict`. None for logic tasks and older files.
    dataset: dict | None = None

    def task_for(self, name: str | None = None):
        """The :class:`~deepcircuit.tasks.Task` to run: ``name``, else the one the model was trained on.

        Fails with a clear message when neither is known or the task does not fit the network.
        """
        from .tasks import TASKS, get_task
        from .training import check_task_fits

        if not (name or self.task):
            where = f"{self.path!r}" if self.path else "This model file"
            raise ModelFileError(f"{where} does not say which task it was trained on; give --task.")
        if self.dataset or (name and name.lower() not in TASKS):
            from .data_split import dataset_for_model

            task = dataset_for_model(self, task=name).test
        else:
            task = get_task(name or self.task)
        check_task_fits(task, self.network.roles)
        return task

    def training_config(self):
        """The stored settings as a :class:`~deepcircuit.training.TrainingConfig`."""
        from .training import TrainingConfig

        return TrainingConfig.from_dict(self.config) if self.config else TrainingConfig()


@contextmanager
def atomic_output(path: "str | Path", *, suffix: str = ".tmp"):
    """Yield a temporary path beside ``path``; when the block ends without error, the file
    written there is fsynced and renamed over ``path``, otherwise it is removed. A crash never
    leaves a half-written file, and an existing ``path`` survives a failed write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; saved results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_atomic(path: "str | Path", text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_output`); returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


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
    from . import __version__

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
    }, default=_json_default, allow_nan=True)))


def save_model(path: "str | Path", model: "ModelFile | Network") -> Path:
    """Save a model (or a bare network) to ``path`` atomically; returns the path."""
    if isinstance(model, Network):
        model = ModelFile(model)
    text = json.dumps(model_to_dict(model), indent=1, allow_nan=False)
    return write_atomic(path, text + "\n")


def load_model(path: "str | Path") -> ModelFile:
    """Load a model file; a missing, corrupt, foreign or newer file raises :class:`ModelFileError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelFileError(f"Model file {str(path)!r} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"Cannot read model file {str(path)!r}: {exc}") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(
            f"{str(path)!r} is not a deepcircuit model file: it is not valid JSON "
            f"({exc.msg} at line {exc.lineno}); the file may be truncated or corrupt.") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ModelFileError(
            f"{str(path)!r} is not a deepcircuit model file (no \"format\": \"{FORMAT}\" field).")
    version = d.get("version")
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise ModelFileError(
            f"{str(path)!r} has model-file version {version!r}; this deepcircuit reads version "
            f"{VERSION}. Upgrade deepcircuit to read newer files.")
    try:
        n = d["network"]
        net = Network(Roles.from_dict(n["roles"]), np.array(n["weights"], dtype=float),
                      np.array(n["topology_mask"], dtype=bool), np.array(n["mask"], dtype=bool),
                      n["family"], n.get("params", {}), np.array(n["bias"], dtype=float),
                      n.get("topology", "custom"))
    except (KeyError, TypeError, ValueError, DeepCircuitError) as exc:
        raise ModelFileError(f"{str(path)!r} is a damaged deepcircuit model file: {exc}") from None
    return ModelFile(net, d.get("seed"), d.get("task"), d.get("substrate"), d.get("config") or {},
                     d.get("history") or {}, d.get("metrics") or {}, str(path),
                     d.get("dataset") if isinstance(d.get("dataset"), dict) else None)
