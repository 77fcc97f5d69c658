"""User data files: ``FILE.csv`` (header row, one label column) and ``FILE.npz`` (arrays x, y).

Nothing in a data file is executed or trusted: CSV cells are parsed as numbers (features) or
kept as opaque label text, ``.npz`` files are opened with ``allow_pickle=False``, and names
from the file are only shown in messages (quoted and shortened), never used as identifiers in
a netlist (neurons are always called ``x0.., bias, h0.., y0..``). Every problem is reported in
one line naming the row and the column. The limits below keep a mistaken file from
exhausting the machine.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from pathlib import Path

import numpy as np

from .builtin import RawData
from ..errors import InvalidInputError

#: Largest data file read, in bytes (for .npz: also the uncompressed size of each array).
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Most samples (rows), features (columns besides the label) and classes accepted.
MAX_ROWS = 200_000
MAX_FEATURES = 4096
MAX_CLASSES = 100
DATA_SUFFIXES = (".csv", ".npz")


def shown(text: object, limit: int = 40) -> str:
    """A name from a user's file as it may appear in a message: repr-quoted and shortened."""
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def read_data_file(path: "str | Path", *, target: "str | None" = None) -> RawData:
    """Read and validate a user data file; returns features and integer labels.

    Parameters
    ----------
    path : str or Path
        ``.csv`` (UTF-8, a header row, one sample per row) or ``.npz`` (arrays ``x`` of shape
        ``(n_samples, n_features)`` and ``y`` of shape ``(n_samples,)``).
    target : str, optional
        CSV only: the name of the label column (default: the last column).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise InvalidInputError(
            f"Data file {str(path)!r} must end in .csv or .npz; got {suffix or 'no suffix'!r}.")
    if not path.is_file():
        raise InvalidInputError(f"Data file {str(path)!r} does not exist.")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InvalidInputError(
            f"Data file {str(path)!r} is {size / 2**20:.1f} MiB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MiB.")
    if size == 0:
        raise InvalidInputError(f"Data file {str(path)!r} is empty.")
    if suffix == ".csv":
        x, labels, names = _read_csv(path, target)
    else:
        if target is not None:
            raise InvalidInputError("--target applies to CSV files; a .npz file has its labels in array 'y'.")
        x, labels, names = _read_npz(path)
    return _validated(path, x, labels, names)


def _read_csv(path: Path, target: "str | None"):
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise InvalidInputError(f"{path.name}: line {line} is not UTF-8 text (byte {exc.start}).") from None
    rows = list(csv.reader(io.StringIO(text)))
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()
    if not rows:
        raise InvalidInputError(f"{path.name}: the file has no header row.")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise InvalidInputError(f"{path.name}: the file has a header but no data rows.")
    if len(body) > MAX_ROWS:
        raise InvalidInputError(f"{path.name}: {len(body)} data rows; the limit is {MAX_ROWS}.")
    if len(header) < 2:
        raise InvalidInputError(
            f"{path.name}: the header has {len(header)} column; a data file needs at least one "
            "feature column and a label column, separated by commas.")
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise InvalidInputError(f"{path.name}: column name {shown(dup)} appears twice in the header.")
    if target is None:
        t = len(header) - 1
    elif target in header:
        t = header.index(target)
    else:
        raise InvalidInputError(
            f"{path.name}: there is no label column {shown(target)}; columns are "
            f"{', '.join(shown(h, 20) for h in header[:12])}{' ...' if len(header) > 12 else ''}.")
    if len(header) - 1 > MAX_FEATURES:
        raise InvalidInputError(f"{path.name}: {len(header) - 1} feature columns; the limit is {MAX_FEATURES}.")
    feats = [k for k in range(len(header)) if k != t]
    x = np.empty((len(body), len(feats)))
    labels = []
    for r, row in enumerate(body):
        line = r + 2
        if len(row) != len(header):
            raise InvalidInputError(
                f"{path.name}: line {line} has {len(row)} cells but the header has {len(header)} columns.")
        label = row[t].strip()
        if not label:
            raise InvalidInputError(f"{path.name}: line {line}, column {shown(header[t])}: missing label.")
        labels.append(label)
        for c, k in enumerate(feats):
            cell = row[k].strip()
            where = f"{path.name}: line {line}, column {shown(header[k])}"
            if not cell:
                raise InvalidInputError(f"{where}: missing value.")
            try:
                v = float(cell)
            except ValueError:
                raise InvalidInputError(f"{where}: {shown(cell, 20)} is not a number.") from None
            if not math.isfinite(v):
                raise InvalidInputError(f"{where}: {shown(cell, 20)} is not a finite number.")
            x[r, c] = v
    return x, np.array(labels), tuple(header[k] for k in feats)


def _read_npz(path: Path):
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.file_size > MAX_FILE_BYTES:
                    raise InvalidInputError(
                        f"{path.name}: array {shown(info.filename)} is {info.file_size / 2**20:.1f} MiB "
                        f"uncompressed; the limit is {MAX_FILE_BYTES / 2**20:.0f} MiB.")
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("x", "y") if k not in npz.files]
            if missing:
                raise InvalidInputError(
                    f"{path.name}: needs arrays 'x' (samples x features) and 'y' (labels); "
                    f"missing {', '.join(map(repr, missing))} (has {', '.join(map(shown, npz.files[:8])) or 'none'}).")
            x, y = npz["x"], npz["y"]
    except InvalidInputError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        # allow_pickle=False refuses object arrays with a ValueError: never unpickle a user file.
        raise InvalidInputError(f"{path.name}: not a readable .npz of plain numeric arrays ({exc}).") from None
    if x.ndim != 2:
        raise InvalidInputError(f"{path.name}: array 'x' must be 2-D (samples x features); got shape {x.shape}.")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise InvalidInputError(
            f"{path.name}: array 'y' must be 1-D with one label per row of x ({x.shape[0]}); got shape {y.shape}.")
    if x.shape[0] == 0:
        raise InvalidInputError(f"{path.name}: array 'x' has no rows.")
    if x.shape[0] > MAX_ROWS or x.shape[1] > MAX_FEATURES:
        raise InvalidInputError(
            f"{path.name}: x has shape {x.shape}; the limits are {MAX_ROWS} rows and {MAX_FEATURES} features.")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
        raise InvalidInputError(f"{path.name}: array 'x' must hold real numbers; got dtype {x.dtype}.")
    x = x.astype(float)
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        r, c = bad[0]
        raise InvalidInputError(f"{path.name}: x[row {r}, column {c}] is {x[r, c]}, not a finite number.")
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise InvalidInputError(f"{path.name}: y[row {bad[0]}] is {y[bad[0]]}, not a valid label.")
    if y.dtype.kind not in "biufUS":
        raise InvalidInputError(f"{path.name}: array 'y' must hold numbers or text labels; got dtype {y.dtype}.")
    return x, y, tuple(f"x{k}" for k in range(x.shape[1]))


def _numeric_labels(labels: np.ndarray) -> np.ndarray:
    """Text labels that are all numbers become numbers, so that "1" and "1.0" are one class."""
    if labels.dtype.kind not in "US":
        return labels
    try:
        values = labels.astype(float)
    except ValueError:
        return labels
    return values if np.isfinite(values).all() else labels


def _class_name(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _validated(path: Path, x: np.ndarray, labels: np.ndarray, names: tuple) -> RawData:
    classes, y = np.unique(_numeric_labels(labels), return_inverse=True)
    if len(classes) < 2:
        raise InvalidInputError(
            f"{path.name}: every row has the label {shown(classes[0], 20)}; a classification task needs "
            "at least two classes.")
    if len(classes) > MAX_CLASSES:
        raise InvalidInputError(f"{path.name}: {len(classes)} classes; the limit is {MAX_CLASSES}.")
    const = np.flatnonzero(np.ptp(x, axis=0) == 0)
    if const.size and x.shape[0] > 1:
        c = int(const[0])
        raise InvalidInputError(
            f"{path.name}: column {shown(names[c])} is constant (every row is {x[0, c]:g}); it carries no "
            "information and cannot be scaled to [0, 1]: remove it.")
    return RawData(path.stem, x, y.astype(int), tuple(names), tuple(_class_name(c) for c in classes))
