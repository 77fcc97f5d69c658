"""DEEP's default derived from the data's shape (issue 22): the shape rules, and that data sets
without a table entry (user files, the benchmark suite) get it.

The study that chose the rule is ``benchmarks/study_defaults.py`` (docs/results.md); a real
learning run on a data set that played no part in the choice is in ``test_unseen_data.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepcircuit import TrainingConfig, load_dataset
from deepcircuit.data.defaults import (BATCH_RANGE, DEFAULT_SCALING, EPOCH_RANGE, HIDDEN_RANGE,
                                       MAX_PRESENTATIONS, SCALINGS, DataShape, dataset_defaults,
                                       derived_batch, derived_defaults, derived_epochs, derived_hidden)
from deepcircuit.data.suite import SUITE, is_suite, load_suite


def shape(n_features=10, n_outputs=3, n_train=500, power=3.0):
    return DataShape(n_features, n_outputs, n_train, 0.3, power)


@pytest.mark.parametrize("n_features", [1, 2, 4, 13, 30, 64, 784, 5000])
@pytest.mark.parametrize("n_train", [20, 100, 1000, 60000])
def test_sizes_stay_in_their_ranges(n_features, n_train):
    s = shape(n_features, 3, n_train)
    h, b = derived_hidden(s), derived_batch(s)
    e = derived_epochs(s, b)
    assert HIDDEN_RANGE[0] <= h <= HIDDEN_RANGE[1]
    assert BATCH_RANGE[0] <= b <= BATCH_RANGE[1] and b & (b - 1) == 0  # a power of two
    assert 1 <= e <= EPOCH_RANGE[1]
    # A training's presentations are bounded (its time, since a presentation's cost is bounded).
    assert e * n_train <= max(MAX_PRESENTATIONS, EPOCH_RANGE[0] * n_train)


def test_hidden_size_grows_with_features_and_is_capped_by_rows():
    assert derived_hidden(shape(4)) == 10          # lower bound
    assert derived_hidden(shape(13)) == 26         # twice the features
    assert derived_hidden(shape(784)) == 100       # upper bound
    assert derived_hidden(shape(30, n_train=60)) == 15  # a quarter of 60 rows


def test_large_sets_train_fewer_epochs_of_larger_batches():
    small, large = shape(n_train=100), shape(n_train=56000)
    assert derived_batch(small) < derived_batch(large) == 64
    assert derived_epochs(small, derived_batch(small)) > derived_epochs(large, 64) == 1
    # About TARGET_UPDATES updates for mid-sized sets: digits' 1437 rows give 31 epochs of 23.
    assert derived_epochs(shape(64, 10, 1437), 64) == 31


def test_digits_gets_the_settings_it_was_tuned_with():
    # The rule scales from digits' DEEP settings (95-96 % on digits); on digits' own shape it
    # must give them back, whatever the candidate scaling.
    ds = load_dataset("digits")
    d = dataset_defaults("digits", "deep", source=ds.source, shape=DataShape.of(ds))
    assert d.topology == "layered+sink" and d.hidden == (100,)
    want = {"batch_size": 64, "eta": 100.0, "eta_input": 3.0, "eta_feedback": 0.1, "init_scale": 0.1,
            "rule": "stdp2-mirror", "beta": 1.0, "dt": 0.1, "free_steps": 100, "eval_free_steps": 500}
    assert {k: d.settings[k] for k in want} == want
    for sc in SCALINGS:
        s = derived_defaults(DataShape.of(ds), scaling=sc).settings
        assert math.isclose(s["eta"] * s["eta_input"], 300.0, rel_tol=0.01) and math.isclose(s["init_scale"], 0.1, rel_tol=0.01)


def test_fanin_scaling_follows_the_input_power_and_the_hidden_size():
    few, many = shape(4, power=1.0), shape(400, power=100.0)
    f, m = derived_defaults(few, scaling="fanin").settings, derived_defaults(many, scaling="fanin").settings
    # rate on input weights ~ 1 / power; initial input sd ~ 1 / sqrt(power); eta ~ 1 / hidden
    assert math.isclose((f["eta"] * f["eta_input"]) / (m["eta"] * m["eta_input"]), 100.0, rel_tol=0.02)
    assert math.isclose(f["init_scale"] / m["init_scale"], 10.0, rel_tol=0.02)
    assert math.isclose(f["eta"] / m["eta"], derived_hidden(many) / derived_hidden(few), rel_tol=0.02)
    with pytest.raises(ValueError, match="scaling must be one of"):
        derived_defaults(few, scaling="nope")


def test_the_default_scaling_is_a_candidate_and_settings_are_valid():
    assert DEFAULT_SCALING in SCALINGS
    for sc in SCALINGS:
        for s in (shape(2, 2, 50, 0.5), shape(784, 10, 4000, 100.0)):
            TrainingConfig().replace(**derived_defaults(s, scaling=sc).settings)  # validates every field


def test_data_shape_of_a_data_set():
    ds = load_dataset("iris", validation_fraction=0.2)
    s = DataShape.of(ds)
    x = ds.train.inputs[:, :-1]
    assert (s.n_features, s.n_outputs, s.n_train) == (4, 3, ds.train.n_presentations)
    assert math.isclose(s.input_power, float(np.mean(np.sum(x ** 2, axis=1))))
    assert 0.3 < s.minority <= 1 / 3 + 1e-9
    assert DataShape.of(load_dataset("xor")) is None and DataShape.of(load_dataset("parity-4")) is None


def test_logic_tasks_and_parity_keep_their_presets():
    assert dataset_defaults("xor", "deep").settings == {}
    assert TrainingConfig.for_task("xor") == TrainingConfig.preset("default")
    assert dataset_defaults("parity-4", "deep").settings["epochs"] == 300


def test_a_data_file_gets_the_derived_default(tmp_path):
    from sklearn.datasets import load_wine

    w = load_wine()
    path = tmp_path / "wine.csv"
    rows = [",".join([f"f{i}" for i in range(13)] + ["label"])]
    rows += [",".join([*(f"{v:g}" for v in x), str(y)]) for x, y in zip(w.data, w.target)]
    path.write_text("\n".join(rows) + "\n")
    ds = load_dataset(path, target="label")
    assert TrainingConfig.for_task(ds).to_dict() == TrainingConfig.preset("default").replace(
        **derived_defaults(DataShape.of(ds)).settings).to_dict()


def test_suite_members_load_offline_with_fixed_rows():
    assert len(SUITE) >= 12 and all(is_suite("suite:" + n) for n in SUITE)
    a, b = load_suite("suite:clf-imbalanced"), load_suite("clf-imbalanced")
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert np.bincount(a.y).min() / len(a.y) < 0.15  # imbalanced
    ds = load_dataset("suite:wine")
    assert ds.source == "builtin" and ds.train.n_inputs == 14
    assert not is_suite("suite:nope") and not is_suite("wine")


@pytest.mark.slow
def test_digits28_is_a_5000_image_28x28_set():
    raw = load_suite("digits28")
    assert raw.x.shape == (5000, 784) and raw.n_classes == 10
    assert (raw.x.max(axis=0) == 0).sum() >= 100  # image borders: constant columns, as in any image set
