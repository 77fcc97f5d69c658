"""The SPICE substrate: agreement with the accurate ODE reference, plain ngspice, faults, training."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from deepcircuit import (Network, Roles, Schedule, SimulationError, SubstrateUnavailableError,
                         TrainingConfig, get_substrate, get_task, initial_states, train)
from deepcircuit.substrates.chip import NonIdealities
from deepcircuit.substrates.clamps import ClampModel
from deepcircuit.cli import main as cli_main
from deepcircuit.learning.model_file import load_model
from deepcircuit.substrates import ngspice_shared
from deepcircuit.substrates.ode import OdeSubstrate

spice = pytest.importorskip("deepcircuit.substrates.spice")
pytestmark = pytest.mark.spice

REPO = Path(__file__).resolve().parents[1]
NETLISTS = REPO / "netlists"


@pytest.fixture(scope="module")
def agreement_case():
    """Trained, pruned and random XOR networks, the same initial states, the ODE reference."""
    task = get_task("xor")
    nets = [load_model(NETLISTS / "models" / f"{n}.json").network for n in ("xor_trained", "xor_pruned")]
    nets += [Network.create(Roles(3, (5,), 1), rng=k, init_scale=0.5) for k in range(3)]
    s0 = initial_states(np.random.default_rng(0), len(nets), task.inputs, nets[0].roles)
    ref = OdeSubstrate(method="adaptive").run(nets, task.inputs, s0, Schedule(), targets=task.targets)
    assert ref.free.settled.all() and ref.nudged.settled.all()
    return task, nets, s0, ref


def _deviation(result, ref):
    return {ph: np.abs(getattr(result, ph).final - getattr(ref, ph).final).max(axis=-1)
            for ph in ("free", "nudged")}


def test_limiter_matches_the_accurate_reference(agreement_case):
    # Target (issue 6): stiff limiter within 0.005 V_scale of the ideal projection, settled states.
    task, nets, s0, ref = agreement_case
    res = get_substrate("spice", clamp="limiter").run(nets, task.inputs, s0, Schedule(), targets=task.targets)
    dev = _deviation(res, ref)
    assert dev["free"].max() < 0.005 and dev["nudged"].max() < 0.005, dev
    assert 0 < res.free.meta["clamp_overshoot_max"] < 0.005


def test_diode_clamp_matches_the_reference_within_its_softness(agreement_case):
    # Target (issue 6): diode clamps (the default until issue 13) within 0.03 V_scale. Measured:
    # <= 0.013 on the pruned and random networks and <= 0.026 on every nudged state; but the trained network of seed 6
    # settles, for inputs (0, 0) and (1, 1) from these initial states, into other equilibria of
    # the free phase (deviation ~1.0): the soft clamp moves the boundaries between basins of this
    # multistable network. That difference is measured and reported (docs/spice.md), not hidden.
    task, nets, s0, ref = agreement_case
    res = get_substrate("spice", clamp="diode").run(nets, task.inputs, s0, Schedule(), targets=task.targets)
    dev = _deviation(res, ref)
    assert dev["free"][1:].max() < 0.03, dev
    assert dev["nudged"].max() < 0.03, dev
    assert (dev["free"][0] > 0.5).sum() <= 2
    over = res.free.meta["clamp_overshoot_max"]
    assert 0.001 < over < 0.03  # the diode's forward drop, measured and reported in meta


def test_trajectory_form(agreement_case):
    task, nets, s0, ref = agreement_case
    sched = Schedule(dt=0.1, free_steps=40, nudged_steps=30)
    # tight tolerance so that the free-only run below takes the same path (these trained networks
    # amplify ngspice's step-size differences between two transients of different length)
    res = get_substrate("spice", reltol=1e-6).run(nets[:2], task.inputs, s0[:2], sched, targets=task.targets)
    assert res.free.states.shape == (2, 4, 41, 9) and res.nudged.states.shape == (2, 4, 31, 9)
    np.testing.assert_allclose(res.free.times, 0.1 * np.arange(41), atol=1e-12)
    np.testing.assert_allclose(res.nudged.times, 0.1 * np.arange(31), atol=1e-12)
    # the nudged phase starts exactly from the free end state (same transient)
    np.testing.assert_allclose(res.nudged.states[:, :, 0], res.free.final, atol=1e-9)
    np.testing.assert_allclose(res.free.states[:, :, 0, 3:], s0[:2, :, 3:], atol=1e-6)
    assert (res.free.states[..., :3] == task.inputs[None, :, None, :]).all()
    assert res.free.substrate == "spice" and res.free.meta["units"]["tau"] == pytest.approx(1e-6)
    only_free = get_substrate("spice", reltol=1e-6).run(nets[:2], task.inputs, s0[:2], sched)
    assert only_free.nudged is None
    np.testing.assert_allclose(only_free.free.final, res.free.final, atol=1e-4)


def _parse_ngspice_print(out: str, n_cols: int) -> np.ndarray:
    rows = [ln.split() for ln in out.splitlines() if re.match(r"^\d+\t", ln)]
    return np.array([[float(x) for x in r[1:1 + n_cols]] for r in rows])


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="needs the ngspice program")
@pytest.mark.parametrize("name", ["xor_trained", "xor_pruned", "xor_trained_limiter", "xor_trained_precision"])
def test_example_netlists_run_in_plain_ngspice_as_in_pyspice(name):
    path = NETLISTS / f"{name}.cir"
    text = path.read_text()
    proc = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    t, volts = spice.simulate_netlist(text)
    nodes = list(volts)
    printed = _parse_ngspice_print(proc.stdout, len(nodes))
    tran = next(ln.split() for ln in text.splitlines() if ln.startswith(".tran"))
    step, stop = float(tran[1]), float(tran[2])
    grid = step * np.arange(printed.shape[0])
    assert printed.shape == (round(stop / step) + 1, len(nodes))
    ours = np.stack([np.interp(grid, t, volts[n]) for n in nodes], axis=1)
    v_scale = float(re.search(r"V_scale = (\S+) V", text).group(1))
    # print shows 7 significant digits; both interpolate linearly. Measured: <= 2e-5 V_scale (the
    # ngspice program and the shared library take slightly different time steps).
    assert np.abs(printed - ours).max() / v_scale < 1e-4


def test_missing_ngspice_library(monkeypatch):
    from PySpice.Spice.NgSpice.Shared import NgSpiceShared

    monkeypatch.setattr(ngspice_shared, "_shared", None)
    monkeypatch.setattr(NgSpiceShared, "LIBRARY_PATH", "libngspice-not-installed{}.so")
    with pytest.raises(SubstrateUnavailableError, match=re.escape("apt-get install libngspice0-dev ngspice")):
        ngspice_shared.load_ngspice()


def test_convergence_failure_names_phase_and_saves_netlist(tmp_path):
    task = get_task("xor")
    net = Network.create(Roles(3, (5,), 1), rng=1)
    s0 = initial_states(np.random.default_rng(0), 1, task.inputs, net.roles)
    # A diode with emission coefficient 0.001 is very stiff, and a time-step tolerance far too
    # tight for the nudge switch makes ngspice give up: "Timestep too small" (the stiff diode
    # alone runs since the source nodes have .ic values, issue 10).
    sub = get_substrate("spice", clamp=ClampModel(kind="diode", emission=0.001), options={"trtol": 1e-7}, netlist_dir=tmp_path)
    sub.epoch = 7
    with pytest.raises(SimulationError, match=r"nudged phase of epoch 7.*Timestep too small.*Likely cause") as info:
        sub.run(net, task.inputs, s0, Schedule(free_steps=100, nudged_steps=100), targets=task.targets)
    saved = re.search(r"saved in (\S+) ", str(info.value)).group(1)
    assert Path(saved).parent == tmp_path and "D_lo_s0p0_h0" in Path(saved).read_text()
    # the shared library is left clean: the next run works
    ok = get_substrate("spice").run(net, task.inputs, s0, Schedule(free_steps=20, nudged_steps=0))
    assert ok.free.states.shape[2] == 21


def test_harmless_stderr_lines_are_not_errors():
    harmless = ["Using SPARSE 1.3 as Direct Linear Solver", "Note: No compatibility mode selected!",
                "Warning: can't find the initialization file spinit.", "Doing analysis at TEMP = 27.000000"]
    fatal = ["doAnalyses: TRAN:  Timestep too small; time = 5e-19, timestep = 6.25e-20",
             "run simulation(s) aborted", "Error: no such vector v(x)"]
    assert not any(spice._FATAL.search(ln) for ln in harmless)
    assert all(spice._FATAL.search(ln) for ln in fatal)
    # and a real run whose stderr holds such a line goes through (PySpice 1.5 would raise)
    ng = ngspice_shared.load_ngspice()
    ng._stderr.append("Using SPARSE 1.3 as Direct Linear Solver")
    task = get_task("xor")
    net = Network.create(Roles(3, (5,), 1), rng=1)
    s0 = initial_states(np.random.default_rng(0), 1, task.inputs, net.roles)
    res = get_substrate("spice").run(net, task.inputs, s0, Schedule(free_steps=20, nudged_steps=0))
    assert np.isfinite(res.free.states).all()


def test_nonidealities_change_the_circuit_not_the_code():
    task = get_task("xor")
    net = Network.create(Roles(3, (5,), 1), rng=1, init_scale=0.5)
    s0 = initial_states(np.random.default_rng(0), 1, task.inputs, net.roles)
    sched = Schedule(free_steps=200, nudged_steps=0)
    base = get_substrate("spice").run(net, task.inputs, s0, sched).free.final
    runs = {}
    for key, ni in {"mismatch": NonIdealities(mismatch=0.2, seed=1), "mismatch2": NonIdealities(mismatch=0.2, seed=1),
                    "quant": NonIdealities(bits=2, weight_range=1.0),
                    "parasitic": NonIdealities(parasitic_capacitance=1e-12)}.items():
        runs[key] = get_substrate("spice", nonideal=ni).run(net, task.inputs, s0, sched).free.final
    np.testing.assert_array_equal(runs["mismatch"], runs["mismatch2"])  # seeded: same circuit, same result
    for key in ("mismatch", "quant"):
        assert np.abs(runs[key] - base).max() > 1e-3, key
    # parasitic C doubles tau: the same path, slower, so after 10 tau the states differ
    assert np.abs(runs["parasitic"] - base).max() > 1e-3
    noisy = get_substrate("spice", nonideal=NonIdealities(noise=0.05, seed=3)).run(net, task.inputs, s0, sched).free
    dev = np.abs(noisy.final - base)[..., net.roles.free]
    # Noise moves every run (ngspice 39 ignores the noise seed, so runs differ); it perturbs the
    # states slightly, though in this multistable network a neuron may now and then flip to
    # another equilibrium, so the typical deviation, not the largest, is bounded.
    assert dev.max() > 1e-4
    assert np.median(dev) < 0.02


def test_short_in_the_loop_training_tracks_the_ode(tmp_path):
    cfg = TrainingConfig.preset("paper").replace(epochs=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ode = train("xor", seeds=[0, 1], config=cfg)
        spi = train("xor", seeds=[0, 1], config=cfg, substrate="spice")
    assert spi.substrate == "spice"
    for k in range(2):
        a, b = ode.networks[k].weights, spi.networks[k].weights
        a0 = ode.initial_networks[k].weights
        # after 5 epochs the weights moved, and moved the same way on both substrates
        assert np.linalg.norm(b - a) < 0.25 * np.linalg.norm(a - a0), k  # measured 0.13
    np.testing.assert_allclose(spi.histories[0].mse, ode.histories[0].mse, atol=0.03)


def test_train_cli_on_spice_gives_the_same_json(tmp_path, capsys):
    import json

    outs = {}
    for sub in ("ode", "spice"):
        assert cli_main(["train", "--substrate", sub, "--epochs", "2", "--free-steps", "100", "--nudged-steps",
                         "100", "--quiet", "--json", "--out", str(tmp_path / sub)]) == 0
        outs[sub] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(outs["ode"]) == set(outs["spice"]) and outs["spice"]["substrate"] == "spice"


@pytest.mark.slow
def test_200_epoch_training_memory_stays_flat():
    marks = {}

    def rss(epoch, batch, result):
        if epoch + 1 in (10, 200):
            marks[epoch + 1] = float(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train("xor", seeds=[0], config=TrainingConfig.preset("default"), substrate="spice", callbacks=[rss])
    assert marks[200] - marks[10] < 20, marks  # MB; measured about +2.5 MB over 190 runs


@pytest.mark.parametrize("family,params", [("deep-leaky", {"gamma": 0.2}), ("ep-asym", None), ("ep-sym", None)])
def test_other_families_match_the_reference(family, params):
    task = get_task("xor")
    nets = [Network.create(Roles(3, (5,), 1), family=family, params=params, rng=k, init_scale=0.3)
            for k in range(2)]
    if nets[0].family_.has_bias_vector:
        nets = [n.with_weights(n.weights, np.r_[np.zeros(3), np.linspace(-0.2, 0.3, 6)]) for n in nets]
    s0 = initial_states(np.random.default_rng(1), 2, task.inputs, nets[0].roles)
    sched = Schedule(free_steps=400, nudged_steps=200)
    ref = OdeSubstrate(method="adaptive").run(nets, task.inputs, s0, sched, targets=task.targets)
    res = get_substrate("spice", clamp="limiter").run(nets, task.inputs, s0, sched, targets=task.targets)
    for ph in ("free", "nudged"):
        a, b = getattr(res, ph), getattr(ref, ph)
        assert np.abs(a.final - b.final).max() < 0.005, ph  # end states (the issue-6 target)
        assert np.abs(a.states - b.states).max() < 0.01, ph  # whole waveforms (reltol 1e-4)


def test_batch_split_over_runs_gives_the_same_result():
    task = get_task("xor")
    nets = [Network.create(Roles(3, (5,), 1), rng=k, init_scale=0.5) for k in range(3)]
    s0 = initial_states(np.random.default_rng(2), 3, task.inputs, nets[0].roles)
    sched = Schedule(free_steps=200, nudged_steps=100)
    ni = NonIdealities(mismatch=0.1, seed=4)
    one = get_substrate("spice", nonideal=ni, reltol=1e-6).run(nets, task.inputs, s0, sched, targets=task.targets)
    split = get_substrate("spice", nonideal=ni, reltol=1e-6, networks_per_run=2).run(
        nets, task.inputs, s0, sched, targets=task.targets)
    for ph in ("free", "nudged"):
        a, b = getattr(one, ph), getattr(split, ph)
        assert a.states.shape == b.states.shape and b.settled.shape == (3, 4)
        np.testing.assert_allclose(a.states, b.states, atol=1e-3)  # same chips; measured 3e-4 (time steps)
    assert split.free.meta["time_points"].__len__() == 2


def test_a_noisy_chip_keeps_its_mismatch_from_run_to_run(monkeypatch):
    # The noise seed advances every run (fresh noise each epoch), but the mismatch draw is the
    # chip itself: two runs of one noisy, mismatched substrate must write the same transconductors.
    import deepcircuit.substrates.spice as spice_module

    texts = []
    compile_netlist = spice_module.compile_netlist

    def recording(*args, **kwargs):
        net = compile_netlist(*args, **kwargs)
        texts.append(net.text.splitlines())
        return net

    monkeypatch.setattr(spice_module, "compile_netlist", recording)
    task = get_task("xor")
    net = Network.create(Roles(3, (3,), 1), rng=2, init_scale=0.5)
    s0 = initial_states(np.random.default_rng(0), 1, task.inputs, net.roles)
    sub = get_substrate("spice", nonideal=NonIdealities(mismatch=0.3, noise=0.01, seed=4))
    for _ in range(2):
        sub.run(net, task.inputs, s0, Schedule(free_steps=20, nudged_steps=0))
    assert len(texts) == 2
    synapses = [[ln for ln in t if ln.startswith("G")] for t in texts]
    seeds = [[ln for ln in t if ln.startswith(".options")] for t in texts]
    assert synapses[0] and synapses[0] == synapses[1]
    assert seeds[0] != seeds[1]  # a new noise seed
