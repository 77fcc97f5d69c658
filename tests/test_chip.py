"""One description of the chip, two solvers: the ODE's element laws are the netlist's.

``ode:mismatch=0.3;seed=1`` and ``spice:mismatch=0.3;seed=1`` are the same chip: the same realised
weights (draw per network index and connection), the same OTA law, offsets and output
conductance. The unmarked tests pin the ODE side and the netlist text; the ``spice`` ones
simulate both and compare settled states.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from deepcircuit import Schedule, get_substrate, get_task, initial_states
from deepcircuit.errors import InvalidInputError
from deepcircuit.learning.model_file import load_model
from deepcircuit.learning.rule import weight_update
from deepcircuit.model.network import NetworkBatch
from deepcircuit.substrates.chip import Chip, NonIdealities
from deepcircuit.substrates.circuit import compile_netlist

MODELS = Path(__file__).resolve().parents[1] / "netlists" / "models"
SCHED = Schedule(dt=0.05, free_steps=600, nudged_steps=400, beta=0.5)


@pytest.fixture(scope="module")
def xor():
    task = get_task("xor")
    net = load_model(MODELS / "xor_trained.json").network
    s0 = initial_states(np.random.default_rng(0), 1, task.inputs, net.roles)
    return task, net, s0


def _netlist_weights(text: str, names, g: float, copy: str = "s0p0") -> dict:
    """Realised weights written in a netlist's G_syn lines: {(i, j): value / g}."""
    out = {}
    for m in re.finditer(rf"^G_syn_{copy}_(\w+?)_(\w+) \S+ \S+ \S+ 0 (\S+)$", text, re.M):
        out[(names.index(m.group(1)), names.index(m.group(2)))] = float(m.group(3)) / g
    return out


def test_the_ode_reads_the_netlists_draw_per_network_index(xor):
    task, net, s0 = xor
    chip = Chip.from_options(mismatch=0.3, seed=1, bits=5)
    nets = [net, net.with_weights(net.weights * 0.5)]
    batch = NetworkBatch.of(nets)
    W_eff = chip.effective_weights(batch.weights, batch.mask)
    g = chip.units.transconductance
    x0 = np.repeat(s0, 2, axis=0)
    for k in range(2):  # network k of a two-network batch, or alone as network k (first_network)
        text = compile_netlist(batch, task.inputs, x0, SCHED, nonideal=chip.nonideal).text
        alone = compile_netlist(nets[k], task.inputs, s0, SCHED, nonideal=chip.nonideal, first_network=k).text
        names = net.roles.names
        got = _netlist_weights(text, names, g, copy=f"s{k}p0")
        assert got == pytest.approx(_netlist_weights(alone, names, g))
        assert len(got) == net.n_connections
        for (i, j), w in got.items():
            assert w == pytest.approx(W_eff[k, i, j], rel=1e-11)
    # Another seed is another chip; the same seed the same one.
    other = Chip.from_options(mismatch=0.3, seed=2).effective_weights(batch.weights, batch.mask)
    assert not np.allclose(other, Chip.from_options(mismatch=0.3, seed=1).effective_weights(batch.weights, batch.mask))


def test_a_linear_chip_is_the_ideal_model_at_its_realised_weights(xor):
    task, net, s0 = xor
    chip = get_substrate("ode:mismatch=0.3;seed=1;bits=6")
    W_eff = chip.chip.effective_weights(net.weights[None], net.mask[None])[0]
    a = chip.run(net, task.inputs, s0, SCHED, targets=task.targets)
    b = get_substrate("ode").run(net.with_weights(W_eff), task.inputs, s0, SCHED, targets=task.targets)
    np.testing.assert_array_equal(a.nudged.states, b.nudged.states)
    assert np.abs(a.free.final - get_substrate("ode").run(net, task.inputs, s0, SCHED).free.final).max() > 0.01


def test_parasitic_capacitance_slows_the_chip_and_keeps_its_equilibrium(xor):
    task, net, s0 = xor
    slow = get_substrate("ode", parasitic_capacitance=1e-12)  # C_par = C: half the speed
    sched = Schedule(dt=0.05, free_steps=400, nudged_steps=0)
    a = slow.run(net, task.inputs, s0, sched).free
    b = get_substrate("ode").run(net, task.inputs, s0, Schedule(dt=0.025, free_steps=400, nudged_steps=0)).free
    np.testing.assert_allclose(a.states, b.states, atol=1e-12)  # t on the chip = t / 2 ideal


def test_ota_chip_compiled_loop_matches_the_adaptive_reference_and_keeps_the_rule_sums(xor):
    task, net, s0 = xor
    opts = "transconductor=ota;ota_linear_range=0.5;ota_offset=0.05;mismatch=0.2;seed=3"
    sched = Schedule(dt=0.05, free_steps=1500, nudged_steps=300, beta=0.5)
    e = get_substrate(f"ode:{opts}").run(net, task.inputs, s0, sched, targets=task.targets)
    r = get_substrate(f"ode:{opts};method=adaptive;rtol=1e-9;atol=1e-11").run(net, task.inputs, s0, sched,
                                                                              targets=task.targets)
    assert np.abs(e.free.final - r.free.final).max() < 2e-3  # Euler's O(dt) error near equilibrium
    assert e.free.meta["engine"] == "ota"
    # The OTA law is not the linear one, and record="final" gives the rule's exact sums.
    lin = get_substrate("ode:mismatch=0.2;seed=3").run(net, task.inputs, s0, sched, targets=task.targets)
    assert np.abs(lin.free.final - e.free.final).max() > 1e-3
    fin = get_substrate(f"ode:{opts};record=final").run(net, task.inputs, s0, sched, targets=task.targets)
    st = {"beta": 0.5, "nudged_steps": 300, "beta0": 0.0, "beta1": 1.0}
    for rule in ("stdp", "stdp2"):
        for x, y in zip(weight_update(rule, e, st), weight_update(rule, fin, st)):
            np.testing.assert_allclose(x, y, atol=1e-12)


def test_wide_linear_range_ota_is_the_vccs(xor):
    task, net, s0 = xor
    wide = get_substrate("ode:transconductor=ota;ota_linear_range=1000;ota_gain=1e9;ota_offset=0;mismatch=0.1")
    a = wide.run(net, task.inputs, s0, SCHED).free.final
    b = get_substrate("ode:mismatch=0.1").run(net, task.inputs, s0, SCHED).free.final
    assert np.abs(a - b).max() < 1e-5


@pytest.mark.parametrize("spec, match", [
    ("ode:noise=0.1", r"substrate 'ode' cannot model noise= \(the ODE is deterministic"),
    ("ode:clamp=limiter", "cannot model clamp= .*projection"),
    ("brian2:mismatch=0.1", "substrate 'brian2' cannot model the chip option mismatch=.*ode and spice"),
    ("spice:mismtach=0.3", r"unknown option\(s\) 'mismtach' \(did you mean 'mismatch'\?\); substrate 'spice' takes"),
    ("spice:bits=x", "option bits= must be an integer or none; got 'x'"),
    ("ode:seed=1.5", "option seed= must be an integer or none"),
    ("spice:units=3", "units= takes an object.*write its fields instead: v_scale"),
    ("spice:clamp", "must look like key=value"),
    ("spice:seed=1;seed=2", "seed= is given twice"),
    ("spce:mismatch=0.1", r"Unknown substrate 'spce'.*\(did you mean 'spice'\?\)"),
    ("ode:ota_gain=3", "need transconductor='ota'"),
    ("ode:mismatch=1e308", r"would reverse the sign of 50 % of the transconductors.*allowed: 0 <= mismatch <= 0.5"),
    ("spice:mismatch=0.8", r"would reverse the sign of 11 % .*allowed: 0 <= mismatch <= 0.5"),
])
def test_bad_specs_are_one_line(spec, match, xor):
    task, net, s0 = xor
    with pytest.raises(InvalidInputError, match=match) as info:
        get_substrate(spec).run(net, task.inputs, s0, SCHED)
    assert "\n" not in str(info.value)


def test_spec_parser_golden_cases():
    from deepcircuit.substrates import parse_substrate_spec, split_substrate_list

    sp = parse_substrate_spec(" spice:mismatch=0.3; seed=1;clamp=limiter;stiffness=1e5;max_seconds=none ")
    assert (sp.name, sp.options) == ("spice", {"mismatch": 0.3, "seed": 1, "clamp": "limiter", "stiffness": 1e5,
                                               "max_seconds": None})
    sub = sp.build()
    assert (sub.clamp.kind, sub.clamp.stiffness, sub.nonideal.seed, sub.transconductor.seed) == ("limiter", 1e5, 1, 1)
    assert parse_substrate_spec("spice:presentations_per_run=auto").options == {"presentations_per_run": "auto"}
    assert parse_substrate_spec("spice:presentations_per_run=4").options == {"presentations_per_run": 4}
    assert parse_substrate_spec("ode:record=final,engine=blas").options == {"record": "final", "engine": "blas"}
    assert split_substrate_list("ode, spice:mismatch=0.3;seed=1,clamp=limiter,brian2") == [
        "ode", "spice:mismatch=0.3;seed=1;clamp=limiter", "brian2"]
    # Keyword arguments override the spec's options.
    assert get_substrate("ode:mismatch=0.3;seed=1", seed=2).chip.nonideal.seed == 2
    assert get_substrate("ode", nonideal=NonIdealities(mismatch=0.1)).chip.nonideal.mismatch == 0.1


def test_cli_refuses_a_bad_spec_with_exit_2_and_writes_nothing(capsys, tmp_path):
    from deepcircuit.cli import main

    for argv in (["train", "--task", "xor", "--epochs", "1", "--substrate", "ode:noise=0.1", "--out", str(tmp_path / "t")],
                 ["gradcheck", str(MODELS / "xor_trained.json"), "--substrate", "spice:mismtach=0.1"],
                 ["compare", str(MODELS / "xor_trained.json"), "--substrates", "ode",
                  "--reference", "brian2:bits=4", "--out", str(tmp_path / "c")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and ("cannot model" in err or "did you mean 'mismatch'" in err)
    assert not list(tmp_path.iterdir())


def test_compare_measures_against_the_reference_spec(xor):
    from deepcircuit.studies.comparison import compare_inference, compare_predictions

    task, net, _ = xor
    sched = Schedule(free_steps=400, nudged_steps=200, beta=0.5)
    chip = "ode:mismatch=0.3;seed=1"
    same = compare_inference(net, task, [chip], schedule=sched, reference=chip)
    ideal = compare_inference(net, task, [chip], schedule=sched)
    assert same.reference_label == chip and ideal.reference_label == "ode (adaptive reference)"
    assert same.inference[chip].max_state_deviation < 1e-3 < ideal.inference[chip].max_state_deviation
    pred = compare_predictions(net, task, ["ode", chip], schedule=sched, reference=chip)
    assert pred[chip].max_state_deviation == 0.0 and pred[chip].reference == chip
    assert pred["ode"].max_state_deviation > 0.01
    assert pred["ode"].to_dict()["max_state_deviation"] == pred["ode"].max_state_deviation


@pytest.mark.spice
@pytest.mark.parametrize("opts, tol", [
    ("mismatch=0.3;seed=1", 1e-3),
    ("mismatch=0.3;seed=1;bits=4", 1e-3),
    ("transconductor=ota;ota_linear_range=0.3;ota_offset=0.05;mismatch=0.1;seed=2", 3e-3),
])
def test_the_ode_chip_is_the_spice_chip(xor, opts, tol):
    """Settled states of the same chip on both solvers (limiter clamp), and far from the ideal."""
    pytest.importorskip("deepcircuit.substrates.spice")
    task, net, s0 = xor
    sched = Schedule(dt=0.05, free_steps=1500, nudged_steps=300, beta=0.5)
    ode = get_substrate(f"ode:{opts}").run(net, task.inputs, s0, sched, targets=task.targets)
    with get_substrate(f"spice:{opts};clamp=limiter") as sub:
        sp = sub.run(net, task.inputs, s0, sched, targets=task.targets)
    assert np.abs(ode.free.final - sp.free.final).max() < tol
    assert np.abs(ode.nudged.final - sp.nudged.final).max() < tol
    ideal = get_substrate("ode").run(net, task.inputs, s0, sched).free.final
    assert np.abs(ideal - sp.free.final).max() > 10 * tol


def test_as_built_gradient_is_the_chips_gradient_by_finite_differences():
    from deepcircuit import train
    from deepcircuit.stability.gradient_check import gradient_check

    # A trained XOR network whose outputs are not all at the rails (the committed models' are:
    # their gradient is 0): the default training, as docs/gradient.md's runs/xor/seed0.json.
    task = get_task("xor")
    res = train(task, seeds=[0])
    net, sched = res.networks[0], Schedule(free_steps=1000, nudged_steps=1000)
    for spec in ("ode:mismatch=0.1;seed=0", "ode:transconductor=ota;ota_linear_range=0.5;ota_offset=0.02;seed=1"):
        rep = gradient_check(net, task, betas=[0.1], schedule=sched, substrate=spec, fd_entries=8,
                             rules={"deep-stdp2": "stdp2"}, symmetric=False)
        b = rep.as_built
        assert b.gradient_norm > 1e-3 and b.finite_difference_error < 1e-5, spec
        d = rep.to_dict()["references"]
        assert set(d) == {"ideal", "as_built"} and d["as_built"]["chip"]["mismatch"] == b.chip["mismatch"]
    # On the ideal model the two references are one.
    rep = gradient_check(net, task, betas=[0.1], schedule=sched, fd_entries=0, rules={"s": "stdp2"},
                         symmetric=False)
    assert rep.as_built.gradient_norm == pytest.approx(rep.gradient_norm, rel=1e-9)
    assert rep.as_built.rules["s"].cosine[0] == pytest.approx(rep.rules["s"].cosine[0], abs=1e-9)


def test_a_device_error_never_reverses_a_transconductors_sign():
    # At 0.3, about 1 draw in 2300 has 1 + 0.3 N(0, 1) < 0: floored at 0 (that device conducts
    # nothing), never negative; the floor is the only change to the Gaussian draw.
    ni = NonIdealities(mismatch=0.3, seed=1)
    f = ni.mismatch_factors(2, 100)
    raw = 1.0 + 0.3 * np.random.default_rng([1, 0]).standard_normal((100, 100))
    assert f.min() == 0.0 and (raw < 0).sum() == (f[0] == 0).sum() > 0
    assert np.array_equal(f[0], np.maximum(raw, 0.0))
    W = np.ones((2, 100, 100))
    assert (ni.effective_weights(W) >= 0).all()


@pytest.mark.parametrize("name", ["ode", "spice"])
def test_a_run_without_presentations_is_one_line(name, xor):
    task, net, s0 = xor
    with pytest.raises(InvalidInputError, match="no rows: a run needs at least one presentation"):
        get_substrate(name).run(net, task.inputs[:0], s0[:, :0], SCHED)
