"""User data files: ``FILE.csv`` (header row, one label column) and ``FILE.npz`` (arrays x, y).

Nothing in a data file is executed or trusted: CSV cells are parsed as numbers (features), as
text levels of a one-hot encoded column, or kept as opaque label text; ``.npz`` files are opened
with ``allow_pickle=False``; and names from the file are only shown in messages (quoted and
shortened), never used as identifiers in a netlist (neurons are always called ``x0.., bias,
h0.., y0..``). Every problem is reported in one line naming the row and the column. The limits
of :mod:`deepcircuit.limits` (``MAX_DATA_*``) keep a mistaken file from exhausting the machine;
they are checked before the large arrays are allocated.

CSV files are read by pyarrow's CSV reader into columns of text, and each feature column is
converted to float64 in one vectorised pass (no Python object per cell), so a 70 000 x 784 file
loads in seconds (docs/data.md, "Large data").

Text feature columns: a column none of whose cells is a number is categorical; with at most
:data:`~deepcircuit.limits.MAX_LEVELS` distinct values it is one-hot encoded (one input per value,
sorted, named ``column=value``), said in one :class:`DataWarning` line; with more it is refused
with the column named. A column mixing numbers and text is a numeric column with a bad cell.
"""

from __future__ import annotations

import csv
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .. import limits
from .raw import RawData
from ..errors import DeepCircuitWarning, InvalidInputError, LimitExceededError

DATA_SUFFIXES = (".csv", ".npz")
#: A number as a CSV cell may write it (what pyarrow's float parser accepts), after trimming.
_NUMBER = r"^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[nN][aA][nN]|[iI][nN][fF]([iI][nN][iI][tT][yY])?)$"


class DataWarning(DeepCircuitWarning):
    """A data file was read with a change the user should know of (constant columns kept,
    text columns one-hot encoded)."""


def shown(text: object, limit: int = 40) -> str:
    """A name from a user's file as it may appear in a message: repr-quoted and shortened."""
    text = str(text)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def _limit(what: str, value: int, name: str) -> None:
    cap = getattr(limits, name)
    if value > cap:
        raise LimitExceededError(f"{what} is {value}, above the limit {name} = {cap} (deepcircuit.limits).")


def _matrix_fits(path: Path, rows: int, features: int) -> None:
    """Rows, features and the float64 feature matrix against the data limits, before allocating it."""
    _limit(f"{path.name}: the number of data rows", rows, "MAX_DATA_ROWS")
    _limit(f"{path.name}: the number of feature columns", features, "MAX_DATA_FEATURES")
    nbytes = 8 * rows * features
    if nbytes > limits.MAX_DATA_BYTES:
        raise LimitExceededError(
            f"{path.name}: {rows} rows x {features} features need {nbytes / 2**20:.0f} MiB as float64, above "
            f"the limit MAX_DATA_BYTES = {limits.MAX_DATA_BYTES / 2**20:.0f} MiB (deepcircuit.limits; it keeps "
            f"loading within MAX_DATA_MEMORY_BYTES = {limits.MAX_DATA_MEMORY_BYTES / 2**30:.3g} GiB).")


def read_data_file(path: "str | Path", *, target: "str | None" = None,
                   categories: "tuple | None" = None) -> RawData:
    """Read and validate a user data file; returns features and integer labels.

    Parameters
    ----------
    path : str or Path
        ``.csv`` (UTF-8, a header row, one sample per row) or ``.npz`` (arrays ``x`` of shape
        ``(n_samples, n_features)`` and ``y`` of shape ``(n_samples,)``).
    target : str, optional
        CSV only: the name of the label column (default: the last column).
    categories : tuple, optional
        CSV only: the one-hot encoding of another file (``RawData.categories`` of the training
        file, or a model file's): these columns are encoded with these levels, an unknown level
        is refused, and every other column must be numeric.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise InvalidInputError(
            f"Data file {str(path)!r} must end in .csv or .npz; got {suffix or 'no suffix'!r}.")
    if not path.is_file():
        raise InvalidInputError(f"Data file {str(path)!r} does not exist.")
    size = path.stat().st_size
    if size > limits.MAX_DATA_FILE_BYTES:
        raise LimitExceededError(
            f"Data file {str(path)!r} is {size / 2**20:.1f} MiB, above the limit MAX_DATA_FILE_BYTES = "
            f"{limits.MAX_DATA_FILE_BYTES / 2**20:.0f} MiB (deepcircuit.limits; it keeps loading within "
            f"MAX_DATA_MEMORY_BYTES = {limits.MAX_DATA_MEMORY_BYTES / 2**30:.3g} GiB).")
    if size == 0:
        raise InvalidInputError(f"Data file {str(path)!r} is empty.")
    if suffix == ".csv":
        x, labels, names, cats = _read_csv(path, target, categories)
    else:
        if target is not None:
            raise InvalidInputError("--target applies to CSV files; a .npz file has its labels in array 'y'.")
        x, labels, names = _read_npz(path)
        cats = ()
    return _validated(path, x, labels, names, cats)


def _csv_header(path: Path) -> list[str]:
    """The header row (names stripped), read with the csv module from the file's first record."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        _not_utf8(path)
    except csv.Error as exc:
        raise InvalidInputError(f"{path.name}: the header row is not valid CSV ({exc}).") from None
    if not header or not any(h.strip() for h in header):
        raise InvalidInputError(f"{path.name}: the file has no header row.")
    return [h.strip() for h in header]


def _not_utf8(path: Path):
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInputError(f"{path.name}: line {line} is not UTF-8 text (byte {exc.start}).") from None
    raise InvalidInputError(f"{path.name}: not readable as UTF-8 CSV text.")


def _arrow_table(path: Path, n_columns: int):
    """Every cell as text (empty cells null), read by pyarrow's multi-threaded CSV reader."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    bad_rows = []

    def on_bad_row(row):
        if row.text.strip():  # a line of blanks (at the end of a file, say) is no row
            bad_rows.append(row)
        return "skip"

    names = [f"c{k}" for k in range(n_columns)]

    def read(threads: bool):
        return pcsv.read_csv(
            path, read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, use_threads=threads),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_bad_row, newlines_in_values=False),
            convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                null_values=[""], strings_can_be_null=True))

    try:
        table = read(True)
        if bad_rows:  # the threaded reader does not number rows: read again to name the line
            bad_rows.clear()
            read(False)
    except pa.ArrowInvalid as exc:
        if "UTF8" in str(exc):
            _not_utf8(path)
        raise InvalidInputError(f"{path.name}: not readable as CSV ({str(exc).splitlines()[0][:120]}).") from None
    if bad_rows:
        row = bad_rows[0]
        line = f"line {row.number}" if row.number is not None else f"the row {shown(row.text, 30)}"
        raise InvalidInputError(
            f"{path.name}: {line} has {row.actual_columns} cells but the header has {n_columns} columns.")
    return table


def _first(mask) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def _text_column(col) -> np.ndarray:
    """A (small) text column as a numpy array of str: only for labels and one-hot columns."""
    import pyarrow.compute as pc

    return np.asarray(pc.utf8_trim_whitespace(col).to_numpy(zero_copy_only=False), dtype=str)


def _check_text(path: Path, values: np.ndarray, column: str, what: str) -> None:
    """Labels and levels are shown and stored: printable, at most MAX_LABEL_TEXT characters."""
    for v in np.unique(values):
        if not v.isprintable() or len(v) > limits.MAX_LABEL_TEXT:
            line = _first(values == v) + 2
            raise InvalidInputError(
                f"{path.name}: line {line}, column {shown(column)}: the {what} {shown(v, 20)} is not printable "
                f"text of at most {limits.MAX_LABEL_TEXT} characters (MAX_LABEL_TEXT).")


def _numeric(path: Path, col, column: str, where) -> "np.ndarray | None":
    """A feature column as float64, or None when none of its cells is a number (a text column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(col, pa.float64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    trimmed = pc.utf8_trim_whitespace(col)
    empty = np.asarray(pc.equal(trimmed, "").to_numpy(zero_copy_only=False), dtype=bool)
    if empty.any():
        raise InvalidInputError(f"{where(_first(empty))}: missing value.")
    is_num = np.asarray(pc.match_substring_regex(trimmed, _NUMBER).to_numpy(zero_copy_only=False), dtype=bool)
    if not is_num.any():
        return None
    if not is_num.all():
        r = _first(~is_num)
        raise InvalidInputError(f"{where(r)}: {shown(trimmed[r].as_py(), 20)} is not a number.")
    return pc.cast(trimmed, pa.float64()).to_numpy()


def _read_csv(path: Path, target: "str | None", categories: "tuple | None"):
    header = _csv_header(path)
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
    _limit(f"{path.name}: the number of feature columns", len(header) - 1, "MAX_DATA_FEATURES")
    given = dict(categories) if categories is not None else None
    if given is not None:
        missing = [c for c in given if c not in header or c == header[t]]
        if missing:
            raise InvalidInputError(
                f"{path.name}: has no feature column {shown(missing[0])}, which the training data one-hot encoded.")
    table = _arrow_table(path, len(header))
    n = table.num_rows
    if n == 0:
        raise InvalidInputError(f"{path.name}: the file has a header but no data rows.")
    _matrix_fits(path, n, len(header) - 1)
    import pyarrow.compute as pc

    label_col = table.column(t)
    if label_col.null_count:
        raise InvalidInputError(
            f"{path.name}: line {_first(label_col.is_null().to_numpy(zero_copy_only=False)) + 2}, column "
            f"{shown(header[t])}: missing label.")
    labels = _text_column(label_col)
    empty = labels == ""
    if empty.any():
        raise InvalidInputError(f"{path.name}: line {_first(empty) + 2}, column {shown(header[t])}: missing label.")
    _check_text(path, labels, header[t], "label")
    feats = [k for k in range(len(header)) if k != t]
    x = np.empty((n, len(feats)))
    encoded = {}  # feature position -> (levels, one-hot block)
    for c, k in enumerate(feats):
        name = header[k]
        col = table.column(k)

        def where(r, name=name):
            return f"{path.name}: line {r + 2}, column {shown(name)}"

        if col.null_count:
            raise InvalidInputError(f"{where(_first(col.is_null().to_numpy(zero_copy_only=False)))}: missing value.")
        if given is not None and name in given:
            values = None
        else:
            values = _numeric(path, col, name, where)
        if values is not None:
            bad = ~np.isfinite(values)
            if bad.any():
                r = _first(bad)
                raise InvalidInputError(f"{where(r)}: {shown(pc.utf8_trim_whitespace(col)[r].as_py(), 20)} is not a finite number.")
            x[:, c] = values
            continue
        if given is not None and name not in given:
            r = _first(~np.asarray(pc.match_substring_regex(pc.utf8_trim_whitespace(col), _NUMBER)
                                   .to_numpy(zero_copy_only=False), dtype=bool))
            raise InvalidInputError(f"{where(r)}: {shown(pc.utf8_trim_whitespace(col)[r].as_py(), 20)} is not a number "
                                    "(the training data's column is numeric).")
        encoded[c] = _one_hot(path, _text_column(col), name, where, given.get(name) if given else None)
    del table
    names = [header[k] for k in feats]
    cats = tuple((names[c], levels) for c, (levels, _) in sorted(encoded.items()))
    if encoded:
        blocks, out_names = [], []
        for c, name in enumerate(names):
            if c in encoded:
                levels, block = encoded[c]
                blocks.append(block)
                out_names += [f"{name}={v}" for v in levels]
            else:
                blocks.append(x[:, c:c + 1])
                out_names.append(name)
        _matrix_fits(path, n, len(out_names))
        x = np.hstack(blocks)
        names = out_names
        if categories is None:
            warnings.warn(DataWarning(
                f"{path.name}: {len(cats)} text column(s) one-hot encoded into "
                f"{sum(len(v) for _, v in cats)} inputs: "
                + ", ".join(f"{shown(c, 20)} ({len(v)} levels)" for c, v in cats[:5])
                + (" ..." if len(cats) > 5 else "") + f" (at most MAX_LEVELS = {limits.MAX_LEVELS} levels each)"),
                stacklevel=3)
    return x, labels, tuple(names), cats


def _one_hot(path: Path, values: np.ndarray, name: str, where, levels: "tuple | None"):
    """A text column as one-hot columns: ``(levels, block (rows, levels))``."""
    if levels is None:
        if not name or not name.isprintable() or len(name) > limits.MAX_LABEL_TEXT:
            # the column's name is stored in the model file with its levels
            raise InvalidInputError(
                f"{path.name}: the text column {shown(name)} needs a name of printable text of 1 to "
                f"{limits.MAX_LABEL_TEXT} characters (MAX_LABEL_TEXT) to be one-hot encoded.")
        levels = tuple(np.unique(values).tolist())
        if len(levels) > limits.MAX_LEVELS:
            raise InvalidInputError(
                f"{path.name}: column {shown(name)} holds text with {len(levels)} distinct values; a text column "
                f"is one-hot encoded only with at most MAX_LEVELS = {limits.MAX_LEVELS} (deepcircuit.limits): "
                "remove it or encode it as numbers.")
        _check_text(path, values, name, "value")
    index = {v: k for k, v in enumerate(levels)}
    codes = np.array([index.get(v, -1) for v in values]) if len(levels) else np.full(len(values), -1)
    if (codes < 0).any():
        r = _first(codes < 0)
        raise InvalidInputError(
            f"{where(r)}: {shown(values[r], 20)} is not one of the column's levels in the training data "
            f"({', '.join(shown(v, 12) for v in levels[:8])}).")
    block = np.zeros((len(values), len(levels)))
    block[np.arange(len(values)), codes] = 1.0
    return tuple(levels), block


def _npz_header(zf: zipfile.ZipFile, name: str):
    """Shape and dtype of array ``name`` of an open .npz, read from its header only."""
    with zf.open(name + ".npy") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return shape, dtype


def _read_npz(path: Path):
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.file_size > limits.MAX_DATA_FILE_BYTES:
                    raise LimitExceededError(
                        f"{path.name}: array {shown(info.filename)} is {info.file_size / 2**20:.1f} MiB "
                        f"uncompressed, above the limit MAX_DATA_FILE_BYTES = "
                        f"{limits.MAX_DATA_FILE_BYTES / 2**20:.0f} MiB (deepcircuit.limits).")
            if "x.npy" in zf.namelist():
                shape, _ = _npz_header(zf, "x")
                if len(shape) == 2:
                    _matrix_fits(path, shape[0], shape[1])
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("x", "y") if k not in npz.files]
            if missing:
                raise InvalidInputError(
                    f"{path.name}: needs arrays 'x' (samples x features) and 'y' (labels); "
                    f"missing {', '.join(map(repr, missing))} (has {', '.join(map(shown, npz.files[:8])) or 'none'}).")
            x, y = npz["x"], npz["y"]
    except InvalidInputError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        # allow_pickle=False refuses object arrays with a ValueError: never unpickle a user file.
        raise InvalidInputError(f"{path.name}: not a readable .npz of plain numeric arrays ({exc}).") from None
    if x.ndim != 2:
        raise InvalidInputError(f"{path.name}: array 'x' must be 2-D (samples x features); got shape {x.shape}.")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise InvalidInputError(
            f"{path.name}: array 'y' must be 1-D with one label per row of x ({x.shape[0]}); got shape {y.shape}.")
    if x.shape[0] == 0:
        raise InvalidInputError(f"{path.name}: array 'x' has no rows.")
    _matrix_fits(path, x.shape[0], x.shape[1])
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
    if y.dtype.kind in "US":
        y = np.char.strip(y.astype(str))
        if (y == "").any():
            raise InvalidInputError(f"{path.name}: y[row {_first(y == '')}] is an empty label.")
        for v in np.unique(y):
            if not v.isprintable() or len(v) > limits.MAX_LABEL_TEXT:
                raise InvalidInputError(
                    f"{path.name}: y[row {_first(y == v)}] = {shown(v, 20)} is not printable text of at most "
                    f"{limits.MAX_LABEL_TEXT} characters (MAX_LABEL_TEXT).")
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


def _validated(path: Path, x: np.ndarray, labels: np.ndarray, names: tuple, categories: tuple) -> RawData:
    classes, y = np.unique(_numeric_labels(labels), return_inverse=True)
    if len(classes) < 2:
        raise InvalidInputError(
            f"{path.name}: every row has the label {shown(_class_name(classes[0]), 20)}; a classification task "
            "needs at least two classes.")
    if len(classes) > limits.MAX_CLASSES:
        raise LimitExceededError(
            f"{path.name}: the number of classes is {len(classes)}, above the limit MAX_CLASSES = "
            f"{limits.MAX_CLASSES} (deepcircuit.limits).")
    return RawData(path.stem, x, y.astype(int), tuple(names), tuple(_class_name(c) for c in classes),
                   categories=categories)
