"""The ODE substrate against hand-computed steps, the reference loop and the Jacobian."""

from __future__ import annotations

import numpy as np
import pytest

from deepcircuit import (DivergenceError, InvalidInputError, Network, NetworkBatch, Roles, Schedule,
                         get_family, get_substrate, initial_states)
from deepcircuit.substrates.ode import OdeSubstrate

from conftest import reference_phase


def tiny_network(family="deep", params=None):
    """x0, bias -> h0 <-> y0: small enough to step by hand."""
    roles = Roles(2, (1,), 1)
    tmask = np.zeros((4, 4), bool)
    for i, j in [(0, 2), (1, 2), (1, 3), (2, 3), (3, 2)]:
        tmask[i, j] = True
    W = np.zeros((4, 4))
    W[0, 2], W[1, 2], W[1, 3], W[2, 3], W[3, 2] = 0.5, 0.2, -0.1, 0.4, 0.3
    return Network(roles, W, tmask, tmask, family, params or {})


def test_one_euler_step_by_hand():
    net = tiny_network()
    s0 = np.array([[[1.0, 1.0, 0.2, 0.6]]])
    sched = Schedule(dt=0.1, free_steps=1, nudged_steps=1, beta=2.0)
    res = OdeSubstrate().run(net, [[1.0, 1.0]], s0, sched, targets=[[1.0]])
    # h0: inflow 0.5*1 + 0.2*1 + 0.3*0.6 = 0.88, outflow 0.2 * W[2].sum() = 0.2*0.4 = 0.08
    h = 0.2 + 0.1 * (0.88 - 0.08)
    # y0: inflow -0.1*1 + 0.4*0.2 = -0.02, outflow 0.6 * 0.3 = 0.18
    y = 0.6 + 0.1 * (-0.02 - 0.18)
    assert res.free.states[0, 0, 1] == pytest.approx([1.0, 1.0, h, y], abs=1e-15)
    # nudged step from the free end: + beta (1 - y)
    h2 = h + 0.1 * (0.5 + 0.2 + 0.3 * y - h * 0.4)
    y2 = y + 0.1 * (-0.1 + 0.4 * h - y * 0.3 + 2.0 * (1.0 - y))
    assert res.nudged.states[0, 0, 1] == pytest.approx([1.0, 1.0, h2, y2], abs=1e-15)
    assert res.nudged.states[0, 0, 0] == pytest.approx(res.free.states[0, 0, -1])


def test_projection_keeps_states_in_box_and_inputs_clamped():
    net = tiny_network()
    W = net.weights.copy()
    W[0, 2] = 50.0  # drives h0 far above 1
    net = net.with_weights(W)
    s0 = np.array([[[1.0, 1.0, 0.9, 0.0]]])
    tr = OdeSubstrate().run(net, [[1.0, 1.0]], s0, Schedule(dt=0.05, free_steps=200)).free
    assert tr.states.min() >= 0.0 and tr.states.max() <= 1.0
    assert np.all(tr.states[..., :2] == 1.0)
    assert tr.final[0, 0, 2] == 1.0  # held at the upper bound


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_engines_match_reference_loop(engine, xor, xor_roles):
    net = Network.create(xor_roles, rng=3, init_scale=0.5)
    rng = np.random.default_rng(0)
    s0 = initial_states(rng, 1, xor.inputs, xor_roles)
    sched = Schedule(dt=0.05, free_steps=300, nudged_steps=300, beta=10.0)
    res = OdeSubstrate(engine=engine).run(net, xor.inputs, s0, sched, targets=xor.targets)
    ref_free = reference_phase(s0[0], net.weights, 3, 0.05, 300)
    ref_nudged = reference_phase(ref_free[-1], net.weights, 3, 0.05, 300, beta=10.0, Y=xor.targets)
    got_free = np.moveaxis(res.free.states[0], 1, 0)
    got_nudged = np.moveaxis(res.nudged.states[0], 1, 0)
    if engine == "numpy":
        # The numpy engine evaluates the reference's own expressions: identical bits.
        assert np.array_equal(got_free, ref_free)
        assert np.array_equal(got_nudged, ref_nudged)
    else:
        np.testing.assert_allclose(got_free, ref_free, atol=1e-12, rtol=0)
        np.testing.assert_allclose(got_nudged, ref_nudged, atol=1e-12, rtol=0)


def test_batch_equals_networks_run_alone(xor, xor_roles):
    nets = [Network.create(xor_roles, rng=s, init_scale=0.3) for s in range(3)]
    s0 = initial_states(np.random.default_rng(5), 3, xor.inputs, xor_roles)
    sched = Schedule(free_steps=100, nudged_steps=100)
    sub = OdeSubstrate()
    together = sub.run(NetworkBatch.of(nets), xor.inputs, s0, sched, targets=xor.targets)
    for k, n in enumerate(nets):
        alone = sub.run(n, xor.inputs, s0[k:k + 1], sched, targets=xor.targets)
        assert np.array_equal(alone.nudged.states[0], together.nudged.states[k])


@pytest.mark.parametrize("family,params", [("deep", {}), ("deep-leaky", {"gamma": 0.3}),
                                           ("ep-asym", {}), ("ep-sym", {})])
def test_jacobian_matches_finite_differences(family, params, xor_roles):
    net = Network.create(xor_roles, family=family, params=params, rng=7, init_scale=0.3)
    fam = get_family(family)
    b = np.random.default_rng(1).normal(size=net.n_neurons) if fam.has_bias_vector else net.bias
    s = np.random.default_rng(2).uniform(0.2, 0.8, size=(1, net.n_neurons))
    J = fam.jacobian(net.weights, b, net.params)
    h = 1e-6
    for i in range(net.n_neurons):
        e = np.zeros_like(s)
        e[0, i] = h
        col = (fam.velocity(s + e, net.weights, b, net.params) - fam.velocity(s - e, net.weights, b, net.params)) / (2 * h)
        np.testing.assert_allclose(J[:, i], col[0], atol=1e-8)


def test_deep_conserves_activity_without_bounds():
    # Inflow minus outflow: the sum of velocities over all neurons is zero when nothing is clamped.
    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 6))
    np.fill_diagonal(W, 0)
    s = rng.uniform(size=(4, 6))
    v = get_family("deep").velocity(s, W, np.zeros(6), {})
    np.testing.assert_allclose(v.sum(axis=-1), 0.0, atol=1e-12)


def test_adaptive_reference_agrees_with_fine_euler(xor, xor_roles):
    net = Network.create(xor_roles, rng=11, init_scale=0.4)
    s0 = initial_states(np.random.default_rng(3), 1, xor.inputs, xor_roles)
    coarse = Schedule(dt=0.05, free_steps=400)
    fine = Schedule(dt=0.0005, free_steps=40000)
    ada = OdeSubstrate(method="adaptive").run(net, xor.inputs, s0, coarse).free
    eul = OdeSubstrate().run(net, xor.inputs, s0, fine).free
    assert ada.states.shape == (1, 4, 401, 9)
    np.testing.assert_allclose(ada.final, eul.final, atol=5e-4)


def test_stop_at_equilibrium_stops_early_and_reports_settled(xor, xor_roles):
    net = Network.create(xor_roles, rng=2)
    s0 = initial_states(np.random.default_rng(3), 1, xor.inputs, xor_roles)
    full = OdeSubstrate().run(net, xor.inputs, s0, Schedule(free_steps=4000, settle_tol=1e-6)).free
    early = OdeSubstrate().run(net, xor.inputs, s0,
                               Schedule(free_steps=4000, settle_tol=1e-6, stop_at_equilibrium=True)).free
    assert early.settled.all() and full.settled.all()
    assert early.states.shape[2] < full.states.shape[2]
    np.testing.assert_allclose(early.final, full.final, atol=1e-4)


def test_not_settled_is_reported(xor, xor_roles):
    net = Network.create(xor_roles, rng=2)
    s0 = initial_states(np.random.default_rng(3), 1, xor.inputs, xor_roles)
    tr = OdeSubstrate().run(net, xor.inputs, s0, Schedule(free_steps=2, settle_tol=1e-9)).free
    assert not tr.settled.any()
    assert tr.status == "not-settled" and "not settled" in tr.message


def test_non_finite_weights_raise_divergence(xor, xor_roles):
    net = Network.create(xor_roles, rng=2)
    W = net.weights.copy()
    s0 = initial_states(np.random.default_rng(3), 1, xor.inputs, xor_roles)
    with pytest.raises(InvalidInputError, match="finite"):
        W[3, 4] = np.nan
        net.with_weights(W)
    fake = NetworkBatch.of(net)
    object.__setattr__(fake.networks[0], "weights", np.full_like(W, np.inf))
    with pytest.raises(DivergenceError, match="non-finite"):
        OdeSubstrate().run(fake, xor.inputs, s0, Schedule(free_steps=5))


def test_wrong_input_width_is_refused(xor_roles):
    net = Network.create(xor_roles, rng=0)
    with pytest.raises(InvalidInputError, match="3 input neurons"):
        OdeSubstrate().run(net, np.ones((4, 2)), np.zeros((1, 4, 9)), Schedule())
    with pytest.raises(InvalidInputError, match="bias"):
        OdeSubstrate().run(net, np.zeros((4, 3)), np.zeros((1, 4, 9)), Schedule())


def test_unknown_substrate_lists_choices():
    with pytest.raises(InvalidInputError, match="Unknown substrate 'nope'; use one of 'ode'"):
        get_substrate("nope")
    with pytest.raises(InvalidInputError, match="method"):
        OdeSubstrate(method="rk4")
