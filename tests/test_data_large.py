"""MNIST-sized data (issue 22): image files load as they are, numerically, within the memory
limits, train with minibatches, and networks of a few thousand neurons are allowed.

The full 70 000 x 784 size is a slow test; the unmarked tests run the same paths on a few
hundred rows. Figures: docs/data.md ("Large data"), from benchmarks/bench_large_data.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from deepcircuit import limits
from deepcircuit.cli import main as cli_main
from deepcircuit.data.files import DataWarning
from deepcircuit.data.split import load_dataset

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_large_data import make_files  # noqa: E402  (the benchmark's own generator)


def _load(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(path)
    return ds, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def test_an_image_set_loads_the_same_from_csv_and_npz(tmp_path):
    csv, npz = make_files(tmp_path, 300, 28)
    a, wa = _load(csv)
    b, wb = _load(npz)
    assert a.train.inputs.shape == (240, 785) and np.array_equal(a.train.inputs, b.train.inputs)
    assert np.array_equal(a.test.targets, b.test.targets)
    # the 2-pixel zero border: 784 - 24 * 24 = 208 constant columns, said once
    assert len(wa) == 1 and "208 of 784 feature columns are constant" in wa[0] and wa == wb


def test_an_image_csv_trains_with_minibatches_from_the_command_line(tmp_path, capsys):
    csv, _ = make_files(tmp_path, 200, 28)
    rc = cli_main(["train", "--data", str(csv), "--epochs", "1", "--batch-size", "32", "--hidden", "10",
                   "--free-steps", "10", "--nudged-steps", "10", "--out", str(tmp_path / "o"), "--quiet", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert out["batch_size"] == 32 and out["sizes"] == {"train": 160, "test": 40}
    assert [ln for ln in captured.err.splitlines() if "constant" in ln] == [
        "deepcircuit train: warning: " + f"{csv.stem}: 208 of 784 feature columns are constant over the training "
        "rows (e.g. 'x0'); kept and scaled to 0, they carry no information."]


def test_neuron_limit_follows_from_memory_and_says_so(tmp_path):
    from deepcircuit.studies import option_checks as checks

    assert limits.MAX_NEURONS ** 2 * limits.NETWORK_BYTES_PER_NEURON_PAIR <= limits.MAX_NETWORK_MEMORY_BYTES
    assert limits.MAX_NEURONS >= 2000 and limits.MAX_MODEL_FILE_BYTES >= 32 * limits.MAX_NEURONS ** 2
    assert checks.hidden("1000,500") == (1000, 500)  # 784 inputs + 1500 hidden + 10 fits
    r = subprocess.run([sys.executable, "-m", "deepcircuit", "train", "--hidden", "5000", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "MAX_NEURONS" in r.stderr and "5000 x 5000 neuron pairs" in r.stderr
    assert "MAX_NETWORK_MEMORY_BYTES = 4 GiB" in r.stderr


def test_a_matrix_above_the_memory_limit_is_refused_before_it_is_allocated(tmp_path, monkeypatch):
    csv, npz = make_files(tmp_path, 100, 28)
    monkeypatch.setattr(limits, "MAX_DATA_BYTES", 100 * 784 * 8 - 1)
    for path in (csv, npz):
        with pytest.raises(limits.LimitExceededError, match="100 rows x 784 features need 1 MiB as float64, above "
                                                            "the limit MAX_DATA_BYTES"):
            load_dataset(path)


@pytest.mark.slow
def test_mnist_size_loads_from_csv_and_npz_within_the_memory_limit(tmp_path):
    """70 000 x 784 (uint8-like values) from CSV and NPZ: the peak memory of each load, in a
    fresh process, stays within MAX_DATA_MEMORY_BYTES; then one epoch of minibatches on a subset."""
    csv, npz = make_files(tmp_path, 70_000, 28)
    code = ("import json, resource, sys, warnings; warnings.simplefilter('ignore')\n"
            "from deepcircuit.data.split import load_dataset\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "ds = load_dataset(sys.argv[1])\n"
            "print(json.dumps([ds.train.inputs.shape, ds.test.inputs.shape, "
            "(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024]))")
    for path in (csv, npz):
        r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        train, test, peak = json.loads(r.stdout.strip().splitlines()[-1])
        assert train == [56_000, 785] and test == [14_000, 785]
        assert peak <= limits.MAX_DATA_MEMORY_BYTES
    import deepcircuit as dc
    from dataclasses import replace

    ds, _ = _load(npz)
    small = replace(ds, train=ds.train.subset(slice(0, 640)), test=ds.test.subset(slice(0, 160)))
    cfg = dc.TrainingConfig.for_task(small).replace(epochs=1, batch_size=64, free_steps=20, nudged_steps=20,
                                                    eval_free_steps=20)
    result = dc.train(small, seeds=[0], hidden=(100,), config=cfg, progress=False)
    assert len(result.histories[0].error) == 1 and not result.diverged[0]
