"""OTA synapses, the supply, the precision clamp and device counts in the netlist (no simulator)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from deepcircuit import InvalidInputError, Network, Roles, Schedule, Trajectory, get_task
from deepcircuit.substrates.chip import CircuitUnits, TransconductorModel
from deepcircuit.substrates.circuit import compile_netlist, device_counts
from deepcircuit.substrates.clamps import ClampModel
from deepcircuit.studies.hardware_figures import area_um2, format_si, settling_times


@pytest.fixture
def small():
    task = get_task("xor")
    net = Network.create(Roles(3, (2,), 1), rng=3, init_scale=0.5)
    s0 = np.full((1, 4, net.roles.n_neurons), 0.05)
    return task, net, s0


def _lines(text, prefix):
    return [ln for ln in text.splitlines() if ln.startswith(prefix)]


def test_ota_synapse_lines_supply_and_meas(small):
    task, net, s0 = small
    ota = TransconductorModel(kind="ota", linear_range=0.5, gain=50.0, offset=0.0, branches=2.0)
    units = CircuitUnits(v_scale=4.0, supply_headroom=0.5)
    n = compile_netlist(net, task.inputs, s0, Schedule(free_steps=10, nudged_steps=5), targets=task.targets,
                        units=units, transconductor=ota, clamp="diode")
    text = n.text
    assert not _lines(text, "G_syn_")
    g, W = units.transconductance, net.weights
    edges = [(int(i), int(j)) for i, j in np.argwhere(net.mask)]
    syn = _lines(text, "B_syn_s0p0_")
    assert len(syn) == len(edges)
    names = net.roles.names
    i, j = edges[0]
    line = next(ln for ln in syn if ln.startswith(f"B_syn_s0p0_{names[i]}_{names[j]} "))
    # I = gm * V_L * tanh((v_i + v_os) / V_L) from node i into node j (DEEP: charge conserving)
    assert line == (f"B_syn_s0p0_{names[i]}_{names[j]} s0p0_{names[i]} s0p0_{names[j]} I = "
                    f"{g * W[i, j] * 2.0:.12g}*tanh((V(s0p0_{names[i]})+0)/2)")
    # The output resistances at a node: gain / |gm| per OTA output there (in and out), lumped.
    k = net.roles.n_inputs
    g_out = sum(abs(g * W[a, b]) / 50.0 for a, b in edges if k in (a, b))
    r = next(ln for ln in text.splitlines() if ln.startswith(f"R_out_s0p0_{names[k]} "))
    assert float(r.split()[-1]) == pytest.approx(1.0 / g_out, rel=1e-10)
    # One supply per array at V_scale + headroom, its quiescent current branches * sum |gm| V_L.
    assert _lines(text, "V_dd_s0p3 ") == ["V_dd_s0p3 vdd_s0p3 0 DC 4.5"]
    i_q = float(_lines(text, "I_q_s0p0 ")[0].split()[-1])
    assert i_q == pytest.approx(2.0 * sum(abs(g * W[a, b]) * 2.0 for a, b in edges), rel=1e-10)
    assert n.meta["supplies"] == [f"v_dd_s0p{p}" for p in range(4)]
    assert len(_lines(text, ".meas tran q_free_")) == 4 and len(_lines(text, ".meas tran q_nudged_")) == 4
    assert "i(v_dd_s0p0)" in _lines(text, ".save ")[0]


def test_vccs_netlist_has_no_supply(small):
    task, net, s0 = small
    n = compile_netlist(net, task.inputs, s0, Schedule(free_steps=10, nudged_steps=0), clamp="diode")
    assert not _lines(n.text, "V_dd_") and not _lines(n.text, ".meas") and n.meta["supplies"] == []
    assert _lines(n.text, "G_syn_s0p0_")


def test_ota_offsets_are_per_network_and_seeded():
    ota = TransconductorModel(kind="ota", offset=1e-3, seed=4)
    a = ota.offsets(3, 5)
    np.testing.assert_array_equal(a[2], ota.offsets(1, 5, first=2)[0])
    assert 0.5e-3 < a.std() < 2e-3
    assert not np.any(TransconductorModel(kind="ota", offset=0).offsets(2, 3))


def test_precision_clamp_elements_and_supply(small):
    task, net, s0 = small
    clamp = ClampModel(kind="precision", opamp_gain=1e3, opamp_quiescent=2e-6, opamp_swing=1.5)
    n = compile_netlist(net, task.inputs, s0, Schedule(free_steps=10, nudged_steps=0), clamp=clamp)
    text = n.text
    assert ".model DPREC D(IS=1e-14 N=1 RS=10)" in text
    assert _lines(text, "B_oplo_s0p0_h0 ") == ["B_oplo_s0p0_h0 s0p0_h0_oplo 0 V = 1.5*tanh(1000*(0-V(s0p0_h0))/1.5)"]
    assert _lines(text, "D_phi_s0p0_h0 ") == ["D_phi_s0p0_h0 s0p0_h0 s0p0_h0_ophi DPREC"]
    # Two op-amps per free node draw their quiescent current from the array's supply.
    n_free = net.roles.n_neurons - net.roles.n_inputs
    assert float(_lines(text, "I_q_s0p0 ")[0].split()[-1]) == pytest.approx(2 * n_free * 2e-6)
    sup = _lines(text, "B_sup_clamp_s0p0 ")[0]
    assert sup.count("max(-i(B_oplo_s0p0_") == n_free


def test_device_counts_per_array(small):
    task, net, s0 = small
    n_free = net.roles.n_neurons - net.roles.n_inputs
    for clamp, kind in (("diode", "vccs"), ("limiter", "ota"), ("precision", "ota")):
        n = compile_netlist(net, task.inputs, s0, Schedule(free_steps=10, nudged_steps=5), targets=task.targets,
                            clamp=clamp, transconductor=kind)
        d = n.meta["devices"][0]
        supplied = kind == "ota" or clamp == "precision"
        assert d == {"transconductors": int(net.mask.sum()), "capacitors": n_free, "switches": 1,
                     "clamps": 2 * n_free, "resistors": 1,
                     # 2 inputs + bias + target (+ VDD) of the array, the shared rail and nudge control
                     "sources": 4 + supplied + 2}
        assert d == device_counts(n.text, "s0p2")


def test_area_from_documented_device_areas():
    d = {"transconductors": 10, "capacitors": 2, "switches": 1, "clamps": 4, "resistors": 1, "sources": 5}
    assert area_um2(d, clamp="diode", capacitance=1e-12) == 10 * 400 + 2 * 500 + 10 + 4 * 25 + 100
    assert area_um2(d, clamp="precision", capacitance=2e-12) == 10 * 400 + 2 * 1000 + 10 + 4 * 1525 + 100


def test_settling_time_is_last_exit_from_the_one_percent_band():
    roles = Roles(2, (1,), 1)
    times = np.arange(6) * 0.5
    states = np.zeros((1, 2, 6, 4))
    states[..., 0] = 0.5
    states[..., 1] = 1.0
    states[0, 0, :, 2] = [0.0, 0.5, 0.7, 0.695, 0.7, 0.7]   # leaves the band at t = 1.0 (index 2 inside)
    states[0, 1, :, 3] = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3]      # never outside: 0 s
    tr = Trajectory(times, states, roles, "free", "spice", np.array([[True, False]]), 1e-4,
                    np.array([[False, False]]), "", {"units": {"tau": 2e-6}})
    t = settling_times(tr)
    assert t[0, 0] == pytest.approx(1.0 * 2e-6)
    assert np.isnan(t[0, 1])  # not settled: no settling time
    no_units = Trajectory(times, states, roles, "free", "ode", np.ones((1, 2), bool), 1e-4, np.zeros((1, 2), bool))
    assert settling_times(no_units) is None


def test_bad_transconductor_and_clamp_options():
    with pytest.raises(InvalidInputError, match="transconductor.*'vccs', 'ota'"):
        TransconductorModel.of("mosfet")
    with pytest.raises(InvalidInputError, match="linear_range"):
        TransconductorModel(kind="ota", linear_range=0)
    with pytest.raises(InvalidInputError, match="opamp_gain"):
        ClampModel(kind="precision", opamp_gain=0.5)


def test_format_si():
    assert format_si(1.234e-9, "J") == "1.23 nJ"
    assert format_si(None, "J") == "-" and format_si(float("nan"), "s") == "-"
    assert re.fullmatch(r"25 us", format_si(2.5e-5, "s"))
