"""OTA synapses, precision clamps and figures of merit simulated in ngspice."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deepcircuit import Schedule, get_substrate, get_task, initial_states
from deepcircuit.substrates.chip import TransconductorModel
from deepcircuit.cli import main as cli_main
from deepcircuit.studies.hardware_figures import figures_of_merit, summary
from deepcircuit.learning.model_file import load_model

spice = pytest.importorskip("deepcircuit.substrates.spice")
pytestmark = pytest.mark.spice

MODELS = Path(__file__).resolve().parents[1] / "netlists" / "models"


@pytest.fixture(scope="module")
def seed6():
    """The trained seed-6 XOR network, its initial states, and the accurate ODE reference."""
    task = get_task("xor")
    net = load_model(MODELS / "xor_trained.json").network
    s0 = initial_states(np.random.default_rng(0), 1, task.inputs, net.roles)
    sched = Schedule(free_steps=1000, nudged_steps=300)  # OTA networks settle within 50 tau, not 20
    ref = get_substrate("ode", method="adaptive").run(net, task.inputs, s0, sched, targets=task.targets)
    return task, net, s0, sched, ref


def test_ota_in_its_linear_range_is_the_vccs(seed6):
    task, net, s0, sched, _ = seed6
    wide = TransconductorModel(kind="ota", linear_range=1e3, gain=1e9, offset=0.0)
    a = get_substrate("spice", clamp="limiter").run(net, task.inputs, s0, sched, targets=task.targets)
    b = get_substrate("spice", clamp="limiter", transconductor=wide).run(net, task.inputs, s0, sched,
                                                                         targets=task.targets)
    np.testing.assert_allclose(b.free.final, a.free.final, atol=1e-3)
    np.testing.assert_allclose(b.nudged.final, a.nudged.final, atol=1e-3)


def test_precision_clamp_is_as_faithful_as_the_limiter(seed6):
    task, net, s0, sched, ref = seed6
    fr = net.roles.free
    dev = {}
    for clamp in ("diode", "limiter", "precision"):
        r = get_substrate("spice", clamp=clamp).run(net, task.inputs, s0, sched, targets=task.targets)
        dev[clamp] = max(np.abs(r.free.final[..., fr] - ref.free.final[..., fr]).max(),
                         np.abs(r.nudged.final[..., fr] - ref.nudged.final[..., fr]).max())
    # Measured: diode 1.0 (another equilibrium for 2 of 4 inputs), limiter 6e-4, precision 2e-5.
    assert dev["precision"] < 1e-3
    assert dev["precision"] <= dev["limiter"]
    assert dev["diode"] > 0.1


def test_ota_energy_is_static_power_times_settling_time(seed6):
    task, net, s0, sched, _ = seed6
    # A passive clamp, so that the OTAs are the only consumers. The former OTA defaults (linear
    # range 1 V_scale, gain 100), far enough from ideal that the nudge moves some node by 1 %:
    # with the present ones this network's outputs already sit at their targets.
    ota = TransconductorModel(kind="ota", linear_range=1.0, gain=100.0)
    r = get_substrate("spice", transconductor=ota, clamp="limiter").run(net, task.inputs, s0, sched,
                                                                        targets=task.targets)
    f = figures_of_merit(r)
    assert np.all(np.isfinite(f["settling_time_s"]))
    assert np.all(f["settling_time_s"] < sched.free_duration * 1e-6)
    # Class-A OTAs: the supply current is the quiescent current whatever they output.
    expected = f["static_power_W"] * f["settling_time_s"]
    np.testing.assert_allclose(f["energy_per_inference_J"], expected, rtol=1e-3)
    assert np.all(f["energy_per_step_J"] >= f["energy_per_inference_J"])  # equal: the nudge moved no node 1 %
    assert np.any(f["energy_per_step_J"] > f["energy_per_inference_J"])
    assert f["meas_agreement"] < 1e-4  # our integral of ngspice's current vs ngspice's own .meas INTEG
    np.testing.assert_allclose(f["peak_power_W"], f["static_power_W"], rtol=1e-3)
    s = summary(r)
    assert s["devices"]["transconductors"] == int(net.mask.sum()) and s["area_um2"] > 0
    assert s["settling_time_s"] == pytest.approx(float(np.max(f["settling_time_s"])))


def test_precision_clamp_supply_current_is_counted(seed6):
    task, net, s0, sched, _ = seed6
    r = get_substrate("spice", clamp="precision").run(net, task.inputs, s0, sched)
    f = figures_of_merit(r)
    # The op-amps' quiescent current, plus what the lower clamps push into their nodes.
    assert np.all(f["mean_power_W"] >= f["static_power_W"] * (1 - 1e-6))
    assert np.any(f["peak_power_W"] > 1.01 * f["static_power_W"])
    assert f["energy_per_step_J"] is None  # free phase only


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="needs the ngspice program")
def test_exported_ota_netlist_runs_in_plain_ngspice(tmp_path):
    out = tmp_path / "ota.cir"
    assert cli_main(["export", str(MODELS / "xor_trained.json"), "--out", str(out), "--transconductor", "ota",
                     "--clamp", "precision", "--free-steps", "200", "--nudged-steps", "100"]) == 0
    proc = subprocess.run(["ngspice", "-b", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # ngspice exits 0 even when the analysis failed: check that rows and measurements came out.
    rows = [int(m) for m in re.findall(r"No. of Data Rows : (\d+)", proc.stdout)]
    assert rows and min(rows) > 100
    q = {m.group(1): float(m.group(2)) for m in re.finditer(r"(q_(?:free|nudged)_s0p\d)\s*=\s*(\S+)", proc.stdout)}
    assert len(q) == 8 and all(v < 0 for v in q.values())  # charge drawn from every array's supply
    # At least the quiescent current of the OTAs and op-amps flows for the whole free phase (10 us).
    text = out.read_text()
    i_q = float(re.search(r"^I_q_s0p0 vdd_s0p0 0 DC (\S+)$", text, re.M).group(1))
    assert -q["q_free_s0p0"] >= i_q * 200 * 0.05e-6 * (1 - 1e-3)
    t, _ = spice.simulate_netlist(text)  # the shared library runs the same file to its end
    assert t[-1] == pytest.approx(300 * 0.05e-6, rel=1e-9)


def test_compare_json_has_hardware_figures(tmp_path, capsys):
    rc = cli_main(["compare", str(MODELS / "xor_trained.json"), "--substrates", "ode,spice", "--transconductor",
                   "ota", "--free-steps", "1000", "--nudged-steps", "300", "--json", "--quiet"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ode, sp = out["ode"], out["spice:transconductor=ota"]
    assert ode["energy_per_inference_J"] is None and ode["devices"] is None
    assert sp["energy_per_inference_J"] > 0 and sp["energy_per_step_J"] >= sp["energy_per_inference_J"]
    assert sp["settling_time_s"] > 0 and sp["devices"]["transconductors"] == 48


def test_train_cli_with_ota_on_spice(tmp_path, capsys):
    rc = cli_main(["train", "--substrate", "spice", "--transconductor", "ota", "--clamp", "limiter", "--epochs", "2",
                   "--free-steps", "100", "--nudged-steps", "50", "--out", str(tmp_path), "--json", "--quiet"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["substrate"] == "spice" and len(out["models"]) == 1


def test_figures_of_a_batch_split_over_runs(seed6):
    task, net, s0, sched, _ = seed6
    nets = [net, net.with_weights(net.weights * 0.5)]
    s0 = np.concatenate([s0, s0])
    per_net = get_substrate("spice", transconductor="ota", clamp="limiter").run(nets, task.inputs, s0, sched)
    one = get_substrate("spice", transconductor="ota", clamp="limiter", networks_per_run=None).run(
        nets, task.inputs, s0, sched)
    a, b = figures_of_merit(per_net), figures_of_merit(one)
    assert a["energy_per_inference_J"].shape == (2, 4) and len(a["devices"]) == 2
    np.testing.assert_allclose(a["static_power_W"], b["static_power_W"], rtol=1e-12)
    # Same circuits; the two runs take different time steps, so the settling times (on the dt grid)
    # and energies agree to the grid.
    np.testing.assert_allclose(a["energy_per_inference_J"], b["energy_per_inference_J"], rtol=0.05)
    assert a["devices"] == b["devices"]


def test_figures_of_presentations_split_over_runs(seed6):
    """Supplied netlists split by presentation (one per netlist, as a large network runs them)
    give the figures of one netlist holding them all, block by block, in process or in workers."""
    task, net, s0, sched, _ = seed6
    nets = [net, net.with_weights(net.weights * 0.5)]
    s0 = np.concatenate([s0, s0])
    whole = get_substrate("spice", transconductor="ota", clamp="limiter", presentations_per_run=None).run(
        nets, task.inputs, s0, sched, targets=task.targets)
    b = figures_of_merit(whole)
    assert len(whole.free.meta["supply"]) == 2  # one run per network
    for workers in (1, 2):
        sub = get_substrate("spice", transconductor="ota", clamp="limiter", presentations_per_run=1,
                            workers=workers)
        try:
            split = sub.run(nets, task.inputs, s0, sched, targets=task.targets)
        finally:
            sub.close()
        sup = split.free.meta["supply"]
        assert len(sup) == 8 and {(x["networks"], x["presentations"]) for x in sup} == {
            ((s, s + 1), (p, p + 1)) for s in range(2) for p in range(4)}
        a = figures_of_merit(split)
        for key in ("static_power_W", "energy_per_inference_J", "energy_per_step_J", "peak_power_W", "mean_power_W"):
            assert a[key].shape == (2, 4) and np.all(np.isfinite(a[key])), key
        np.testing.assert_allclose(a["static_power_W"], b["static_power_W"], rtol=1e-12)
        # Same circuits, other time steps: settling times (on the dt grid) and energies agree to the grid.
        np.testing.assert_allclose(a["energy_per_inference_J"], b["energy_per_inference_J"], rtol=0.05)
        np.testing.assert_allclose(a["energy_per_step_J"], b["energy_per_step_J"], rtol=0.05)
        assert a["meas_agreement"] < 1e-4


def _ota_on_ode_trained_xor(seeds):
    """XOR networks trained as `deepcircuit train --task xor` trains them (5 hidden, 200 epochs on
    the ODE), each run on the ODE and on OTA synapses (defaults, and the former 1 / 100) from the
    initial states `compare` uses: {seed: (ode settled, {label: free trajectory})}."""
    import warnings

    from deepcircuit import train

    task = get_task("xor")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nets = train(task, seeds=seeds).networks
    former = TransconductorModel(kind="ota", linear_range=1.0, gain=100.0)
    out = {}
    for seed, net in zip(seeds, nets):
        s0 = initial_states(np.random.default_rng(seed), 1, task.inputs, net.roles)
        sched = Schedule()
        ode = get_substrate("ode").run(net, task.inputs, s0, sched, targets=task.targets)
        runs = {label: get_substrate("spice", transconductor=t).run(net, task.inputs, s0, sched)
                for label, t in (("default", "ota"), ("former", former))}
        out[seed] = (bool(np.all(ode.free.settled)), ode.free.final, runs)
    return out


def test_ota_defaults_settle_what_settles_on_the_ode():
    # What docs/hardware.md promises of the OTA defaults (linear range 4 V_scale, gain 1000): the
    # default XOR network of seed 0 settles on the ODE and on OTA synapses, within 0.05 V_scale of
    # the ODE's equilibrium (measured 0.029). With the former defaults it did not settle (0.32 off);
    # then no inference energy exists, and the report says why and what the phase cost.
    settled, ode_final, runs = _ota_on_ode_trained_xor([0])[0]
    assert settled
    new, old = runs["default"], runs["former"]
    assert np.all(new.free.settled)
    assert np.abs(new.free.final - ode_final).max() < 0.05
    assert summary(new)["unsettled"] is None and summary(new)["energy_per_inference_J"] > 0
    assert not np.all(old.free.settled)
    s = summary(old)
    assert s["energy_per_inference_J"] is None and s["energy_free_phase_J"] > 0
    assert "not settled" in s["unsettled"] and "slow approach" in s["unsettled"]


@pytest.mark.slow
def test_ota_defaults_settle_what_settles_on_the_ode_ten_seeds():
    # The full measurement of docs/hardware.md: of seeds 0-9, 8 settle on the ODE; 7 of those settle
    # on the default OTA circuit (seed 5 approaches the rail too slowly), 2 with the former defaults.
    res = _ota_on_ode_trained_xor(list(range(10)))
    on_ode = [k for k, (settled, _, _) in res.items() if settled]
    new = [k for k in on_ode if np.all(res[k][2]["default"].free.settled)]
    old = [k for k in on_ode if np.all(res[k][2]["former"].free.settled)]
    assert len(on_ode) >= 7 and len(new) >= len(on_ode) - 1 and len(new) > len(old)
