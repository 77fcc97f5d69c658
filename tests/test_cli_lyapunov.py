"""`deepcircuit lyapunov` run for real on a model trained by `deepcircuit train`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from deepcircuit.stability.certificates import gershgorin
from deepcircuit.stability.equilibrium import analyse_equilibrium
from deepcircuit.learning.model_file import load_model
from deepcircuit.stability import RECORDED

DC = [sys.executable, "-m", "deepcircuit"]


def run(*args):
    return subprocess.run(DC + list(args), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("lyap")
    p = run("train", "--task", "xor", "--model", "deep", "--hidden", "3", "--epochs", "4",
            "--free-steps", "200", "--nudged-steps", "200", "--out", str(out), "--json", "--quiet",
            "--record-certificates")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])["models"][0]


def test_train_records_certificates(trained):
    m = load_model(trained)
    extra = m.history["extra"]
    assert set(RECORDED) <= set(extra) and all(len(extra[k]) == 4 for k in RECORDED)
    assert extra["gershgorin_margin_row"][-1] == gershgorin(m.network)["row_dominance"].min_margin


def test_lyapunov_json(trained):
    p = run("lyapunov", trained, "--json")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    d = json.loads(lines[-1])
    assert "negative_diagonal" in p.stdout and "monotone" in p.stdout  # the readable table
    m = load_model(trained)
    g = gershgorin(m.network)
    assert d["task"] == "xor" and d["family"] == "deep" and d["substrate"] == "ode"
    assert set(d["gershgorin"]) == {"negative_diagonal", "row_dominance", "column_dominance"}
    for name, entry in d["gershgorin"].items():
        assert entry["holds"] == g[name].holds and entry["failing"] == list(g[name].failing)
    # DEEP conserves activity among free neurons: column dominance can never hold strictly.
    assert d["gershgorin"]["column_dominance"]["holds"] is False
    assert d["certified"] is False
    assert isinstance(d["hurwitz"], bool) and isinstance(d["lyapunov_function"], str)
    assert d["lyapunov_certified"] == all(t["certified"] for t in d["trajectories"])
    assert set(d["lyapunov_scope"].split("/")) == {t["scope"] for t in d["trajectories"]}
    trajs = d["trajectories"]
    assert [t["phase"] for t in trajs] == ["free"] * 4 + ["nudged"] * 4
    assert [t["input"] for t in trajs[:4]] == [[0, 0], [0, 1], [1, 0], [1, 1]]
    for t in trajs:
        assert isinstance(t["monotone"], bool) and t["max_increase"] >= 0
        assert t["decay_rate"] is None or isinstance(t["decay_rate"], float)
        assert t["function"] in d["lyapunov_function"]
    free = [t["equilibrium"] for t in trajs[:4]]
    assert d["hurwitz"] == all(e["hurwitz"] for e in free)
    finite = [e["spectral_abscissa"] for e in free if e["spectral_abscissa"] is not None]
    assert d["spectral_abscissa"] == (max(finite) if finite else None)
    # The reported linearisation is the library's at the reported equilibrium state.
    for t in trajs:
        e = t["equilibrium"]
        beta, target = (0.0, None) if t["phase"] == "free" else (10.0, [float(t["input"][0] != t["input"][1])])
        a = analyse_equilibrium(m.network, e["state"], beta=beta, target=target)
        assert a.held == e["held"] and a.spectral_abscissa == pytest.approx(-np.inf if e["spectral_abscissa"] is None else e["spectral_abscissa"])
        assert set(e["neurons"]) | set(e["held"]) == {"h0", "h1", "h2", "y0"}
        assert e["state"][:2] == t["input"] and e["state"][2] == 1.0


def test_lyapunov_ep_sym_uses_its_energy(tmp_path):
    p = run("train", "--task", "and", "--model", "ep-sym", "--hidden", "2", "--epochs", "2",
            "--free-steps", "100", "--nudged-steps", "100", "--out", str(tmp_path), "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    path = json.loads(p.stdout.strip().splitlines()[-1])["models"][0]
    d = json.loads(run("lyapunov", path, "--json").stdout.strip().splitlines()[-1])
    assert d["task"] == "and" and d["lyapunov_function"] == "energy" and d["lyapunov_certified"] is True
    assert d["lyapunov_scope"] == "global"
    assert d["monotone"] is True and all(t["monotone"] for t in d["trajectories"])


def test_lyapunov_table_without_json(trained):
    p = run("lyapunov", trained, "--function", "1-norm")
    assert p.returncode == 0, p.stderr
    assert "Gershgorin conditions" in p.stdout and "held at bound" in p.stdout
    assert not p.stdout.strip().splitlines()[-1].startswith("{")
    assert "V = 1-norm (not certified)" in p.stdout


def test_lyapunov_bad_input_gives_one_clear_line(trained, tmp_path):
    p = run("lyapunov", str(tmp_path / "missing.json"))
    assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "deepcircuit-model", "vers')
    p = run("lyapunov", str(bad), "--json")
    assert p.returncode == 2 and "not valid JSON" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = run("lyapunov", trained, "--task", "not")
    assert p.returncode == 2 and "Task 'not' has 2 inputs (bias included) and 1 outputs, but the network has 3" in p.stderr
    p = run("lyapunov", trained, "--bound-tol", "-1")
    assert p.returncode == 2 and "'bound_tol' parameter must be in [0.0, inf]; got -1.0" in p.stderr
    p = run("lyapunov", trained, "--function", "energy")
    assert p.returncode == 2 and "needs the 'ep-sym' family" in p.stderr and "Traceback" not in p.stderr
