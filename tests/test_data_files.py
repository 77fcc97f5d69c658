"""User data files: CSV and NPZ, and one clear line for every kind of bad file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from deepcircuit import InvalidInputError
from deepcircuit import limits
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
    monkeypatch.setattr(limits, "MAX_DATA_FILE_BYTES", 100)
    with pytest.raises(InvalidInputError, match="above the limit MAX_DATA_FILE_BYTES = 0 MiB .*MAX_DATA_MEMORY_BYTES"):
        load_dataset(p, target="label")
    monkeypatch.setattr(limits, "MAX_DATA_FILE_BYTES", 2**20)
    monkeypatch.setattr(limits, "MAX_CLASSES", 1)
    with pytest.raises(InvalidInputError, match="number of classes is 2, above the limit MAX_CLASSES = 1"):
        load_dataset(p, target="label")
    monkeypatch.setattr(limits, "MAX_DATA_FEATURES", 1)
    with pytest.raises(InvalidInputError, match="number of feature columns is 2, above the limit MAX_DATA_FEATURES = 1"):
        load_dataset(p, target="label")
    monkeypatch.setattr(limits, "MAX_DATA_FEATURES", 10)
    monkeypatch.setattr(limits, "MAX_DATA_BYTES", 100)
    with pytest.raises(InvalidInputError, match="20 rows x 2 features need 0 MiB as float64, above the limit MAX_DATA_BYTES"):
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


def _image_set(rng, n=40, side=8):
    """Images with an all-zero border (as in any image set): side*side pixel columns."""
    x = np.zeros((n, side, side))
    x[:, 2:-2, 2:-2] = rng.integers(0, 256, size=(n, side - 4, side - 4))
    return x.reshape(n, -1), np.arange(n) % 2


def test_constant_columns_are_kept_scaled_to_zero_with_one_warning(tmp_path):
    rng = np.random.default_rng(0)
    x, y = _image_set(rng)
    np.savez(tmp_path / "img.npz", x=x, y=y)
    with pytest.warns(data_files.DataWarning) as caught:
        ds = load_dataset(tmp_path / "img.npz", test_fraction=0.25)
    assert len(caught) == 1
    # the 48 border pixels of 8x8 images whose 4x4 centre holds random values
    assert "48 of 64 feature columns are constant" in str(caught[0].message)
    assert ds.scaler.constant.size == 48
    assert ds.train.inputs.shape == (30, 65)
    # a test row that is not 0 where every training row was still reads 0 (its weights never learned)
    probe = np.full((1, 64), 255.0)
    assert (ds.inputs_of(probe)[0, ds.scaler.constant] == 0).all()


@pytest.mark.filterwarnings("ignore::deepcircuit.data.files.DataWarning")
def test_text_feature_columns_are_one_hot_encoded_in_one_line(tmp_path):
    text = "size,colour,y\n" + "".join(
        f"{i},{['red', 'green', 'blue'][i % 3]},{'yes' if i % 2 else 'no'}\n" for i in range(30))
    with pytest.warns(data_files.DataWarning, match=r"1 text column\(s\) one-hot encoded into 3 inputs: 'colour' "
                                                     r"\(3 levels\) \(at most MAX_LEVELS = 20"):
        ds = load_dataset(write(tmp_path, text), test_fraction=0.2)
    assert ds.feature_names == ("size", "colour=blue", "colour=green", "colour=red")
    assert ds.class_names == ("no", "yes")
    assert ds.train.inputs.shape[1] == 5
    rows = ds.inputs_of(np.array([[0, 0, 0, 1.0]]))
    assert rows[0, 1:4].tolist() == [0, 0, 1]
    d = ds.to_dict()
    assert d["categories"] == [["colour", ["blue", "green", "red"]]]
    # a separate test file is encoded with the training file's levels; an unknown one is refused
    test = write(tmp_path, "size,colour,y\n1,red,no\n2,blue,yes\n", "te.csv")
    ds2 = load_dataset(write(tmp_path, text), test=test)
    assert ds2.test.inputs[:, 1:4].tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(InvalidInputError, match=r"line 3, column 'colour': 'pink' is not one of the column's levels"):
        load_dataset(write(tmp_path, text), test=write(tmp_path, "size,colour,y\n1,red,no\n2,pink,yes\n", "te2.csv"))
    # the model file's record rebuilds the same data set
    from deepcircuit.data.split import Dataset
    again = Dataset.from_dict(d, data=tmp_path / "d.csv")
    assert np.array_equal(again.train.inputs, ds.train.inputs) and again.categories == ds.categories


def test_text_columns_with_too_many_levels_or_mixed_with_numbers_are_refused(tmp_path):
    many = "id,v,y\n" + "".join(f"user{i},{i},{i % 2}\n" for i in range(30))
    with pytest.raises(InvalidInputError, match="column 'id' holds text with 30 distinct values; .* MAX_LEVELS = 20"):
        load_dataset(write(tmp_path, many))
    mixed = "a,v,y\n" + "".join(f"{'x' if i == 7 else i},{i},{i % 2}\n" for i in range(30))
    with pytest.raises(InvalidInputError, match="line 9, column 'a': 'x' is not a number"):
        load_dataset(write(tmp_path, mixed))
    bad_name = "\"a\tb\",v,y\n" + "".join(f"{'red' if i % 2 else 'blue'},{i},{i % 2}\n" for i in range(10))
    with pytest.raises(InvalidInputError, match="the text column 'a\\\\tb' needs a name of printable text"):
        load_dataset(write(tmp_path, bad_name))
    ctrl = "a,y\n" + "".join(f"{i},{'ok' if i else 'bad' + chr(27) + '[2J'}\n" for i in range(10))
    with pytest.raises(InvalidInputError, match="line 2, column 'y': the label .* is not printable text"):
        load_dataset(write(tmp_path, ctrl))


def test_text_labels_keep_their_names_in_the_model_file_and_the_json(tmp_path):
    import json

    text = "a,b,species\n" + "".join(
        f"{i % 7},{(3 * i) % 5},{['setosa', 'virginica'][i % 2]}\n" for i in range(40))
    p = write(tmp_path, text)
    r = subprocess.run([sys.executable, "-m", "deepcircuit", "train", "--data", str(p), "--target", "species",
                        "--epochs", "1", "--hidden", "3", "--free-steps", "20", "--nudged-steps", "20",
                        "--out", str(tmp_path / "o"), "--json", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["classes"] == ["setosa", "virginica"]
    model = json.loads((tmp_path / "o" / "seed0.json").read_text())
    assert model["dataset"]["classes"] == ["setosa", "virginica"]
    import deepcircuit as dc
    from deepcircuit.learning.model_file import load_model

    m = load_model(tmp_path / "o" / "seed0.json")
    from deepcircuit.data.split import Dataset

    ds = Dataset.from_dict(m.dataset, data=p)
    names = ds.class_labels(dc.predict([m.network], ds, schedule=m.training_config().eval_schedule))
    assert names.shape == (1, ds.test.n_presentations) and set(names.ravel()) <= {"setosa", "virginica"}
    assert ds.class_labels(ds.test.labels).tolist().count("setosa") == 4


def test_cli_constant_columns_warn_in_one_line_and_text_feature_errors_exit_2(tmp_path):
    text = "a,b,c,y\n" + "".join(f"{i},5,{'hot' if i % 3 else 'cold'},{i % 2}\n" for i in range(20))
    r = subprocess.run([sys.executable, "-m", "deepcircuit", "train", "--data", str(write(tmp_path, text)),
                        "--epochs", "0", "--hidden", "2", "--out", str(tmp_path / "o"), "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "constant" in ln]
    assert len(lines) == 1 and "1 of 4 feature columns are constant" in lines[0] and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "one-hot" in ln]
    assert lines == ["deepcircuit train: warning: d.csv: 1 text column(s) one-hot encoded into 2 inputs: 'c' "
                     "(2 levels) (at most MAX_LEVELS = 20 levels each)"]
    many = "id,v,y\n" + "".join(f"user{i},{i},{i % 2}\n" for i in range(30))
    r = subprocess.run([sys.executable, "-m", "deepcircuit", "train", "--data", str(write(tmp_path, many, "m.csv")),
                        "--out", str(tmp_path / "o2")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "column 'id'" in r.stderr
