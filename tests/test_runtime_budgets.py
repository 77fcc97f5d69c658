"""Every integrator has a work budget: a stiff network fails clearly instead of running for ever."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from deepcircuit import NetworkBatch, get_task
from deepcircuit.errors import InvalidInputError, SimulationError
from deepcircuit.learning.model_file import ModelFile, save_model
from deepcircuit.substrates import Schedule, initial_states
from deepcircuit.substrates.ode import OdeSubstrate
from deepcircuit.substrates.spice import SpiceSubstrate


def _run(sub, net, schedule=None):
    xor = get_task("xor")
    s0 = initial_states(np.random.default_rng(0), 1, xor.inputs, net.roles)
    return sub.run(NetworkBatch.of(net), xor.inputs, s0, schedule or Schedule(), targets=xor.targets)


def test_adaptive_reference_stops_at_its_evaluation_budget(deep_net):
    stiff = deep_net.with_weights(deep_net.weights * 1e6)
    t0 = time.perf_counter()
    with pytest.raises(SimulationError, match=r"stiff: 20000 right-hand-side evaluations of the adaptive "
                                              r"reference .* did not reach t = 50 tau \(stopped at t = "):
        _run(OdeSubstrate(method="adaptive", rtol=1e-10, atol=1e-12, max_evaluations=20_000), stiff)
    assert time.perf_counter() - t0 < 20
    # The same budget is ample for the network itself.
    res = _run(OdeSubstrate(method="adaptive", rtol=1e-10, atol=1e-12, max_evaluations=20_000), deep_net)
    assert res.free.meta["n_function_evaluations"] <= 20_000


def test_adaptive_reference_stops_at_its_time_budget(deep_net):
    stiff = deep_net.with_weights(deep_net.weights * 1e6)
    t0 = time.perf_counter()
    with pytest.raises(SimulationError, match=r"stiff: 0.2 s of wall time"):
        _run(OdeSubstrate(method="adaptive", max_evaluations=None, max_seconds=0.2), stiff)
    assert time.perf_counter() - t0 < 10


def test_budgets_are_checked(deep_net):
    with pytest.raises(InvalidInputError, match="max_evaluations"):
        OdeSubstrate(method="adaptive", max_evaluations=0)
    with pytest.raises(InvalidInputError, match="max_seconds"):
        SpiceSubstrate(max_seconds=-1)


def test_spice_transient_stops_at_its_wall_time_budget(deep_net, tmp_path):
    long = Schedule(free_steps=100_000, nudged_steps=100_000)
    t0 = time.perf_counter()
    with pytest.raises(SimulationError, match=r"wall-time budget of max_seconds = 0.5 s .*netlist is saved in"):
        _run(SpiceSubstrate(max_seconds=0.5, netlist_dir=tmp_path), deep_net, long)
    assert time.perf_counter() - t0 < 10
    # ngspice is usable again at once (the halted run was cleaned up).
    assert _run(SpiceSubstrate(), deep_net, Schedule(free_steps=100, nudged_steps=100)).free.status != "diverged"


def test_compare_names_the_budget_in_one_line(tmp_path, deep_net):
    """The CLI turns the budget error into one line and exit status 2."""
    model = tmp_path / "stiff.json"
    save_model(model, ModelFile(deep_net.with_weights(deep_net.weights * 1e6), seed=0, task="xor"))
    p = subprocess.run([sys.executable, "-m", "deepcircuit", "compare", str(model), "--substrates", "ode",
                        "--reference-max-evaluations", "5000"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("deepcircuit compare: error: stiff: 5000 right-hand-side evaluations")
    assert "--reference-max-evaluations" in p.stderr
    p = subprocess.run([sys.executable, "-m", "deepcircuit", "compare", str(model), "--reference-max-seconds", "-1"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "max_seconds" in p.stderr and p.stderr.count("\n") == 1


def test_compare_names_the_substrate_that_failed():
    """A comparison of several substrates says which one ran out of budget (was: the bare error)."""
    pytest.importorskip("brian2")
    from pathlib import Path

    model = Path(__file__).resolve().parents[1] / "netlists" / "models" / "xor_trained.json"
    spec = "brian2:target=numpy;max_seconds=0.2"
    p = subprocess.run([sys.executable, "-m", "deepcircuit", "compare", str(model), "--substrates", f"ode,{spec}"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith(f"deepcircuit compare: error: substrate {spec!r}: The Brian2 run (target numpy) "
                               "ran past its wall-time budget of max_seconds = 0.2 s")
