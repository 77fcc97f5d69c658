"""A data set resolved once: split into train / validation / test, scaled, made into Tasks.

:func:`load_dataset` is where a task enters (the CLI or an API call): it reads the data (a
built-in set, a user file, or a logic task), splits it (stratified, seeded), fits the feature
scaler on the training split only, and returns a :class:`Dataset` whose ``train``, ``test``
and optional ``validation`` are ordinary :class:`~deepcircuit.data.tasks.Task` objects. Everything
below (training, evaluation, comparison, export) takes those objects and never resolves a
name again. Logic tasks are their own train and test set (the same 4 presentations).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._validation import check_int, check_real
from .builtin import is_builtin, load_builtin
from .raw import RawData
from .files import DATA_SUFFIXES, DataWarning, read_data_file, shown
from ..errors import InvalidInputError, ModelFileError
from .tasks import TASKS, Task, get_task

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True, eq=False)
class Scaler:
    """Min-max scaling of each feature to [0, 1], fitted on the training split.

    ``low``/``high`` are each feature's minimum and maximum over the training rows (in the
    features' own units). Values outside that range (test rows) are clipped into [0, 1],
    since network states are bounded. A feature constant over the training rows maps to 0 on
    every row (test rows too): training never saw it vary, so its input weights learned nothing.
    """

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Scaler":
        from sklearn.preprocessing import MinMaxScaler

        s = MinMaxScaler().fit(x)
        return cls(np.asarray(s.data_min_, dtype=float), np.asarray(s.data_max_, dtype=float))

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.low.shape[0]:
            raise InvalidInputError(
                f"The data have {x.shape[-1] if x.ndim else 0} features but the scaler was fitted on "
                f"{self.low.shape[0]}.")
        out = np.empty((x.shape[0], x.shape[1] + 1))
        self.transform_into(x, out)
        return out[:, :-1]

    def transform_into(self, x: np.ndarray, out: np.ndarray) -> None:
        """Write the scaled ``x (n, f)`` into ``out[:, :f]`` in place (no temporary of x's size)."""
        span = self.high - self.low
        f = x.shape[1]
        np.subtract(x, self.low, out=out[:, :f])
        np.divide(out[:, :f], np.where(span > 0, span, 1.0), out=out[:, :f])
        np.clip(out[:, :f], 0.0, 1.0, out=out[:, :f])
        out[:, self.constant] = 0.0

    @property
    def constant(self) -> np.ndarray:
        """Indices of the features constant over the training rows (scaled to 0)."""
        return np.flatnonzero(self.high - self.low <= 0)

    def to_dict(self) -> dict:
        return {"kind": "minmax", "low": self.low.tolist(), "high": self.high.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Scaler":
        try:
            if d.get("kind") != "minmax":
                raise ValueError(f"unknown scaler kind {d.get('kind')!r}")
            low = np.asarray(d["low"], dtype=float)
            high = np.asarray(d["high"], dtype=float)
            if low.ndim != 1 or low.shape != high.shape or not (np.isfinite(low).all() and np.isfinite(high).all()):
                raise ValueError("low/high must be finite lists of equal length")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(f"The model file's data set scaler is damaged: {exc}.") from None
        return cls(low, high)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A task resolved once: its splits as Tasks, the scaler, and where it came from.

    Attributes
    ----------
    name : str
        ``digits``, ``xor``, ... or the stem of a user file.
    source : str
        ``"logic"`` (a logic task), ``"builtin"`` or ``"file"``.
    train, test : Task
        The training and test presentations (scaled inputs with the bias column last). For a
        logic task or a parity table both are the whole table (the same object).
    validation : Task or None
        Held out of the training split for early stopping (``validation_fraction > 0``).
    scaler : Scaler or None
        Fitted on the training rows (None for logic tasks, whose inputs are already bits).
    split_seed, test_fraction, validation_fraction
        How the split was drawn (stratified), so it can be drawn again.
    class_names, feature_names : tuple of str
        For reports only (never used as identifiers).
    files : dict
        For user data: ``{"data": path, "test": path or None, "target": column or None}``.
    categories : tuple
        Text columns of a data file that were one-hot encoded: ``((column, (level, ...)), ...)``.
    """

    name: str
    source: str
    train: Task
    test: Task
    validation: Task | None = None
    scaler: Scaler | None = None
    split_seed: int = 0
    test_fraction: float = 0.2
    validation_fraction: float = 0.0
    class_names: tuple = ()
    feature_names: tuple = ()
    files: Mapping[str, Any] | None = None
    categories: tuple = ()

    @property
    def readout(self) -> str:
        return self.train.readout

    @property
    def splits(self) -> dict[str, Task]:
        """The splits present, by name (``train``, ``validation``, ``test``)."""
        out = {"train": self.train}
        if self.validation is not None:
            out["validation"] = self.validation
        out["test"] = self.test
        return out

    @property
    def test_is_train(self) -> bool:
        """Whether the test set is the training set (logic tasks, parity tables)."""
        return self.test is self.train

    def class_labels(self, predicted: np.ndarray) -> np.ndarray:
        """Class names of predicted class indices (argmax readout), e.g. ``dc.predict(...)``'s:
        the names a data file's label column had (``"setosa"``, ...), as a str array."""
        names = np.asarray(self.class_names if self.class_names else
                           [str(k) for k in range(self.train.n_outputs)], dtype=str)
        if self.readout == "threshold":
            predicted = np.asarray(predicted)[..., 0]
        return names[np.asarray(predicted, dtype=int)]

    def inputs_of(self, x: np.ndarray) -> np.ndarray:
        """Raw feature rows ``x (n, n_features)`` as network inputs: scaled, bias column appended."""
        return _inputs(np.asarray(x, dtype=float), self.scaler)

    def describe(self) -> str:
        """One line: name and split sizes, e.g. ``digits: 1437 train / 360 test (split seed 0)``."""
        if self.test_is_train:
            return f"{self.name}: {self.train.n_presentations} presentations (train = test, the whole table)"
        parts = [f"{t.n_presentations} {k}" for k, t in self.splits.items()]
        return f"{self.name}: {' / '.join(parts)} (split seed {self.split_seed})"

    def to_dict(self) -> dict:
        """What the model file stores (see docs/model-file.md); rebuilt by :meth:`from_dict`."""
        return {
            "name": self.name, "source": self.source, "readout": self.readout,
            "split_seed": self.split_seed, "test_fraction": self.test_fraction,
            "validation_fraction": self.validation_fraction,
            "classes": list(self.class_names), "n_features": self.train.n_inputs - 1,
            "sizes": {k: t.n_presentations for k, t in self.splits.items()},
            "scaler": self.scaler.to_dict() if self.scaler is not None else None,
            "files": dict(self.files) if self.files else None,
            **({"categories": [[c, list(v)] for c, v in self.categories]} if self.categories else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, data: "str | Path | None" = None,
                  test: "str | Path | None" = None) -> "Dataset":
        """The data set a model was trained on, split again the same way, with the stored scaler.

        A user file is not stored in the model: pass ``data`` (and ``test`` if it had one).
        """
        check_dataset_dict(d)
        source, name = d["source"], d["name"]
        if source == "logic":
            return load_dataset(name)
        files = d.get("files") or {}
        if source == "file":
            if data is None:
                raise InvalidInputError(
                    f"This model was trained on the data file {shown(files.get('data', name))}; give it "
                    "again with --data FILE (the model stores only its scaler, not its data).")
        elif source != "builtin":
            raise ModelFileError(f"The model file's data set has an unknown source {source!r}.")
        ds = load_dataset(data if source == "file" else name, target=files.get("target"), test=test,
                          test_fraction=d.get("test_fraction", 0.2),
                          validation_fraction=d.get("validation_fraction", 0.0),
                          split_seed=d.get("split_seed", 0), readout=d.get("readout"),
                          scaler=Scaler.from_dict(d["scaler"]) if d.get("scaler") else None,
                          class_names=tuple(d["classes"]) if d.get("classes") else None,
                          categories=tuple((c, tuple(v)) for c, v in d.get("categories") or ()) if source == "file" else None)
        return ds


def check_dataset_dict(d: Any) -> None:
    """Check the types of a model file's ``dataset`` field; raise :class:`ModelFileError` naming
    the first bad entry. (The values are checked again when the data set is rebuilt.)"""
    def bad(key, want, got):
        raise ModelFileError(f"The model file's dataset.{key} must be {want}; got {str(got)[:40]!r}.")

    if not isinstance(d, Mapping):
        raise ModelFileError("The model file's 'dataset' field must be an object.")
    for key in ("name", "source"):
        if not isinstance(d.get(key), str) or not d[key] or len(d[key]) > 200 or not d[key].isprintable():
            bad(key, "a printable string of 1 to 200 characters", d.get(key))
    if d["source"] not in ("logic", "builtin", "file"):
        bad("source", "'logic', 'builtin' or 'file'", d["source"])
    if d.get("readout") is not None and d["readout"] not in ("argmax", "threshold"):
        bad("readout", "'argmax' or 'threshold'", d["readout"])
    if "split_seed" in d and (type(d["split_seed"]) is not int or not 0 <= d["split_seed"] < 2**63):
        bad("split_seed", "an integer >= 0", d["split_seed"])
    for key in ("test_fraction", "validation_fraction"):
        if key in d and (type(d[key]) not in (int, float) or not 0 <= d[key] < 1):
            bad(key, "a number in [0, 1)", d[key])
    classes = d.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)
                                or len(set(classes)) != len(classes)):
        bad("classes", "a list of distinct strings", classes)
    files = d.get("files")
    if files is not None:
        if not isinstance(files, Mapping):
            bad("files", "an object or null", files)
        for key in ("data", "test", "target"):
            if files.get(key) is not None and not isinstance(files[key], str):
                bad(f"files.{key}", "a string or null", files[key])
    cats = d.get("categories")
    if cats is not None and not (isinstance(cats, list) and all(
            isinstance(p, list) and len(p) == 2 and _printable(p[0]) and isinstance(p[1], list)
            and all(_printable(v) for v in p[1]) and len(set(p[1])) == len(p[1]) for p in cats)):
        bad("categories", "a list of [column, [distinct levels]] of printable strings", cats)
    if d.get("scaler") is not None:
        Scaler.from_dict(d["scaler"]) if isinstance(d["scaler"], Mapping) else bad("scaler", "an object", d["scaler"])


def _printable(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= 200 and v.isprintable()


def _inputs(x: np.ndarray, scaler: "Scaler | None") -> np.ndarray:
    """Network inputs of raw rows: scaled (if a scaler is given) with the bias column appended,
    built in one array (a 70 000 x 784 split makes no temporary copies)."""
    out = np.empty((x.shape[0], x.shape[1] + 1))
    out[:, -1] = 1.0
    if scaler is not None:
        if x.ndim != 2 or x.shape[1] != scaler.low.shape[0]:
            raise InvalidInputError(
                f"The data have {x.shape[-1] if x.ndim else 0} features but the scaler was fitted on "
                f"{scaler.low.shape[0]}.")
        scaler.transform_into(x, out)
    else:
        out[:, :-1] = x
    return out


def _task(name: str, split: str, inputs: np.ndarray, y: np.ndarray, n_classes: int, readout: str) -> Task:
    if readout == "threshold":
        targets = y[:, None].astype(float)
    else:
        targets = np.eye(n_classes)[y]
    return Task(name, inputs, targets, readout, split=split)


def _stratified(y: np.ndarray, fraction: float, seed: int, what: str, name: str):
    """Indices ``(kept, held_out)`` of a stratified split holding out ``fraction`` of the rows."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        kept, held = train_test_split(idx, test_size=fraction, random_state=seed, stratify=y)
    except ValueError as exc:
        raise InvalidInputError(
            f"{name}: cannot hold out a stratified {what} fraction of {fraction:g} from {len(y)} rows "
            f"({exc}); give a larger file or another fraction.") from None
    return np.sort(kept), np.sort(held)


def load_dataset(source: "str | Path | Task | Dataset", *, target: str | None = None,
                 test: "str | Path | None" = None, test_fraction: float = 0.2,
                 validation_fraction: float = 0.0, split_seed: int = 0, readout: str | None = None,
                 scaler: Scaler | None = None, class_names: tuple | None = None,
                 categories: tuple | None = None) -> Dataset:
    """Resolve a task once: read, split (stratified, seeded), scale, and build the split Tasks.

    Parameters
    ----------
    source : str, Path, Task or Dataset
        A logic task (``xor``, ``and-onehot``, ...), a built-in data set (``digits``, ``iris``,
        ``moons``, ``parity-N``), or a user file ``*.csv`` / ``*.npz``. A Dataset is returned as is.
    target : str, optional
        CSV label column (default: the last column).
    test : str or Path, optional
        A separate test file (same columns); then ``test_fraction`` is not used.
    test_fraction, validation_fraction : float
        Fractions of the rows held out for testing, and of the remaining rows for validation.
    split_seed : int
        Seed of the stratified split.
    readout : {"argmax", "threshold"}, optional
        ``threshold`` (one output) is allowed for two classes; default: ``argmax`` (one output
        per class), ``threshold`` for parity.
    scaler : Scaler, optional
        Use this scaler (from a model file) instead of fitting one on the training split.
    class_names : tuple, optional
        The classes a model was trained with (from a model file); the labels must be among them.
    categories : tuple, optional
        The one-hot encoding of a model's data file (from its model file), applied again.

    Warns (:class:`~deepcircuit.data.files.DataWarning`, one line) when a data file's text columns
    were one-hot encoded or some of its features are constant over the training rows (kept,
    scaled to 0).
    """
    if isinstance(source, Dataset):
        return source
    if isinstance(source, Task):
        return Dataset(source.name, "logic", source, source)
    if isinstance(source, str) and source.lower() in TASKS:
        task = get_task(source)
        return Dataset(task.name, "logic", task, task)
    split_seed = check_int("split_seed", split_seed, low=0)
    test_fraction = check_real("test_fraction", test_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    validation_fraction = check_real("validation_fraction", validation_fraction, low=0.0, high=1.0, high_open=True)
    if is_builtin(source):
        if target is not None or test is not None:
            raise InvalidInputError("--target and --test apply to data files (--data FILE), not to built-in data sets.")
        raw, where, files = load_builtin(str(source)), "builtin", None
    elif isinstance(source, Path) or (isinstance(source, str) and Path(source).suffix.lower() in DATA_SUFFIXES):
        raw, where = read_data_file(source, target=target, categories=categories), "file"
        files = {"data": str(source), "test": str(test) if test is not None else None, "target": target}
    else:
        raise InvalidInputError(
            f"Unknown task {source!r}; use a logic task ({', '.join(TASKS)}), a built-in data set "
            "(digits, iris, moons, parity-2 .. parity-8) or a data file FILE.csv / FILE.npz.")
    readout = readout or raw.readout
    if readout not in ("argmax", "threshold"):
        raise InvalidInputError(f"readout must be 'argmax' or 'threshold'; got {readout!r}.")
    classes = raw.class_names
    y = raw.y
    if class_names is not None:
        y = _relabel(raw, raw.y, tuple(class_names))
        classes = tuple(class_names)
    if readout == "threshold" and len(classes) != 2:
        raise InvalidInputError(
            f"A single thresholded output needs two classes; {raw.name} has {len(classes)}. Use readout 'argmax'.")

    n = len(y)
    if raw.whole_table:
        tr_idx, te_idx = np.arange(n), None
    elif test is not None:
        tr_idx, te_idx = np.arange(n), None
    else:
        tr_idx, te_idx = _stratified(y, test_fraction, split_seed, "test", raw.name)
    va_idx = None
    if validation_fraction > 0 and raw.whole_table:
        raise InvalidInputError(
            f"{raw.name} is a whole truth table (its own test set); it has no rows to hold out for validation.")
    if validation_fraction > 0:
        kept, held = _stratified(y[tr_idx], validation_fraction, split_seed + 1, "validation", raw.name)
        tr_idx, va_idx = tr_idx[kept], tr_idx[held]
    if scaler is None and not raw.whole_table:
        scaler = Scaler.fit(raw.x[tr_idx])
        if where == "file" and scaler.constant.size:
            const = scaler.constant
            warnings.warn(DataWarning(
                f"{raw.name}: {const.size} of {raw.x.shape[1]} feature columns are constant over the training rows "
                f"(e.g. {shown(raw.feature_names[const[0]], 20)}); kept and scaled to 0, they carry no information."),
                stacklevel=2)
    if scaler is not None and scaler.low.shape[0] != raw.x.shape[1]:
        raise InvalidInputError(
            f"{raw.name} has {raw.x.shape[1]} features but the model was trained on {scaler.low.shape[0]}.")

    def inputs(x):
        return _inputs(x, scaler)

    k = len(classes)
    train = _task(raw.name, "train", inputs(raw.x[tr_idx]), y[tr_idx], k, readout)
    validation = (_task(raw.name, "validation", inputs(raw.x[va_idx]), y[va_idx], k, readout)
                  if va_idx is not None else None)
    if raw.whole_table:
        test_task = train
    elif test is not None:
        traw = read_data_file(test, target=target, categories=raw.categories)
        if traw.x.shape[1] != raw.x.shape[1]:
            raise InvalidInputError(
                f"Test file {shown(test)} has {traw.x.shape[1]} features; the training file has {raw.x.shape[1]}.")
        test_task = _task(raw.name, "test", inputs(traw.x), _relabel(traw, traw.y, classes), k, readout)
    else:
        test_task = _task(raw.name, "test", inputs(raw.x[te_idx]), y[te_idx], k, readout)
    return Dataset(raw.name, where, train, test_task, validation, scaler, split_seed,
                   test_fraction, validation_fraction, classes, raw.feature_names, files, raw.categories)


def _relabel(raw: RawData, y: np.ndarray, classes: tuple) -> np.ndarray:
    """Map ``raw``'s labels (indices into its own class names) onto ``classes``."""
    index = {c: k for k, c in enumerate(classes)}
    out = np.empty_like(y)
    for k, name in enumerate(raw.class_names):
        if name not in index:
            row = int(np.flatnonzero(y == k)[0])
            raise InvalidInputError(
                f"{raw.name}: row {row + 1} has the label {shown(name, 20)}, which is not one of the "
                f"classes the model knows ({', '.join(shown(c, 12) for c in classes[:10])}).")
        out[y == k] = index[name]
    return out


def dataset_for_model(model, *, task: str | None = None, data: "str | Path | None" = None,
                      test: "str | Path | None" = None) -> Dataset:
    """The data set to run a saved model on, split and scaled as when it was trained.

    ``model`` is a :class:`~deepcircuit.learning.model_file.ModelFile`. With neither ``task`` nor
    ``data``, its own data set (a built-in set is split again with the stored seed and scaled
    with the stored scaler; a user file must be given again as ``data``) or its logic task.
    """
    stored = model.dataset if isinstance(model.dataset, Mapping) else None
    if data is not None and task is not None:
        raise InvalidInputError("Give either --task NAME or --data FILE, not both.")
    if data is not None:
        if stored is None or stored.get("source") != "file":
            what = stored.get("name") if stored else model.task
            raise InvalidInputError(
                f"This model was trained on {shown(what)}, not on a data file; use --task instead of --data.")
        files = stored.get("files") or {}
        if test is None and files.get("test"):
            raise InvalidInputError("This model was trained with a separate test file; give it again with --test FILE.")
        return Dataset.from_dict(stored, data=data, test=test)
    if task is not None:
        if stored is not None and str(task).lower() == str(stored.get("name", "")).lower():
            return Dataset.from_dict(stored)
        return load_dataset(task)
    if stored is not None:
        return Dataset.from_dict(stored)
    if not model.task:
        where = f"{model.path!r}" if model.path else "This model file"
        raise ModelFileError(f"{where} does not say which task it was trained on; give --task.")
    return load_dataset(model.task)
