"""The shipped iris and moons defaults of ``deep`` are the ones the validation grid chose.

``python benchmarks/study_results.py --select`` measures every grid point with 20 % of the
training rows held out and stores it in ``benchmarks/results/results.jsonl``; the choice reads
only the validation accuracy. This pins ``deepcircuit/data/defaults.py`` to that record, so a
default changed without re-running the grid (or chosen on the test split) fails here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from deepcircuit.data.defaults import dataset_defaults

ROOT = Path(__file__).resolve().parent.parent


def _study():
    spec = importlib.util.spec_from_file_location("study_results", ROOT / "benchmarks" / "study_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", ["iris", "moons"])
def test_deep_defaults_are_the_validation_choice(name):
    study = _study()
    found, best = study.selection(name, study.load_rows())
    assert len(found) == len(study.SELECT_GRID), "the grid is not fully measured"
    assert all(not r.get("quick") and len(r["validation_accuracy"]) == 5 for *_, r in found)
    d = dataset_defaults(name, "deep")
    assert (d.topology, float(d.settings["eta"])) == best


def test_the_choice_reads_validation_not_test_accuracy():
    study = _study()
    rows = {study.select_key("iris", t, e): {"validation_accuracy": [0.5], "test_accuracy": [0.9]}
            for t, e in study.SELECT_GRID}
    rows[study.select_key("iris", "complete", 100.0)] = {"validation_accuracy": [0.8], "test_accuracy": [0.1]}
    assert study.selection("iris", rows)[1] == ("complete", 100.0)
    # A tie goes to the smaller learning rate.
    rows[study.select_key("iris", "complete+sink", 3.0)] = {"validation_accuracy": [0.8], "test_accuracy": [0.1]}
    rows[study.select_key("iris", "complete+sink", 10.0)] = {"validation_accuracy": [0.8], "test_accuracy": [0.1]}
    assert study.selection("iris", rows)[1] == ("complete+sink", 3.0)
