"""Stability certificates and Lyapunov checks on hand-built networks with known answers."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from deepcircuit import InvalidInputError, Network, Roles, Schedule, get_substrate, train
from deepcircuit.stability.certificates import free_jacobian, gershgorin
from deepcircuit.stability.equilibrium import analyse_equilibrium, held_neurons
from deepcircuit.stability.lyapunov_functions import lyapunov_function
from deepcircuit.stability.lyapunov import (RECORDED, certificate_recorder, check_phases, check_trajectory,
                                            evaluate_series)
from deepcircuit.learning.config import TrainingConfig

ODE = get_substrate("ode")


def hand_net(roles: Roles, edges: dict, *, family="deep", params=None, bias=None) -> Network:
    """A network with exactly the connections ``{(pre, post): weight}`` (neuron names)."""
    n = roles.n_neurons
    W = np.zeros((n, n))
    for (i, j), w in edges.items():
        W[roles.index_of(i), roles.index_of(j)] = w
    mask = W != 0
    return Network(roles, W, mask, mask.copy(), family, params or {}, bias, "custom")


def run_free(net, inputs, initial, steps, dt=0.05):
    x = np.atleast_2d(np.asarray(inputs, dtype=float))
    s0 = np.asarray(initial, dtype=float).reshape(1, x.shape[0], -1)
    return ODE.run(net, x, s0, Schedule(dt=dt, free_steps=steps, nudged_steps=0)).free


# x0, bias, h0, h1, y0
R5 = Roles(2, (2,), 1)
# x0, bias, h0, y0
R4 = Roles(2, (1,), 1)


@pytest.fixture
def leaky_net():
    # deep-leaky with gamma = 1: every column margin is 1.0, every row margin >= 1.0.
    return hand_net(R5, {("x0", "h0"): 0.5, ("bias", "h1"): 0.3, ("h0", "y0"): 0.2, ("h1", "y0"): 0.3,
                         ("y0", "h0"): 0.1}, family="deep-leaky", params={"gamma": 1.0})


def test_stable_network_is_certified_and_its_1norm_decays(leaky_net, xor):
    g = gershgorin(leaky_net)
    assert g.certified and all(c.holds and not c.failing for c in g.conditions.values())
    # Margins by hand: diagonal -(out-weights) - gamma; column margin |diag| - out-weights to free.
    assert g["negative_diagonal"].margins == pytest.approx({"h0": 1.2, "h1": 1.3, "y0": 1.1})
    assert g["column_dominance"].margins == pytest.approx({"h0": 1.0, "h1": 1.0, "y0": 1.0})
    assert g["row_dominance"].margins == pytest.approx({"h0": 1.1, "h1": 1.3, "y0": 0.6})
    inputs = np.array([[0, 1], [1, 1]], dtype=float)
    s0 = np.array([[0, 1, 0.9, 0.0, 0.7], [1, 1, 0.0, 0.8, 0.1]])
    tr = run_free(leaky_net, inputs, s0, 300)
    chk = check_trajectory(tr, leaky_net)
    for c in chk.checks:
        assert c.function.name == "1-norm" and c.function.certified and c.function.scope == "global"
        assert c.function.guaranteed_rate == pytest.approx(1.0)
        assert c.monotone and c.max_increase == 0.0 and c.max_increase_time is None
        assert c.settled and c.analysis.hurwitz and not c.analysis.held
        # The certificate promises at least the column margin as decay rate of ||s - s*||_1.
        assert c.decay_rate >= 0.99 * c.function.guaranteed_rate
        assert c.v_initial > 0.5 and c.v_final == 0.0
    np.testing.assert_allclose(chk.values[0, :, 0], np.abs(s0[:, 2:] - tr.final[0][:, 2:]).sum(axis=1))


def test_unstable_network_is_not_hurwitz_and_v_grows():
    # ep-asym, h0 <-> y0 with weight 2 and bias -0.5: interior equilibrium (0.5, 0.5) with
    # J = [[-1, 2], [2, -1]], eigenvalues +1 and -3.
    net = hand_net(R4, {("h0", "y0"): 2.0, ("y0", "h0"): 2.0}, family="ep-asym",
                   bias=[0, 0, -0.5, -0.5])
    star = np.array([0, 1, 0.5, 0.5])
    a = analyse_equilibrium(net, star)
    assert a.status == "unstable" and not a.hurwitz and a.held == {}
    assert a.residual == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_allclose(sorted(a.eigenvalues.real), [-3.0, 1.0])
    assert a.spectral_abscissa == pytest.approx(1.0)
    g = gershgorin(net)
    assert not g.certified and g["row_dominance"].failing == ("h0", "y0")
    # 70 Euler steps of 0.05 tau: the perturbation grows by 1.05 per step and stays below the bound.
    tr = run_free(net, [[0, 1]], star + [0, 0, 0.01, 0.01], 70)
    assert tr.states[..., 2:].max() < 1.0 and not tr.settled[0, 0]
    chk = check_trajectory(tr, net, equilibrium=star)
    c = chk.check(0, 0)
    assert c.function.name == "1-norm" and not c.function.certified and c.function.scope == "none"
    assert "row dominance" not in c.function.condition and "column dominance fails" in c.function.condition
    assert not c.monotone and c.max_increase > 0 and c.max_increase_time == pytest.approx(3.5)
    assert c.v_final / c.v_initial == pytest.approx(1.05 ** 70)
    assert c.decay_rate == pytest.approx(-np.log(1.05) / 0.05, rel=1e-9)
    with pytest.raises(InvalidInputError, match="needs a Hurwitz restricted Jacobian; this one is unstable"):
        lyapunov_function(net, function="quadratic", analysis=a)


# DEEP: bias -> h0 (0.3), h0 -> y0 (1.0), y0 -> h0 (0.5). Activity is conserved among h0, y0, so
# the free Jacobian has a zero eigenvalue and no Gershgorin condition can hold; y0 fills up to 1
# and stays there (v_y = h0 - 0.5 y0 = 0.3 > 0 at h0* = 0.8), which makes the rest stable.
@pytest.fixture
def deep_net3():
    return hand_net(R4, {("bias", "h0"): 0.3, ("h0", "y0"): 1.0, ("y0", "h0"): 0.5})


def test_conditions_fail_but_the_trajectory_settles(deep_net3):
    g = gershgorin(deep_net3)
    assert not g.certified
    assert g["negative_diagonal"].holds
    # Column margins are exactly 0 (conservation): strict dominance must not be certified by rounding.
    assert g["column_dominance"].margins == {"h0": 0.0, "y0": 0.0}
    assert g["column_dominance"].failing == ("h0", "y0") and g["row_dominance"].failing == ("y0",)
    tr = run_free(deep_net3, [[0, 1], [1, 1]], [[0, 1, 0.05, 0.02], [1, 1, 0.0, 0.1]], 1000)
    assert tr.settled.all()
    np.testing.assert_allclose(tr.final[0, :, 2:], [[0.8, 1.0], [0.8, 1.0]], atol=1e-6)
    chk = check_trajectory(tr, deep_net3, function="1-norm")
    for c in chk.checks:
        assert not c.function.certified and "empirical check only" in c.function.condition
        assert c.settled and c.monotone and c.decay_rate > 0
        assert c.analysis.held == {"y0": 1.0} and c.analysis.hurwitz
        np.testing.assert_allclose(c.analysis.jacobian, [[-1.0]])
    # 'auto' finds the local quadratic certificate at the clamped equilibrium instead.
    auto = check_trajectory(tr, deep_net3)
    assert {c.function.name for c in auto.checks} == {"quadratic"}
    assert all(c.function.certified and c.function.scope == "local" for c in auto.checks)


def test_deep_zero_eigenvalue_is_reported_as_marginal(deep_net3):
    # Away from the bounds nothing is held: DEEP's conserved activity gives eigenvalues 0 and -1.5.
    a = analyse_equilibrium(deep_net3, [0, 1, 0.2, 0.3])
    assert a.held == {} and a.status == "marginal" and not a.hurwitz
    np.testing.assert_allclose(sorted(a.eigenvalues.real), [-1.5, 0.0], atol=1e-12)
    assert abs(a.spectral_abscissa) <= a.marginal_tol
    assert a.residual > 0  # and it says this state is not an equilibrium
    with pytest.raises(InvalidInputError, match="needs a Hurwitz restricted Jacobian; this one is marginal"):
        lyapunov_function(deep_net3, function="quadratic", analysis=a)


def test_equilibrium_with_clamps_excludes_held_neurons():
    # ep-asym: h0 <-> h1 (weight 2) with bias +1 saturate at 1 (velocity +2 outward there); y0 follows
    # 0.5 * h0 to an interior 0.5. The full free Jacobian has eigenvalue +1, the restricted one -1.
    net = hand_net(R5, {("h0", "h1"): 2.0, ("h1", "h0"): 2.0, ("h0", "y0"): 0.5}, family="ep-asym",
                   bias=[0, 0, 1.0, 1.0, 0.0])
    assert np.linalg.eigvals(free_jacobian(net)).real.max() == pytest.approx(1.0)
    tr = run_free(net, [[0, 1]], [[0, 1, 0.05, 0.05, 0.05]], 600)
    assert tr.settled.all()
    star = tr.final[0, 0]
    np.testing.assert_allclose(star[2:], [1.0, 1.0, 0.5], atol=1e-9)
    assert held_neurons(net, star) == {"h0": 1.0, "h1": 1.0}
    a = analyse_equilibrium(net, star)
    assert a.neurons == ("y0",) and a.status == "stable" and a.hurwitz
    np.testing.assert_allclose(a.jacobian, [[-1.0]])
    np.testing.assert_allclose(a.eigenvalues, [-1.0])
    assert gershgorin(net, neurons=a.neurons).certified and not gershgorin(net).certified
    c = check_trajectory(tr, net).check(0, 0)
    assert c.function.name == "quadratic" and c.function.certified and c.monotone
    # A soft clamp (a physical limiter) leaves held neurons near, not at, the bound; bound_tol
    # says how near counts. Beyond the bound always counts.
    soft = star + [0, 0, -0.004, 0.003, 0]
    assert held_neurons(net, soft) == {"h1": 1.0}
    assert held_neurons(net, soft, bound_tol=1e-2) == {"h0": 1.0, "h1": 1.0}
    assert analyse_equilibrium(net, soft, bound_tol=1e-2).neurons == ("y0",)
    assert analyse_equilibrium(net, soft).neurons == ("h0", "y0")
    # A neuron at the bound whose velocity points inward is not held: y0 at 1 is pulled back.
    assert "y0" not in held_neurons(net, [0, 1, 1.0, 1.0, 1.0])


def projected_velocity(net, s, beta=0.0, target=None):
    fam = net.family_
    v = fam.velocity(s[None], net.weights, net.bias, net.params)[0]
    if beta:
        v[net.roles.outputs] += beta * (target - s[net.roles.outputs])
    v = np.where(((s <= 0) & (v < 0)) | ((s >= 1) & (v > 0)), 0.0, v)
    v[net.roles.inputs] = 0.0
    return v


@pytest.mark.parametrize("family,params,beta", [("deep", {}, 0.0), ("deep", {}, 10.0),
                                                ("deep-leaky", {"gamma": 0.3}, 0.0),
                                                ("ep-asym", {}, 2.0), ("ep-sym", {}, 0.0)])
def test_jacobian_matches_finite_differences(family, params, beta, xor_roles):
    net = Network.create(xor_roles, family=family, params=params, rng=11, init_scale=0.4)
    if net.family_.has_bias_vector:
        net = net.with_weights(net.weights, np.r_[0, 0, 0, np.random.default_rng(3).normal(size=6)])
    s = np.r_[1.0, 0.0, 1.0, np.random.default_rng(4).uniform(0.2, 0.8, size=6)]
    target = np.array([1.0])
    J = free_jacobian(net, beta=beta)
    a = analyse_equilibrium(net, s, beta=beta, target=target if beta else None)
    np.testing.assert_allclose(a.jacobian, J)  # interior state: nothing held, nothing cut
    h = 1e-6
    for k, i in enumerate(range(3, 9)):
        e = np.zeros(9)
        e[i] = h
        col = (projected_velocity(net, s + e, beta, target) - projected_velocity(net, s - e, beta, target)) / (2 * h)
        np.testing.assert_allclose(J[:, k], col[3:], atol=1e-8)


def test_restricted_jacobian_matches_finite_differences_of_the_projected_field(xor_roles):
    # A state with neurons at both bounds: the restricted Jacobian is the derivative of the
    # projected field over the kept neurons, and the held neurons stay held (zero velocity).
    net = Network.create(xor_roles, family="ep-asym", rng=5, init_scale=0.6)
    net = net.with_weights(net.weights, np.r_[0, 0, 0, 3.0, -3.0, 0, 0, 0, 0])
    s = np.r_[1.0, 0.0, 1.0, 1.0, 0.0, 0.3, 0.6, 0.5, 0.4]
    a = analyse_equilibrium(net, s)
    assert a.held == {"h0": 1.0, "h1": 0.0}
    keep = list(a.indices)
    h = 1e-6
    for k, i in enumerate(keep):
        e = np.zeros(9)
        e[i] = h
        col = (projected_velocity(net, s + e) - projected_velocity(net, s - e)) / (2 * h)
        np.testing.assert_allclose(a.jacobian[:, k], col[keep], atol=1e-8)
        assert np.all(col[[3, 4]] == 0.0)


def test_ep_sym_energy_never_increases(xor):
    rng = np.random.default_rng(8)
    net = Network.create(Roles(3, (4,), 1), family="ep-sym", rng=rng, init_scale=0.5)
    net = net.with_weights(net.weights, np.r_[0, 0, 0, rng.normal(0, 0.3, 5)])
    s0 = np.concatenate([np.tile(xor.inputs[None], (1, 1, 1)), rng.uniform(0, 1, (1, 4, 5))], axis=-1)
    res = ODE.run(net, xor.inputs, s0, Schedule(free_steps=400, nudged_steps=400, beta=10.0), targets=xor.targets)
    checks = check_phases(res, net, beta=10.0, targets=xor.targets)
    for phase, chk in checks.items():
        for c in chk.checks:
            assert c.function.name == "energy" and c.function.certified, phase
            assert c.monotone and c.max_increase <= 1e-12, (phase, c.presentation, c.max_increase)
        # V = E(s) - E(s*) (+ beta C when nudged) ends at 0 and is not negative before.
        assert np.all(chk.values >= -1e-12) and np.all(chk.values[..., -1] == 0.0)
    assert np.all(checks["free"].values[..., 0] > 0.01)  # random starts: far from s*
    direct = net.family_.energy(res.free.states[0, 1], net.weights, net.bias)
    np.testing.assert_allclose(checks["free"].values[0, 1], direct - direct[-1])


def test_check_does_not_depend_on_the_substrate_name(leaky_net):
    tr = run_free(leaky_net, [[0, 1]], [[0, 1, 0.9, 0.0, 0.7]], 200)
    other = dataclasses.replace(tr, substrate="spice", meta={"integrator": "anything"})
    a, b = check_trajectory(tr, leaky_net), check_trajectory(other, leaky_net)
    assert a.to_dict() == b.to_dict()
    np.testing.assert_array_equal(a.values, b.values)
    # A non-uniform resampling of the same trajectory gives the same verdicts and a close rate.
    times = np.unique(np.r_[np.linspace(0, 2, 50), np.linspace(2, 10, 17)])
    c = check_trajectory(tr.resample(times), leaky_net, equilibrium=tr.final).check()
    assert c.monotone and c.decay_rate == pytest.approx(a.check().decay_rate, rel=0.05)


def test_given_equilibrium_shapes_and_errors(leaky_net, deep_net3):
    tr = run_free(leaky_net, [[0, 1], [1, 1]], [[0, 1, 0.9, 0, 0.7], [1, 1, 0, 0.8, 0.1]], 50)
    one = check_trajectory(tr, leaky_net, equilibrium=tr.final[0, 0])
    assert one.values.shape == (1, 2, 51)
    np.testing.assert_allclose(one.values[0, 1, 0], np.abs(tr.states[0, 1, 0, 2:] - tr.final[0, 0, 2:]).sum())
    with pytest.raises(InvalidInputError, match=r"'equilibrium' must have shape \(N,\), \(P, N\)"):
        check_trajectory(tr, leaky_net, equilibrium=np.zeros(3))
    with pytest.raises(InvalidInputError, match="Give the 'networks' that made the trajectory"):
        check_trajectory(tr)
    with pytest.raises(InvalidInputError, match="has 1 network\\(s\\) but 2 network\\(s\\) were given"):
        check_trajectory(tr, [leaky_net, leaky_net])
    with pytest.raises(InvalidInputError, match="'function' parameter must be one of"):
        check_trajectory(tr, leaky_net, function="2-norm")
    with pytest.raises(InvalidInputError, match="needs the 'ep-sym' family; this network is 'deep-leaky'"):
        check_trajectory(tr, leaky_net, function="energy")
    # A ready function needs no network: the check itself knows nothing but the trajectory.
    V = lyapunov_function(leaky_net)
    assert check_trajectory(tr, function=V).to_dict()["checks"][0]["function"] == "1-norm"
    res = ODE.run(deep_net3, [[0, 1]], [[[0, 1, 0, 0]]], Schedule(free_steps=20, nudged_steps=20), targets=[[1.0]])
    with pytest.raises(InvalidInputError, match="nudged trajectory needs the phase's 'beta'"):
        check_trajectory(res.nudged, deep_net3)
    with pytest.raises(InvalidInputError, match="needs the presentation's 'target'"):
        analyse_equilibrium(deep_net3, [0, 1, 0.5, 0.5], beta=1.0)
    with pytest.raises(InvalidInputError, match="'state' parameter must have shape \\(4\\)"):
        analyse_equilibrium(deep_net3, [0.5, 0.5])


def test_diverged_trajectory_is_reported_not_monotone(leaky_net):
    tr = run_free(leaky_net, [[0, 1]], [[0, 1, 0.9, 0.0, 0.7]], 20)
    states = tr.states.copy()
    states[0, 0, 10:, 3] = np.nan
    bad = dataclasses.replace(tr, states=states, diverged=np.array([True]), settled=np.array([[False]]))
    c = check_trajectory(bad, leaky_net, equilibrium=tr.final).check()
    assert c.diverged and not c.monotone and c.max_increase == np.inf
    assert c.max_increase_time == pytest.approx(0.5)
    assert c.to_dict()["max_increase"] is None  # JSON-safe
    json.dumps(check_trajectory(bad, leaky_net).to_dict(), allow_nan=False)
    json.dumps(gershgorin(leaky_net).to_dict(), allow_nan=False)
    d = check_trajectory(bad, leaky_net).check()  # NaN equilibrium: no analysis, still a verdict
    assert d.analysis is None and not d.monotone


def test_evaluate_series():
    t = np.linspace(0, 5, 101)
    r = evaluate_series(t, 3 * np.exp(-2 * t))
    assert r["monotone"] and r["decay_rate"] == pytest.approx(2.0) and r["max_increase_time"] is None
    v = 3 * np.exp(-2 * t)
    v[40] += 0.01
    r = evaluate_series(t, v)
    assert not r["monotone"] and r["max_increase_time"] == pytest.approx(t[40])
    assert r["max_increase"] == pytest.approx(v[40] - v[39])
    # An increase below atol + rtol * max V is tolerated.
    v = 3 * np.exp(-2 * t)
    v[40] = v[39] + 1e-7
    assert evaluate_series(t, v, rtol=1e-7)["monotone"] and not evaluate_series(t, v, rtol=1e-9)["monotone"]
    # Below the floor (relative to max V) samples are left out of the fit.
    v = np.r_[np.exp(-t[:50]), np.full(51, 1e-9)]
    assert evaluate_series(t, v, floor=1e-6)["decay_rate"] == pytest.approx(1.0)
    assert np.isnan(evaluate_series(t, np.zeros(101))["decay_rate"])


def test_certificate_recorder_during_training(xor):
    cfg = TrainingConfig(epochs=4, free_steps=150, nudged_steps=150)
    res = train(xor, model="deep-leaky", hidden=3, seeds=[0, 1], params={"gamma": 0.5}, config=cfg,
                callbacks=[certificate_recorder()])
    for k, h in enumerate(res.histories):
        assert set(RECORDED) <= set(h.extra)
        assert all(len(h.extra[key]) == 4 for key in RECORDED)
        # The last entry describes the network after the last update: the final network.
        g = gershgorin(res.networks[k])
        assert h.extra["gershgorin_margin_column"][-1] == g["column_dominance"].min_margin
        assert h.extra["gershgorin_margin_row"][-1] == g["row_dominance"].min_margin
        assert h.extra["gershgorin_certified"][-1] == g.certified
        assert all(isinstance(x, bool) for x in h.extra["hurwitz"] + h.extra["equilibrium_reached"])
        assert all(x == (s == "stable") for x, s in zip(h.extra["hurwitz"], h.extra["stability"]))
        assert h.extra["equilibrium_reached"] == [f == 1.0 and n == 1.0 for f, n in
                                                  zip(h.free_settled, h.nudged_settled)]
    # Different seeds got their own records, not a shared value.
    assert res.histories[0].extra["gershgorin_margin_row"] != res.histories[1].extra["gershgorin_margin_row"]


def test_plots_return_figures_and_save_atomically(tmp_path, leaky_net, xor):
    from matplotlib.figure import Figure

    from deepcircuit.studies.plots import plot_certificates, plot_lyapunov

    tr = run_free(leaky_net, [[0, 1], [1, 1]], [[0, 1, 0.9, 0, 0.7], [1, 1, 0, 0.8, 0.1]], 100)
    fig = plot_lyapunov(check_trajectory(tr, leaky_net), labels=["01", "11"], path=tmp_path / "v.png")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 2
    assert "monotone" in fig.axes[0].get_legend().get_texts()[0].get_text()
    res = train(xor, model="deep", hidden=2, seeds=[0], config=TrainingConfig(epochs=3, free_steps=50, nudged_steps=50),
                callbacks=[certificate_recorder()])
    fig = plot_certificates(res.histories[0].to_dict(), path=tmp_path / "sub" / "c.pdf")
    assert len(fig.axes[0].lines) == 4  # three margins and the zero line
    assert sorted(os.listdir(tmp_path)) == ["sub", "v.png"] and os.listdir(tmp_path / "sub") == ["c.pdf"]
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InvalidInputError, match="has no certificate record"):
        plot_certificates({"mse": [1.0]})
    with pytest.raises(InvalidInputError, match="Cannot tell the image format"):
        plot_lyapunov(check_trajectory(tr, leaky_net), path=tmp_path / "noext")


def test_batch_abscissae_agree_with_the_per_network_analysis(xor):
    from deepcircuit import NetworkBatch, initial_states
    from deepcircuit.stability.equilibrium import analyse_equilibria, batch_abscissae

    nets = [Network.create(Roles(3, (4,), 1), family="deep", rng=s, init_scale=0.2) for s in range(6)]
    # Non-negative weights: a compartmental Jacobian, eigenvalues in the closed left half-plane.
    nets[0] = nets[0].with_weights(np.abs(nets[0].weights))
    batch = NetworkBatch.of(nets)
    s0 = initial_states(np.random.default_rng(0), 6, xor.inputs, batch.roles, 1.0)
    final = ODE.run(batch, xor.inputs, s0, Schedule(free_steps=300, nudged_steps=0)).free.final
    # Interior states too: nothing held there, so DEEP's zero eigenvalue can make them marginal.
    final = np.concatenate([final, 0.2 + 0.6 * s0], axis=1)
    final[..., :3] = np.tile(xor.inputs, (2, 1))
    a, st = batch_abscissae(batch, final)
    statuses = set()
    for k, n in enumerate(nets):
        for p, an in enumerate(analyse_equilibria(n, final[k])):
            assert a[k, p] == an.spectral_abscissa and st[k, p] == an.status
            statuses.add(an.status)
    assert statuses == {"stable", "marginal", "unstable"}  # every kind was compared
