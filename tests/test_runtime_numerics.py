"""Numerical garbage is reported, never returned as a result (issue 10, sections 4 and 7)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from deepcircuit import Network, NetworkBatch, Roles, TrainingConfig, get_task, train
from deepcircuit.substrates.chip import CircuitUnits, NonIdealities
from deepcircuit.substrates.circuit import standalone_netlist
from deepcircuit.substrates.clamps import ClampModel
from deepcircuit.studies.comparison import compare_inference
from deepcircuit.errors import DivergenceError, InvalidInputError
from deepcircuit.limits import V_SCALE_RANGE
from deepcircuit.stability.lyapunov import check_phases, stability_verdict
from deepcircuit.learning.model_file import ModelFile, save_model
from deepcircuit.studies.report import comparison_rows, unsettled_notes, write_report
from deepcircuit.substrates import Schedule, initial_states
from deepcircuit.substrates.ode import OdeSubstrate
from deepcircuit.substrates.spice import SpiceSubstrate

DC = [sys.executable, "-m", "deepcircuit"]
SHORT = Schedule(free_steps=100, nudged_steps=100)


def _run(sub, net, schedule=SHORT):
    xor = get_task("xor")
    s0 = initial_states(np.random.default_rng(0), 1, xor.inputs, net.roles)
    return sub.run(NetworkBatch.of(net), xor.inputs, s0, schedule, targets=xor.targets)


def oscillator() -> Network:
    """The ep-asym ring h0 -> h1 -> y0 -> h0, weights -4, biases 2.5: Jacobian at s = 0.5 has
    eigenvalues -5 and 1 +- 3.46i, and the trajectories circle for ever."""
    r = Roles(3, (2,), 1)
    net = Network.create(r, family="ep-asym", topology=[("h0", "h1"), ("h1", "y0"), ("y0", "h0")], rng=0)
    b = np.zeros(r.n_neurons)
    b[r.free] = 2.5
    return net.with_weights(np.where(net.mask, -4.0, 0.0), b)


# -- SPICE: node voltages outside the rails are a divergence ----------------------------------
def test_spice_voltages_far_outside_the_rails_are_a_divergence(deep_net):
    ok = _run(SpiceSubstrate(), deep_net)
    assert not ok.free.diverged.any() and ok.free.meta["clamp_overshoot_max"] < 0.25
    bad = _run(SpiceSubstrate(), deep_net.with_weights(deep_net.weights * 1e6))
    assert bad.free.diverged.all() and bad.free.status == "diverged"
    assert not bad.free.settled.any()
    assert re.search(r"node voltages [\d.e+]+ V_scale outside the rails .*rail_margin = 0.25", bad.free.message)
    assert bad.free.meta["diverged_why"][0].startswith("node voltages")
    with pytest.raises(DivergenceError, match="outside the rails"):
        bad.free.raise_if_diverged()


def test_compare_refuses_a_diverged_substrate(deep_net, monkeypatch):
    import deepcircuit.studies.comparison as comparison

    # The adaptive reference takes minutes on this stiff network (its own budget is tested in
    # test_runtime_budgets); the check under test comes after it, so a cheap one stands in.
    monkeypatch.setattr(comparison, "_reference",
                        lambda reference, **options: ("ode (adaptive reference)", OdeSubstrate()))
    with pytest.raises(DivergenceError, match="substrate 'spice': free phase diverged .* outside the rails"):
        compare_inference(deep_net.with_weights(deep_net.weights * 1e6), "xor", ["spice"],
                          schedule=Schedule(free_steps=20, nudged_steps=20),
                          reference_rtol=1e-6, reference_atol=1e-8)


# -- SPICE: one failing seed does not sink the batch ------------------------------------------
def test_one_failing_seed_is_reported_and_the_others_train(monkeypatch, tmp_path):
    """ngspice really fails (the netlist of seed index 1 gets an element with an undefined
    model from epoch 1 on); seeds 0 and 2 finish, seed 1 is frozen, reported with the epoch,
    the phase and the netlist kept."""
    import deepcircuit.substrates.spice as spice_mod
    from deepcircuit.cli.train import _failed_seeds

    sub = SpiceSubstrate(netlist_dir=tmp_path)
    real = spice_mod.compile_netlist

    def broken_for_seed_1(*args, first_network=0, **kw):
        net = real(*args, first_network=first_network, **kw)
        if first_network == 1 and sub.runs >= 2:  # runs counts this run already: epoch >= 1
            from dataclasses import replace
            net = replace(net, text=net.text.replace("\n.end", "\nD_broken s0p0_h0 0 NO_SUCH_MODEL\n.end"))
        return net

    monkeypatch.setattr(spice_mod, "compile_netlist", broken_for_seed_1)
    cfg = TrainingConfig.preset().replace(epochs=3, free_steps=100, nudged_steps=100)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        r = train("xor", seeds=[0, 1, 2], config=cfg, substrate=sub)
    assert r.diverged[0] is None and r.diverged[2] is None
    msg = r.diverged[1]
    assert msg.startswith("free phase diverged in epoch 1 (ngspice failed in the free phase")
    assert "could not find a valid modelname" in msg or "no_such_model" in msg.lower()
    kept = re.search(r"netlist is saved in (\S+\.cir)", msg).group(1)
    assert "NO_SUCH_MODEL" in open(kept).read()
    for k in (0, 2):  # trained through every epoch
        assert len(r.histories[k]) == 3 and not np.allclose(r.networks[k].weights, r.initial_networks[k].weights)
    failed = _failed_seeds(r)
    assert list(failed) == ["1"] and failed["1"]["netlist"] == kept
    assert failed["1"]["epoch"] == 1 and failed["1"]["phase"] == "free"
    # A single network still raises (nothing else to carry on with).
    with pytest.raises(Exception, match="ngspice"):
        broken = SpiceSubstrate(netlist_dir=tmp_path)
        broken.runs = 5
        monkeypatch.setattr(spice_mod, "compile_netlist", lambda *a, **k: replace_text(real(*a, **k)))
        _run(broken, r.networks[0])


def replace_text(net):
    from dataclasses import replace

    return replace(net, text=net.text.replace("\n.end", "\nD_broken s0p0_h0 0 NO_SUCH_MODEL\n.end"))


# -- exported netlists run in plain ngspice at every setting ----------------------------------
def _rows_in_plain_ngspice(text, tmp_path):
    path = tmp_path / "net.cir"
    path.write_text(text)
    p = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=120)
    rows = [ln.split() for ln in p.stdout.splitlines() if re.match(r"^\d+\s", ln)]
    return p, rows


GRID_CI = [(vs, clamp, ni) for vs in (0.1, 50.0, 1000.0) for clamp in ("diode", "limiter")
           for ni in (False, True)] + [(1.0, "diode-is1e-15", False)]
# V_scale across the whole range a circuit accepts (limits.V_SCALE_RANGE, 0.1-1000 V), ends included.
GRID_FULL = [(vs, clamp, ni) for vs in (V_SCALE_RANGE[0], 0.3, 1.0, 10.0, 50.0, 100.0, 300.0, V_SCALE_RANGE[1])
             for clamp in ("diode", "limiter", "diode-n0.1", "diode-rs0", "limiter-1e7", "diode-is1e-15")
             for ni in (False, True)]


def _clamp(spec: str) -> ClampModel:
    return {"diode": ClampModel("diode"), "limiter": ClampModel("limiter"),
            "diode-n0.1": ClampModel("diode", emission=0.1), "diode-rs0": ClampModel("diode", series_resistance=0),
            "limiter-1e7": ClampModel("limiter", stiffness=1e7),
            "diode-is1e-15": ClampModel("diode", saturation_current=1e-15)}[spec]


def _check_netlist_runs(deep_net, tmp_path, vs, clamp, nonideal):
    ni = NonIdealities(mismatch=0.1, bits=4, parasitic_capacitance=1e-13, noise=0.01) if nonideal else NonIdealities()
    if _clamp(clamp).deviation(CircuitUnits(v_scale=vs)) > ClampModel.MAX_DEVIATION:
        # A clamp that cannot hold [0, 1] at this V_scale (a 0.5 V diode drop at 1 V) is refused.
        with pytest.raises(InvalidInputError, match=r"the clamp must hold within 10 % of V_scale"):
            standalone_netlist(deep_net, "xor", schedule=SHORT, units=CircuitUnits(v_scale=vs),
                               clamp=_clamp(clamp), nonideal=ni)
        return
    net = standalone_netlist(deep_net, "xor", schedule=SHORT, units=CircuitUnits(v_scale=vs),
                             clamp=_clamp(clamp), nonideal=ni)
    p, rows = _rows_in_plain_ngspice(net.text, tmp_path)
    # ngspice exits 0 even when the analysis failed: every row must come out, with every node.
    assert p.returncode == 0, p.stderr[-800:]
    assert len(rows) == SHORT.free_steps + SHORT.nudged_steps + 1, (p.stdout + p.stderr)[-800:]
    values = np.array([[float(v) for v in r[1:]] for r in rows])  # index, then one column per node
    assert values.shape[1] == len(net.nodes) and np.isfinite(values).all()
    assert values.min() > -0.25 * vs and values.max() < 1.25 * vs


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="needs the ngspice program")
@pytest.mark.parametrize("vs,clamp,nonideal", GRID_CI)
def test_exported_netlists_run_in_plain_ngspice(deep_net, tmp_path, vs, clamp, nonideal):
    _check_netlist_runs(deep_net, tmp_path, vs, clamp, nonideal)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ngspice") is None, reason="needs the ngspice program")
@pytest.mark.parametrize("vs,clamp,nonideal", GRID_FULL)
def test_exported_netlists_run_in_plain_ngspice_full_grid(deep_net, tmp_path, vs, clamp, nonideal):
    _check_netlist_runs(deep_net, tmp_path, vs, clamp, nonideal)


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="needs the ngspice program")
def test_export_at_v_scale_50_prints_every_row(deep_net, tmp_path):
    """The reported case: `export --v-scale 50` printed no rows ("Timestep too small" at t = 0)."""
    model = tmp_path / "m.json"
    save_model(model, ModelFile(deep_net, seed=0, task="xor",
                                config=TrainingConfig.preset().replace(free_steps=100, nudged_steps=100).to_dict()))
    out = tmp_path / "m.cir"
    p = subprocess.run(DC + ["export", str(model), "--out", str(out), "--v-scale", "50"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert ".ic V(rail_hi)=50" in out.read_text()
    p, rows = _rows_in_plain_ngspice(out.read_text(), tmp_path)
    assert len(rows) == 201 and "too small" not in p.stdout + p.stderr


def test_a_clamp_that_cannot_clamp_is_refused_in_one_line(deep_net, tmp_path):
    model = tmp_path / "m.json"
    save_model(model, ModelFile(deep_net, seed=0, task="xor"))
    p = subprocess.run(DC + ["export", str(model), "--out", str(tmp_path / "m.cir"), "--v-scale", "1",
                             "--diode-is", "1e-15"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert re.search(r"drop 5\d(\.\d)? % of V_scale = 1 V .* must hold within 10 % of V_scale", p.stderr)
    assert not (tmp_path / "m.cir").exists()
    assert ClampModel("limiter", stiffness=5).deviation(CircuitUnits()) == 0.2
    with pytest.raises(InvalidInputError, match="stiffness of at least 10"):
        SpiceSubstrate(clamp=ClampModel("limiter", stiffness=5))


# -- lyapunov: the verdict agrees with the trajectories --------------------------------------
def test_lyapunov_does_not_call_an_oscillator_stable(tmp_path):
    net = oscillator()
    model = tmp_path / "osc.json"
    save_model(model, ModelFile(net, seed=0, task="xor", config=TrainingConfig.preset(model="ep-asym").to_dict()))
    p = subprocess.run(DC + ["lyapunov", str(model), "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout.strip().splitlines()[-1])
    assert d["stability"] == "not-settled" and d["hurwitz"] is False
    assert "did not settle" in d["stability_basis"] and "not evidence" in d["stability_basis"]
    assert "free phase: NOT-SETTLED; based on trajectories: 4 of 4 did not settle" in p.stdout
    assert "stable (Hurwitz" not in p.stdout


def test_stability_verdict_rests_on_settled_trajectories(deep_net):
    res = OdeSubstrate().run(NetworkBatch.of(oscillator()), get_task("xor").inputs,
                             initial_states(np.random.default_rng(0), 1, get_task("xor").inputs, oscillator().roles),
                             Schedule())
    v = stability_verdict(check_phases(res, oscillator())["free"])
    assert v.status == "not-settled" and v.settled == 0 and v.total == 4
    # A network that settles keeps the linearisation's verdict, and says so.
    leaky = Network.create(Roles(3, (5,), 1), family="deep-leaky", params={"gamma": 1.0}, rng=1, init_scale=0.05)
    res = _run(OdeSubstrate(), leaky, Schedule(free_steps=1000, nudged_steps=0))
    v = stability_verdict(check_phases(res, leaky)["free"])
    assert res.free.settled.all() and v.status == "stable"
    assert v.basis.startswith("trajectories: all 4 settled; linearisation at the equilibria")


# -- compare and train mark accuracies read from unsettled states ----------------------------
def test_compare_marks_accuracy_from_unsettled_states(tmp_path):
    comp = compare_inference(oscillator(), "xor", ["ode"], schedule=Schedule(free_steps=100, nudged_steps=20))
    inf = comp.inference["ode"]
    assert inf.settled == [bool(x) for x in inf.result.free.settled[0]] and not any(inf.settled)
    assert inf.unsettled_presentations == [0, 1, 2, 3] and inf.accuracy_settled_only is None
    d = inf.to_dict()
    assert d["accuracy_from_unsettled_states"] is True and d["unsettled_presentations"] == [0, 1, 2, 3]
    row = comparison_rows(comp)[0]
    assert row[4].endswith("%*") and row[1].endswith("*")
    notes = unsettled_notes(comp)
    assert notes[0].startswith("* ode: presentation(s) [0, 1, 2, 3] of the free phase had not settled")
    from deepcircuit.studies.plots import plot_deviations, plot_substrate_trajectories

    assert [t.get_text() for t in plot_deviations(comp).axes[0].get_xticklabels()] == ["ode*"]
    assert "not settled: ode" in plot_substrate_trajectories(comp).axes[0].get_title()
    kept = []  # what an interrupted `compare --out` reports as finished
    report = write_report(comp, tmp_path / "rep", written=kept).read_text()
    assert [p.rsplit("/", 1)[1] for p in kept] == ["trajectories.png", "lyapunov.png", "deviations.png",
                                                   "weights.png", "report.md"]
    assert "%* |" in report and "accuracy on the settled presentations only: none settled" in report


def test_train_marks_final_error_from_unsettled_states(tmp_path):
    p = subprocess.run(DC + ["train", "--epochs", "2", "--seeds", "2", "--free-steps", "10", "--nudged-steps", "10",
                             "--out", str(tmp_path), "--json", "--quiet"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout.strip().splitlines()[-1])
    # 10 steps of 0.05 tau: nothing settles, and every error is marked.
    assert d["unsettled_presentations"] == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert d["train_error_from_unsettled_states"] == [True, True]
    assert re.search(r"^\s+0\s+\d+ %\*", p.stdout, re.M) and "* read from outputs that had not settled" in p.stdout
    saved = json.loads((tmp_path / "seed0.json").read_text())
    assert saved["metrics"]["unsettled_presentations"] == [0, 1, 2, 3]
