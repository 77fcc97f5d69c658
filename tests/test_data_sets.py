"""Built-in data sets, the split and the scaler: what train, compare and export rely on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepcircuit import InvalidInputError
from deepcircuit.data.builtin import BUILTIN_DATASETS, load_builtin
from deepcircuit.data.split import Dataset, Scaler, load_dataset


def test_builtin_sets_have_the_documented_shapes():
    d = load_builtin("digits")
    assert d.x.shape == (1797, 64) and d.n_classes == 10 and d.x.max() == 16
    assert load_builtin("iris").x.shape == (150, 4)
    m1, m2 = load_builtin("moons"), load_builtin("moons")
    assert m1.x.shape == (1000, 2) and np.array_equal(m1.x, m2.x)  # fixed generator seed
    p = load_builtin("parity-3")
    assert p.x.shape == (8, 3) and list(p.y) == [0, 1, 1, 0, 1, 0, 0, 1]
    assert set(BUILTIN_DATASETS) >= {"digits", "iris", "moons", "parity-2", "parity-8"}


@pytest.mark.parametrize("name, msg", [("parity-9", "N in 2..8"), ("mnist", "built-in data sets are digits")])
def test_unknown_sets_are_refused_with_the_choices(name, msg):
    with pytest.raises(InvalidInputError, match=msg):
        load_builtin(name)


def test_split_is_stratified_seeded_and_disjoint():
    a, b, c = load_dataset("iris"), load_dataset("iris"), load_dataset("iris", split_seed=1)
    assert a.train.n_presentations == 120 and a.test.n_presentations == 30
    assert np.array_equal(a.test.inputs, b.test.inputs)
    assert not np.array_equal(a.test.inputs, c.test.inputs)
    assert list(a.test.targets.sum(axis=0)) == [10, 10, 10]  # stratified: 10 of each class
    m = load_dataset("moons")
    rows = {tuple(r) for r in m.train.inputs}
    assert not any(tuple(r) in rows for r in m.test.inputs)  # no test row is a training row
    assert (a.train.split, a.test.split) == ("train", "test")


def test_scaler_is_fitted_on_the_training_split_only_and_test_rows_are_clipped():
    raw = load_builtin("moons")
    ds = load_dataset("moons")
    tr = ds.train.inputs[:, :-1]
    assert np.allclose(tr.min(axis=0), 0) and np.allclose(tr.max(axis=0), 1)
    assert (ds.train.inputs[:, -1] == 1).all()  # bias column last
    # The scaler's range is the training rows' range, not the whole data set's.
    # The scaler's range is the training rows' range: for some split seed an extreme row of
    # the whole set lands in the test split, and the range then differs from the whole set's.
    ranges = [load_dataset("moons", split_seed=k).scaler for k in range(6)]
    assert all((s.low >= raw.x.min(axis=0)).all() and (s.high <= raw.x.max(axis=0)).all() for s in ranges)
    assert any((s.low > raw.x.min(axis=0)).any() or (s.high < raw.x.max(axis=0)).any() for s in ranges)
    te = ds.test.inputs[:, :-1]
    assert te.min() >= 0 and te.max() <= 1
    s = Scaler(np.array([0.0]), np.array([2.0]))
    assert s.transform(np.array([[-1.0], [1.0], [5.0]])).ravel().tolist() == [0.0, 0.5, 1.0]


def test_validation_split_comes_out_of_the_training_rows():
    ds = load_dataset("digits", validation_fraction=0.1)
    sizes = {k: t.n_presentations for k, t in ds.splits.items()}
    assert sizes == {"train": 1293, "validation": 144, "test": 360}
    assert "1293 train / 144 validation / 360 test" in ds.describe()


def test_logic_tasks_and_parity_are_their_own_test_set():
    xor = load_dataset("xor")
    assert xor.test is xor.train and xor.train.n_presentations == 4 and xor.scaler is None
    par = load_dataset("parity-4")
    assert par.test_is_train and par.readout == "threshold" and par.train.n_presentations == 16
    with pytest.raises(InvalidInputError, match="whole truth table"):
        load_dataset("parity-4", validation_fraction=0.2)


def test_dataset_round_trips_through_the_model_file_form():
    ds = load_dataset("moons", split_seed=3, validation_fraction=0.25)
    d = json.loads(json.dumps(ds.to_dict()))
    again = Dataset.from_dict(d)
    for k in ("train", "validation", "test"):
        assert np.array_equal(getattr(again, k).inputs, getattr(ds, k).inputs)
        assert np.array_equal(getattr(again, k).targets, getattr(ds, k).targets)
    assert d["split_seed"] == 3 and d["scaler"]["kind"] == "minmax" and d["classes"] == ["upper", "lower"]


@pytest.mark.parametrize("kw, msg", [({"test_fraction": 1.0}, "test_fraction"),
                                     ({"split_seed": -1}, "split_seed"),
                                     ({"target": "y"}, "apply to data files")])
def test_bad_split_options_are_refused(kw, msg):
    with pytest.raises(InvalidInputError, match=msg):
        load_dataset("iris", **kw)


def test_a_saved_model_finds_its_data_set_again(tmp_path):
    from deepcircuit import Network, Roles
    from deepcircuit.data.split import dataset_for_model
    from deepcircuit.learning.model_file import ModelFile, load_model, save_model

    ds = load_dataset("iris", split_seed=2)
    net = Network.create(Roles(5, (3,), 3), rng=0)
    path = save_model(tmp_path / "m.json", ModelFile(net, seed=0, task="iris", dataset=ds.to_dict()))
    m = load_model(path)
    again = dataset_for_model(m)
    assert np.array_equal(again.test.inputs, ds.test.inputs)
    assert np.array_equal(m.task_for().inputs, ds.test.inputs)  # task_for: the test split
    with pytest.raises(InvalidInputError, match="not on a data file; use --task"):
        dataset_for_model(m, data=tmp_path / "x.csv")
    # A logic-task model file without the field (older files too) still resolves its task.
    old = load_model(save_model(tmp_path / "x.json", ModelFile(Network.create(Roles(3, (2,), 1), rng=0), task="xor")))
    assert old.dataset is None and dataset_for_model(old).train.n_presentations == 4
