"""User data files: CSV and NPZ, and one clear line for every kind of bad file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from deepcircuit import InvalidInputError
from deepcircuit.data import files as data_files
from deepcircuit.data.split import load_dataset


def write(tmp_path, text, name="d.csv", mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


GOOD = "a,label,b\n" + "".join(f"{i},{'cat' if i % 2 else 'dog'},{(i * 7) % 5}\n" for i in range(20))


def test_csv_with_text_labels_and_a_named_target(tmp_path):
    p = write(tmp_path, GOOD)
    ds = load_dataset(p, target="label", test_fraction=0.25)
    assert ds.class_names == ("cat", "dog") and ds.feature_names == ("a", "b")
    assert ds.train.n_presentations == 15 and ds.test.n_presentations == 5
    assert ds.train.inputs.shape[1] == 3 and ds.readout == "argmax"
    assert ds.to_dict()["files"]["target"] == "label"


def test_numeric_labels_written_differently_are_one_class(tmp_path):
    ds = load_dataset(write(tmp_path, "a,y\n1,1\n2,1.0\n3,0\n4,0.0\n5,2\n6,2e0\n"), test_fraction=0.5)
    assert ds.class_names == ("0", "1", "2")


def test_npz_and_a_separate_test_file(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 3)), np.arange(30) % 3
    np.savez(tmp_path / "tr.npz", x=x, y=y)
    np.savez(tmp_path / "te.npz", x=x[:6] * 10, y=y[:6])
    ds = load_dataset(tmp_path / "tr.npz", test=tmp_path / "te.npz")
    assert ds.train.n_presentations == 30 and ds.test.n_presentations == 6
    assert ds.test.inputs.max() <= 1 and ds.test.inputs.min() >= 0  # clipped by the train scaler


@pytest.mark.parametrize("text, msg", [
    ("a,b,y\n1,2,0\n1,x,1\n3,4,0\n", "line 3, column 'b': 'x' is not a number"),
    ("a,b,y\n1,2,0\n1,,1\n3,4,0\n", "line 3, column 'b': missing value"),
    ("a,b,y\n1,2,0\n1,nan,1\n3,4,0\n", "line 3, column 'b': 'nan' is not a finite number"),
    ("a,b,y\n1,2,0\n1,inf,1\n3,4,0\n", "line 3, column 'b': 'inf' is not a finite number"),
    ("a,b,y\n1,2,0\n1,3\n3,4,0\n", "line 3 has 2 cells but the header has 3 columns"),
    ("a,b,y\n1,2,0\n1,2,1\n3,2,0\n", "column 'b' is constant"),
    ("a,b,y\n1,2,0\n2,3,0\n3,4,0\n", "at least two classes"),
    ("a,b,y\n1,2,0\n2,3,\n3,4,1\n", "line 3, column 'y': missing label"),
    ("a,b,y\n", "no data rows"),
    ("", "is empty"),
    ("a,a,y\n1,2,0\n", "appears twice"),
])
def test_bad_csv_files_get_one_line_naming_row_and_column(tmp_path, text, msg):
    p = write(tmp_path, text)
    with pytest.raises(InvalidInputError, match=msg.replace("(", r"\(")):
        load_dataset(p)


def test_missing_label_column_non_utf8_and_limits(tmp_path, monkeypatch):
    p = write(tmp_path, GOOD)
    with pytest.raises(InvalidInputError, match="no label column 'kind'; columns are 'a', 'label', 'b'"):
        load_dataset(p, target="kind")
    with pytest.raises(InvalidInputError, match="line 2 is not UTF-8"):
        load_dataset(write(tmp_path, b"a,y\n\xff\xfe,1\n", "bad.csv", "wb"))
    monkeypatch.setattr(data_files, "MAX_FILE_BYTES", 100)
    with pytest.raises(InvalidInputError, match="the limit is 0 MiB|MiB; the limit"):
        load_dataset(p, target="label")
    monkeypatch.setattr(data_files, "MAX_FILE_BYTES", 2**20)
    monkeypatch.setattr(data_files, "MAX_CLASSES", 1)
    with pytest.raises(InvalidInputError, match="2 classes; the limit is 1"):
        load_dataset(p, target="label")
    monkeypatch.setattr(data_files, "MAX_FEATURES", 1)
    with pytest.raises(InvalidInputError, match="2 feature columns; the limit is 1"):
        load_dataset(p, target="label")
    with pytest.raises(InvalidInputError, match="must end in .csv or .npz"):
        load_dataset(tmp_path / "d.txt")


def test_npz_is_never_unpickled_and_bad_arrays_are_named(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([[1, {"a": 1}]], dtype=object), y=np.array([0]))
    with pytest.raises(InvalidInputError, match="not a readable .npz of plain numeric arrays"):
        load_dataset(tmp_path / "obj.npz")
    np.savez(tmp_path / "noy.npz", x=np.ones((3, 2)))
    with pytest.raises(InvalidInputError, match="missing 'y'"):
        load_dataset(tmp_path / "noy.npz")
    x = np.arange(12.0).reshape(6, 2)
    x[4, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.arange(6) % 2)
    with pytest.raises(InvalidInputError, match=r"x\[row 4, column 1\] is nan"):
        load_dataset(tmp_path / "nan.npz")


def test_cli_bad_data_file_is_one_line_with_status_2(tmp_path):
    p = write(tmp_path, "a,b,y\n1,2,0\n1,x,1\n3,4,0\n")
    r = subprocess.run([sys.executable, "-m", "deepcircuit", "train", "--data", str(p), "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "line 3, column 'b'" in r.stderr
