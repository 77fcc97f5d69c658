"""The tuner (studies/tune.py, ``train --tune``): resumable, chooses on validation, saves its record."""

from __future__ import annotations

import json
import warnings

import pytest
from threadpoolctl import threadpool_limits

import deepcircuit as dc
from deepcircuit.cli import main as cli_main
from deepcircuit.errors import InvalidInputError, ModelFileError, NotSettledWarning
from deepcircuit.learning.model_file import load_model
from deepcircuit.studies.tune import POINTS, _choose, check_grid, parse_grid

#: iris with 2 epochs: every grid point trains in well under a second.
QUICK = ["--task", "iris", "--epochs", "2", "--quiet"]


@pytest.fixture(autouse=True)
def _quiet():
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotSettledWarning)
        yield


def _config():
    return dc.TrainingConfig.for_task(dc.load_dataset("iris"), model="deep").replace(epochs=2)


def test_rerun_skips_the_points_done(tmp_path):
    grid = {"eta": [3, 30], "sink": [False, True]}
    first = dc.tune("iris", grid=grid, config=_config(), workers=0, out=tmp_path)
    files = sorted((tmp_path / POINTS).glob("*.json"))
    assert first.skipped == 0 and len(files) == 4 and len(first.table) == 4
    stamps = {f.name: f.stat().st_mtime_ns for f in files}
    second = dc.tune("iris", grid=grid, config=_config(), workers=0, out=tmp_path)
    assert second.skipped == 4 and second.table == first.table and second.choice == first.choice
    assert {f.name: f.stat().st_mtime_ns for f in files} == stamps  # nothing was run or rewritten
    files[0].unlink()  # as if the search had been stopped before that point finished
    third = dc.tune("iris", grid=grid, config=_config(), workers=0, out=tmp_path)
    assert third.skipped == 3 and files[0].exists()
    # A changed base (another seed) is another search: no stale point is reused.
    fourth = dc.tune("iris", grid={"eta": [3]}, config=_config(), seeds=[1], workers=0, out=tmp_path)
    assert fourth.skipped == 0


def test_choice_is_the_best_validation_point_and_is_retrained_on_train_plus_validation():
    t = dc.tune("iris", grid={"eta": [3, 30], "beta": [1, 0.1]}, config=_config(), workers=0)
    ok = [r for r in t.table if r["status"] == "ok"]
    best = max(r["validation_accuracy"] for r in ok)
    assert t.choice["validation_accuracy"] == best
    chosen = t.table[t.choice["point"]]
    assert (chosen["eta"], chosen["beta"]) == (t.choice["eta"], t.choice["beta"])
    assert (t.config.eta, t.config.beta) == (t.choice["eta"], t.choice["beta"])
    ds = t.result.dataset
    assert ds.validation is None and ds.train.n_presentations == 120  # 96 train + 24 validation rows
    assert t.result.config.eta == t.choice["eta"]


def test_a_diverged_or_failed_point_is_never_chosen():
    rows = [{"point": 0, "status": "diverged", "validation_accuracy": 1.0, "error": "x"},
            {"point": 1, "status": "ok", "validation_accuracy": 0.5, "error": None},
            {"point": 2, "status": "ok", "validation_accuracy": 0.5, "error": None},
            {"point": 3, "status": "failed", "validation_accuracy": None, "error": "y"}]
    assert _choose(rows)["point"] == 1  # the first of a tie
    with pytest.raises(InvalidInputError, match="no usable grid point.*first reason: x"):
        _choose([rows[0], rows[3]])


def test_points_run_on_a_dask_cluster(tmp_path):
    t = dc.tune("iris", grid={"eta": [3, 30]}, config=_config(), workers=1, out=tmp_path)
    local = dc.tune("iris", grid={"eta": [3, 30]}, config=_config(), workers=0)
    # The same points, trained in a worker process: the same figures as in this process.
    assert [r["validation_accuracy"] for r in t.table] == [r["validation_accuracy"] for r in local.table]
    assert len(list((tmp_path / POINTS).glob("*.json"))) == 2


def test_train_tune_saves_the_table_and_the_choice(tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli_main(["train", *QUICK, "--tune", "--tune-grid", "eta=3,30", "sink=no,yes",
                   "--tune-workers", "0", "--out", str(out), "--json"])
    assert rc == 0
    text = capsys.readouterr().out
    d = json.loads(text.strip().splitlines()[-1])
    tuning = d["tuning"]
    assert len(tuning["table"]) == 4 and tuning["grid"] == {"eta": [3.0, 30.0], "sink": [False, True]}
    assert "validation acc" in text and "chose point" in text
    m = load_model(out / "seed0.json")
    assert m.tuning == tuning
    choice = m.tuning["choice"]
    assert choice["validation_accuracy"] == max(r["validation_accuracy"] for r in tuning["table"])
    assert m.config["eta"] == choice["eta"]
    assert m.network.topology.endswith("+sink") == choice["sink"]
    assert m.dataset["validation_fraction"] == 0.0 and m.dataset["sizes"]["train"] == 120
    # The schema is strict: a tampered record is refused, naming the field.
    raw = json.loads((out / "seed0.json").read_text())
    raw["tuning"]["table"][0]["status"] = "great"
    (out / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(ModelFileError, match=r"tuning.table\[0\].status: must be 'ok', 'diverged' or 'failed'"):
        load_model(out / "bad.json")
    raw["tuning"]["table"][0]["status"] = "ok"
    raw["tuning"]["extra"] = 1
    (out / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(ModelFileError, match=r"tuning: must have exactly the fields .*unknown \['extra'\]"):
        load_model(out / "bad.json")


@pytest.mark.parametrize("argv, match", [
    (["--tune", "--tune-grid", "eta=abc"], "Tuning axis 'eta': value 'abc' is not a finite number > 0"),
    (["--tune", "--tune-grid", "lr=1"], "Unknown tuning axis 'lr'; the axes are eta, beta, hidden, sink"),
    (["--tune", "--tune-grid", "hidden=0"], "Tuning axis 'hidden': value '0' is not hidden layer sizes >= 1"),
    (["--tune", "--tune-grid", "sink=maybe"], "Tuning axis 'sink': value 'maybe' is not yes or no"),
    (["--tune", "--tune-grid", "eta"], "--tune-grid takes NAME=V1,V2,..."),
    (["--tune", "--tune-grid", "eta=1", "--tune-grid", "eta=2"], "names the axis 'eta' twice"),
    (["--tune-grid", "eta=1"], "--tune-grid, --tune-workers apply to --tune; add --tune"),
    (["--tune", "--early-stopping", "3", "--validation-fraction", "0.2"], "Early stopping does not combine"),
])
def test_bad_tuning_input_is_one_line(tmp_path, capsys, argv, match):
    rc = cli_main(["train", *QUICK, *argv, "--tune-workers", "0", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o" / "seed0.json").exists()


def test_grid_values_are_checked_from_python_too():
    assert parse_grid(["hidden=16,32x16", "sink=yes"]) == {"hidden": [[16], [32, 16]], "sink": [True]}
    assert check_grid({"eta": [1, 2.5]}) == {"eta": [1.0, 2.5]}
    with pytest.raises(InvalidInputError, match="above the limit of 256"):
        check_grid({"eta": list(range(1, 20)), "beta": list(range(1, 20))})
    with pytest.raises(InvalidInputError, match="repeats a value"):
        check_grid({"eta": [1, 1.0]})
    with pytest.raises(InvalidInputError, match="applies to a named topology"):
        dc.tune("iris", grid={"sink": [True]}, topology=[("x0", "y0")], config=_config(), workers=0)


def test_the_default_grid_searches_the_sink_only_where_the_default_has_none():
    from deepcircuit.learning.config import TrainingConfig
    from deepcircuit.studies.tune import default_grid

    cfg = TrainingConfig(eta=30.0, beta=1.0)
    with_sink = default_grid(cfg, (10,), "layered+sink")
    assert "sink" not in with_sink and with_sink["eta"] == [10.0, 30.0, 90.0]
    assert with_sink["hidden"] == [[10], [20]] and with_sink["beta"] == [1.0, 0.1]
    assert default_grid(cfg, (10,), "layered")["sink"] == [False, True]
