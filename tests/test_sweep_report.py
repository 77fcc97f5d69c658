"""Sweep reports: Wilson intervals, tables and plots from a results data set."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from scipy.stats import binomtest

from deepcircuit.cli import main
from deepcircuit.studies.sweep.report import summary_table, swept_parameters, wilson_interval, write_sweep_report
from deepcircuit.studies.sweep.run import gather


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (1, 1), (17, 20), (50, 200)])
def test_wilson_interval_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_interval_of_no_runs_is_nan():
    lo, hi = wilson_interval(0, 0)
    assert lo != lo and hi != hi


def _write_rows(out, rows):
    (out / "runs").mkdir(parents=True)
    for i, r in enumerate(rows):
        row = {"id": f"{i:016x}", "task": "xor", "model": "deep", "hidden": "5", "seed": i % 4,
               "error": None, **r}
        (out / "runs" / f"{row['id']}.json").write_text(json.dumps(row))
    gather(out)


def test_report_tables_plots_and_ode_reference(tmp_path):
    rows = []
    for m, accs in ((0.0, [1, 1, 1, 1]), (0.1, [1, 1, 0.75, 0.5])):
        rows += [{"substrate": "spice", "spice:mismatch": m, "status": "ok", "train_accuracy": a} for a in accs]
    rows += [{"substrate": "ode", "spice:mismatch": None, "status": "ok", "train_accuracy": 1.0}] * 3
    rows += [{"substrate": "ode", "spice:mismatch": None, "status": "failed", "train_accuracy": None,
              "error": "SimulationError: timestep too small"}]
    _write_rows(tmp_path, rows)
    df = pd.read_parquet(tmp_path / "results")
    assert swept_parameters(df) == ["substrate", "spice:mismatch"]
    t = summary_table(df, "spice:mismatch").set_index("spice:mismatch")
    assert t.loc[0.1, "solved"] == 2 and t.loc[0.1, "runs"] == 4
    assert (t.loc[0.1, "wilson_low"], t.loc[0.1, "wilson_high"]) == pytest.approx(wilson_interval(2, 4))
    assert t.loc[0.1, "mean_accuracy"] == pytest.approx(0.8125)
    assert t.loc["-", "runs"] == 4 and t.loc["-", "solved"] == 3  # the ODE runs, failed one included
    assert t.loc["-", "mean_accuracy"] == pytest.approx(1.0)      # ... but not in the accuracy mean
    path = write_sweep_report(tmp_path)
    text = path.read_text()
    assert "## `spice:mismatch`" in text and "beside the ideal ODE" in text
    assert "ODE (ideal): mean accuracy 1 ± 0 over 3 runs" in text
    assert "| SimulationError: timestep too small | 1 |" in text
    for name in ("substrate.png", "spice_mismatch.png", "nonideal_spice_mismatch.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 1000


def test_cli_sweep_report(tmp_path, capsys):
    _write_rows(tmp_path, [{"substrate": "ode", "status": "ok", "train_accuracy": a, "hidden": h}
                           for a, h in ((1.0, "3"), (0.5, "5"))])
    assert main(["sweep-report", str(tmp_path)]) == 0
    assert "report:" in capsys.readouterr().out and (tmp_path / "plots" / "hidden.png").exists()
    assert main(["sweep-report", str(tmp_path / "nothing")]) == 2
    assert "has no sweep results" in capsys.readouterr().err
