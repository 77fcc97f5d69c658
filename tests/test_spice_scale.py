"""SPICE at any size: chunked printing of exported netlists, presentations per run, worker processes.

Pins: a ``.control`` block never hands ngspice's ``print`` more vectors than it takes (it then
prints nothing and still exits 0), and the reader checks every row and column came back; running
presentations in several netlists or several processes gives the same states as one netlist;
a random digits-sized (64-100-10) network on SPICE with the limiter clamp predicts what the ODE
predicts.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from deepcircuit import Network, Roles, Schedule, SimulationError, get_task, initial_states
from deepcircuit.substrates import printed_tables
from deepcircuit.substrates.circuit import compile_netlist
from deepcircuit.substrates.printed_tables import read_printed_tables
from deepcircuit.errors import InvalidInputError
from deepcircuit.substrates.ode import OdeSubstrate

spice = pytest.importorskip("deepcircuit.substrates.spice")
pytestmark = pytest.mark.spice
needs_program = pytest.mark.skipif(shutil.which("ngspice") is None, reason="needs the ngspice program")


def xor_case(P=4, seed=0):
    task = get_task("xor")
    roles = Roles(3, (5,), 1)
    net = Network.create(roles, rng=1, init_scale=0.5)
    inputs = np.resize(task.inputs, (P, 3))
    targets = np.resize(task.targets, (P, 1))
    s0 = initial_states(np.random.default_rng(seed), 1, inputs, roles)
    return net, inputs, targets, s0


def test_control_block_prints_in_chunks():
    net, inputs, _, s0 = xor_case(P=200)  # 6 free nodes x 200 copies = 1200 vectors
    nl = compile_netlist(net, inputs, s0, Schedule(free_steps=4, nudged_steps=0), control=True)
    prints = [ln.split()[1:] for ln in nl.text.splitlines() if ln.startswith("print ")]
    assert [len(p) for p in prints] == [500, 500, 200]
    assert [v for p in prints for v in p] == [f"v({n})" for n in nl.nodes]


@needs_program
def test_printed_tables_are_read_back_and_checked(monkeypatch, tmp_path):
    monkeypatch.setattr(printed_tables, "PRINT_CHUNK", 5)
    net, inputs, targets, s0 = xor_case(P=2)
    nl = compile_netlist(net, inputs, s0, Schedule(free_steps=40, nudged_steps=20), targets=targets,
                         control=True, clamp="limiter", options={"reltol": 1e-4})
    assert nl.text.count("\nprint ") == 3  # 12 nodes in tables of 5, 5, 2
    path = tmp_path / "x.cir"
    path.write_text(nl.text)
    out = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=120).stdout
    t, volts = read_printed_tables(out, nl)
    assert volts.shape == (12, 61) and np.allclose(t, nl.step * np.arange(61))
    ts, vs = spice.simulate_netlist(nl.text)
    ours = np.stack([np.interp(t, ts, vs[n]) for n in nl.nodes])
    assert np.abs(ours - volts).max() < 1e-4  # V_scale = 1 V; print shows 7 digits
    lines = out.splitlines()
    cut = "\n".join(lines[: len(lines) - 5])  # the last table lost its last rows
    with pytest.raises(SimulationError, match="rows"):
        read_printed_tables(cut, nl)
    with pytest.raises(SimulationError, match="no column for 12 of 12"):
        read_printed_tables("print: too\n", nl)
    with pytest.raises(SimulationError, match="too many args"):
        read_printed_tables(out + "\nprint: too many args.\n", nl)


def test_auto_presentations_per_run_follows_circuit_size():
    sub = spice.SpiceSubstrate()
    assert sub._presentations_per_run(4, 1, Roles(3, (5,), 1)) == 4  # logic gates: one netlist
    assert sub._presentations_per_run(64, 1, Roles(65, (100,), 10)) == 1
    assert spice.SpiceSubstrate(presentations_per_run=8)._presentations_per_run(5, 1, Roles(3, (5,), 1)) == 5
    with pytest.raises(InvalidInputError, match="presentations_per_run"):
        spice.SpiceSubstrate(presentations_per_run=0)
    with pytest.raises(InvalidInputError, match="workers"):
        spice.SpiceSubstrate(workers=0)


def test_split_presentations_and_workers_match_one_netlist():
    net, inputs, targets, s0 = xor_case(P=4)
    sched = Schedule(free_steps=200, nudged_steps=100)
    tight = {}
    whole = spice.SpiceSubstrate(presentations_per_run=None, **tight).run(net, inputs, s0, sched, targets=targets)
    split = spice.SpiceSubstrate(presentations_per_run=1, **tight).run(net, inputs, s0, sched, targets=targets)
    assert split.free.meta["ngspice_runs"] == 4
    for a, b in ((split.free, whole.free), (split.nudged, whole.nudged)):
        assert a.states.shape == b.states.shape
        # The netlists take different time steps (ngspice's step control, reltol 1e-4): measured
        # 3.2e-3 at most along the trajectories (around the nudge switch), 1e-4 at the ends.
        np.testing.assert_allclose(a.states, b.states, atol=5e-3)
        np.testing.assert_allclose(a.final, b.final, atol=1e-3)
        assert np.array_equal(a.settled, b.settled)
    with spice.SpiceSubstrate(presentations_per_run=1, workers=2, **tight) as sub:
        par = sub.run(net, inputs, s0, sched, targets=targets)
        assert sub._runner is not None and len(sub.runner.worker_pids()) == 2
    assert sub._runner is None
    # the same netlists in other processes: the same numbers
    np.testing.assert_array_equal(par.free.states, split.free.states)
    np.testing.assert_array_equal(par.nudged.states, split.nudged.states)


def digits_sized_agreement(P):
    rng = np.random.default_rng(0)
    roles = Roles(65, (100,), 10)
    net = Network.create(roles, family="deep-leaky", params={"gamma": 1.0}, topology="layered", rng=0,
                         init_scale=0.05)
    inputs = np.column_stack([rng.uniform(0, 1, (P, 64)), np.ones(P)])
    s0 = initial_states(rng, 1, inputs, roles)
    sched = Schedule(free_steps=400, nudged_steps=0)  # 20 tau: this network settles
    ode = OdeSubstrate().run(net, inputs, s0, sched).free
    spi = spice.SpiceSubstrate(clamp="limiter").run(net, inputs, s0, sched).free
    assert spi.meta["ngspice_runs"] == P  # auto: one presentation per netlist at this size
    assert ode.settled.all() and spi.settled.all()
    out_ode, out_spi = ode.outputs[0], spi.outputs[0]
    margin = np.sort(out_ode, axis=1)[:, -1] - np.sort(out_ode, axis=1)[:, -2]
    assert margin.min() > 0.005
    assert np.abs(spi.final - ode.final).max() < 2e-3
    assert np.array_equal(out_spi.argmax(axis=1), out_ode.argmax(axis=1))


def test_random_digits_sized_network_agrees_with_ode():
    digits_sized_agreement(2)


@pytest.mark.slow
def test_random_digits_sized_network_agrees_with_ode_many_samples():
    digits_sized_agreement(24)
