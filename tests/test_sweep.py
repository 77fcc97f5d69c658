"""``deepcircuit sweep`` on real Dask clusters: rows, determinism, resume after kill -9, failures, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from deepcircuit.cli import main
from deepcircuit.studies.sweep.run import dask_client, done_ids, execute_run, run_sweep
from deepcircuit.studies.sweep.spec import SweepSpec, expand

#: Tiny XOR runs: a few epochs of short phases (tens of milliseconds each once warm).
TINY = {"epochs": "3", "free_steps": "40", "nudged_steps": "40", "dt": "0.1"}
TINY_ARGV = ["--epochs", "3", "--free-steps", "40", "--nudged-steps", "40", "--dt", "0.1"]
TIMING = ["seconds", "pid"]


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2) as c:
        yield c


def _rows(out) -> pd.DataFrame:
    return pd.read_parquet(Path(out) / "results").sort_values("id").reset_index(drop=True)


def test_rows_hold_parameters_figures_and_models(client, tmp_path):
    runs = expand(SweepSpec({"hidden": ["3", "5"]}, TINY, seeds=2, compare_to="ode"))
    outcome = run_sweep(runs, tmp_path, client=client, compare_to="ode", progress=False)
    assert outcome.counts == {"ok": 4, "failed": 0, "diverged": 0} and outcome.skipped == 0
    df = _rows(tmp_path)
    assert sorted(df["id"]) == sorted(r.id for r in runs)
    for col in ("model", "hidden", "seed", "epochs", "substrate", "run_seed", "status", "train_accuracy",
                "mse", "sparsity", "settled_fraction", "lyapunov_monotone", "stability", "ode_deviation",
                "version", "seconds", "model_file"):
        assert col in df.columns, col
    assert set(df["hidden"]) == {"3", "5"} and set(df["seed"]) == {0, 1}
    assert df["train_accuracy"].between(0, 1).all() and (df["seconds"] > 0).all()
    assert df["ode_deviation"].notna().all() and (df["ode_deviation"] < 0.2).all()  # Euler vs adaptive
    # Each row's model file loads and records the run's derived seed.
    from deepcircuit.learning.model_file import load_model

    for _, row in df.iterrows():
        m = load_model(tmp_path / row["model_file"])
        assert m.seed == row["run_seed"] and m.network.roles.hidden == (int(row["hidden"]),)
    # duckdb reads the data set as is.
    duckdb = pytest.importorskip("duckdb")
    query = f"select count(*), avg(train_accuracy) from read_parquet('{tmp_path}/results/*.parquet')"
    [(n, acc)] = duckdb.connect().execute(query).fetchall()
    assert n == 4 and acc == pytest.approx(df["train_accuracy"].mean())


def test_one_and_two_workers_give_identical_rows(client, tmp_path):
    runs = expand(SweepSpec({"hidden": ["3", "5"]}, TINY, seeds=3))
    run_sweep(runs, tmp_path / "two", client=client, progress=False)
    run_sweep(runs, tmp_path / "one", workers=1, progress=False)
    two, one = _rows(tmp_path / "two"), _rows(tmp_path / "one")
    assert len(one) == 6 and one["pid"].nunique() == 1 and two["pid"].nunique() == 2
    pd.testing.assert_frame_equal(one.drop(columns=TIMING), two.drop(columns=TIMING))
    # ... and the same as running each run right here, in this process, one by one.
    here = pd.DataFrame([execute_run(r)["row"] for r in runs]).sort_values("id").reset_index(drop=True)
    assert here["train_accuracy"].tolist() == one["train_accuracy"].tolist()
    assert here["mse"].tolist() == one["mse"].tolist()


def test_failures_and_divergences_are_rows(client, tmp_path):
    runs = expand(SweepSpec({"topology": ["complete", str(tmp_path / "no-such-edges.txt")], "eta": ["100", "1e12"]},
                            TINY))
    outcome = run_sweep(runs, tmp_path / "s", client=client, progress=False)
    df = _rows(tmp_path / "s")
    assert len(df) == 4
    assert outcome.counts == {"ok": 1, "failed": 2, "diverged": 1}
    failed = df[df["status"] == "failed"]
    assert failed["error"].str.contains("InvalidInputError: --topology must be").all()
    div = df[df["status"] == "diverged"]
    assert div["error"].str.contains("diverged").all() and div["model_file"].notna().all()


def test_changing_the_grid_runs_only_new_points(client, tmp_path):
    first = expand(SweepSpec({"hidden": ["3", "5"]}, TINY))
    run_sweep(first, tmp_path, client=client, progress=False)
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()}
    second = expand(SweepSpec({"hidden": ["3", "5", "7"]}, TINY))
    outcome = run_sweep(second, tmp_path, client=client, progress=False)
    assert outcome.skipped == 2 and sum(outcome.counts.values()) == 1
    assert all((tmp_path / "runs" / name).stat().st_mtime_ns == t for name, t in stamp.items())
    assert sorted(_rows(tmp_path)["hidden"]) == ["3", "5", "7"]


def test_kill_9_then_rerun_completes_without_duplicates_or_losses(tmp_path):
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "deepcircuit", "sweep", "--out", str(out), "--grid", "hidden=2,3,4,5",
           "--seeds", "4", "--workers", "1", "--quiet", "--json", "--epochs", "200", "--free-steps", "100",
           "--nudged-steps", "100", "--dt", "0.1"]
    # 200 epochs: runs long enough that the kill lands mid-sweep even when this process is not
    # scheduled for a second or two (with 20 epochs all 16 had finished by then, on a loaded machine).
    env = dict(os.environ)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(done_ids(out)) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its Dask scheduler and workers, at once
        proc.wait()
    done = done_ids(out)
    assert 3 <= len(done) < 16
    for p in (out / "runs").glob("*.json"):  # every row file is complete
        json.loads(p.read_text())
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert rerun.returncode == 0, rerun.stderr
    assert summary["skipped"] == len(done) and summary["executed"] == 16 - len(done)
    df = pd.read_parquet(out / "results")
    assert len(df) == 16 and df["id"].is_unique
    assert sorted(zip(df["hidden"], df["seed"])) == sorted((h, s) for h in "2345" for s in range(4))
    assert not list(out.rglob(".*.tmp"))


def test_cli_dry_run_counts_and_estimates(tmp_path, capsys):
    rc = main(["sweep", "--out", str(tmp_path), "--grid", "hidden=3,5", "--grid", "model=deep,ep-asym",
               "--seeds", "3", "--dry-run", *TINY_ARGV])
    text = capsys.readouterr().out
    assert rc == 0
    assert "12 runs (0 done, 12 to run)" in text and "estimated time: about" in text
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("argv, match", [
    (["--grid", "colour=red"], "Unknown sweep option 'colour'"),
    (["--grid", "epochs=1,many"], "invalid int value: 'many'"),
    (["--grid", "spice:bits=4,six", "--substrate", "spice"], "option bits= must be an integer or none; got 'six'"),
    (["--grid", "ode:noise=0.1"], "substrate 'ode' cannot model noise="),
    (["--grid", "hidden"], "--grid takes NAME=V1,V2"),
    (["no-such-spec.toml"], "does not exist"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, match):
    rc = main(["sweep", "--out", str(tmp_path / "s"), *argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("deepcircuit sweep: error: ") and match in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_cli_exit_status_counts_failed_runs_and_report(client, tmp_path, capsys):
    argv = ["sweep", "--out", str(tmp_path), "--scheduler", client.scheduler.address, "--quiet", "--report", "--grid",
            f"topology=complete,{tmp_path / 'missing.txt'}", "--seeds", "2", *TINY_ARGV]
    rc = main(argv)
    text = capsys.readouterr().out
    assert rc == 2  # two failed runs
    assert "2 ok, 2 failed, 0 diverged" in text
    assert f"dask dashboard: {client.dashboard_link}" in text
    report = (tmp_path / "report.md").read_text()
    assert "## `topology`" in report and "## Failures" in report
    assert (tmp_path / "plots" / "topology.png").stat().st_size > 0


@pytest.mark.brian2
def test_brian2_runs_in_dask_worker_processes(client, tmp_path):
    """Brian2 must be imported in a worker's main thread (a plugin does it), then runs as rows."""
    pytest.importorskip("brian2")
    runs = expand(SweepSpec({}, {"substrate": "brian2", "epochs": "1", "free_steps": "20", "nudged_steps": "20",
                                 "dt": "0.1"}))
    outcome = run_sweep(runs, tmp_path, client=client, progress=False)
    df = _rows(tmp_path)
    assert outcome.counts["ok"] == 1, df["error"].tolist()
    assert df.loc[0, "substrate"] == "brian2" and 0 <= df.loc[0, "train_accuracy"] <= 1
