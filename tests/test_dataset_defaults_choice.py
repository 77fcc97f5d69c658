"""Which ``deep`` default iris and moons train with is the one the validation studies chose.

``python benchmarks/study_results.py --select`` chose iris's and moons's table entries on a
validation grid (20 % of the training rows held out; ``benchmarks/results/results.jsonl``).
``python benchmarks/study_defaults.py --keep-table`` then ran each entry against the default
derived from the data's shape, both at full budget on the same kind of validation split
(``benchmarks/results/defaults.jsonl``): an entry stays only where the derived default loses
more than 1 point. This pins ``deepcircuit/data/defaults.py`` to those records, so a default
changed without re-running the studies (or chosen on the test split) fails here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from deepcircuit import load_dataset
from deepcircuit.data.defaults import DataShape, dataset_defaults, derived_defaults

ROOT = Path(__file__).resolve().parent.parent


def _study(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", ["iris", "moons"])
def test_deep_defaults_follow_the_validation_studies(name):
    grid, keep = _study("study_results"), _study("study_defaults")
    found, best = grid.selection(name, grid.load_rows())
    assert len(found) == len(grid.SELECT_GRID), "the grid is not fully measured"
    rows = keep.load_rows()
    derived, table = rows[f"keep|{name}|derived"], rows[f"keep|{name}|table"]
    assert len(derived["validation_accuracy"]) >= 3 and len(table["validation_accuracy"]) >= 3
    # The table row is the grid's choice.
    assert (table["topology"], float(table["eta"])) == best
    ds = load_dataset(name)
    d = dataset_defaults(name, "deep", source=ds.source, shape=DataShape.of(ds))
    if np.mean(derived["validation_accuracy"]) < np.mean(table["validation_accuracy"]) - 0.01:
        assert (d.topology, float(d.settings["eta"])) == best
    else:
        assert dict(d.settings) == dict(derived_defaults(DataShape.of(ds)).settings)
        assert d.topology == derived["topology"]


def test_the_choice_reads_validation_not_test_accuracy():
    study = _study("study_results")
    rows = {study.select_key("iris", t, e): {"validation_accuracy": [0.5], "test_accuracy": [0.9]}
            for t, e in study.SELECT_GRID}
    rows[study.select_key("iris", "complete", 100.0)] = {"validation_accuracy": [0.8], "test_accuracy": [0.1]}
    assert study.selection("iris", rows)[1] == ("complete", 100.0)
    # A tie goes to the smaller learning rate.
    rows[study.select_key("iris", "complete+sink", 3.0)] = {"validation_accuracy": [0.8], "test_accuracy": [0.1]}
    rows[study.select_key("iris", "complete+sink", 10.0)] = {"validation_accuracy": [0.8], "test_accuracy": [0.1]}
    assert study.selection("iris", rows)[1] == ("complete+sink", 3.0)


def test_the_rule_choice_reads_validation_rows_only():
    study = _study("study_defaults")
    rows = {}
    for n, lr in (("iris", 0.9), ("wine", 0.9)):
        rows[f"screen|{n}|logistic-regression"] = {"validation_accuracy": [lr]}
        for sc, acc in (("fixed", 0.95), ("init", 0.5), ("fanin", 0.89), ("fanin-sqrt", 0.2)):
            rows[f"screen|{n}|{sc}"] = {"validation_accuracy": [acc], "test_accuracy": [1.0 - acc]}
    best, scores = study.choice(rows)
    assert best == "fixed" and scores["fanin"][0] == 2  # 89 % is within 2 points of 90 %
    assert "init" not in scores and "fanin-sqrt" not in scores  # dropped: > 10 points below LR twice
