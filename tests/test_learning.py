"""Learning rules against explicit sums, written on hand-made trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from deepcircuit import InvalidInputError, PhaseResult, Roles, Trajectory
from deepcircuit.learning.rule import (apply_update, contrastive_update, endpoint_update, stdp_update,
                                       weight_update)


def make_traj(states, phase="nudged", meta=None):
    S, P, T, N = states.shape
    roles = Roles(2, (N - 3,), 1)
    return Trajectory(np.arange(T) * 0.05, states, roles, phase, "test", np.ones((S, P), bool), 1e-4,
                      np.zeros(S, bool), "", meta or {})


@pytest.fixture
def states():
    return np.random.default_rng(0).uniform(size=(2, 4, 31, 5))


@pytest.mark.parametrize("beta0,beta1", [(0.0, 1.0), (0.5, 1.0), (1.0, 0.0), (0.3, -2.0)])
def test_stdp_rule_is_the_reference_sum_of_outer_products(states, beta0, beta1):
    S, P, T, N = states.shape
    T2 = T - 1
    dW = stdp_update(make_traj(states), beta0=beta0, beta1=beta1)
    for s in range(S):
        traj = np.moveaxis(states[s], 1, 0)  # (T, P, N) as in the reference
        A1 = traj[1:]
        A2 = beta0 * traj[1:] + beta1 * (traj[1:] - traj[:-1])
        ref = np.zeros((N, N))
        for t in range(T2):
            for i in range(P):
                ref += np.outer(A1[t, i], A2[t, i])
        ref /= P * T2
        np.testing.assert_allclose(dW[s], ref, rtol=1e-12, atol=1e-15)


def test_stdp_rule_reads_synaptic_traces_when_a_substrate_measured_them(states):
    S, P, T, N = states.shape
    pre = states[:, :, 1:]
    traces = {"pre_dpost": np.einsum("sptn,sptm->snm", pre, states[:, :, 1:] - states[:, :, :-1]),
              "pre_post": np.einsum("sptn,sptm->snm", pre, pre), "samples": T - 1}
    # The states of this trajectory are deliberately wrong: only the traces may be used.
    measured = make_traj(np.zeros_like(states), meta={"synaptic_traces": traces})
    np.testing.assert_allclose(stdp_update(measured, beta0=0.5, beta1=1.0),
                               stdp_update(make_traj(states), beta0=0.5, beta1=1.0), rtol=1e-12)


def test_stdp_rule_on_a_coarser_grid_keeps_its_scale(states):
    # Resampling every 3rd sample: the beta1 term telescopes to nearly the same integral.
    S, P, T, N = states.shape
    smooth = np.cumsum(np.random.default_rng(1).normal(scale=0.01, size=states.shape), axis=2)
    fine = make_traj(smooth)
    coarse = make_traj(smooth[:, :, ::3])
    a = stdp_update(fine, nominal_steps=T - 1)
    b = stdp_update(coarse, nominal_steps=T - 1)
    assert np.abs(a - b).max() < 0.2 * np.abs(a).max()


def test_endpoint_and_contrastive_rules(states):
    free = make_traj(states, "free")
    nudged = make_traj(states[:, :, ::-1].copy())
    res = PhaseResult(free, nudged)
    s0, sb = free.final, nudged.final
    dW, db = endpoint_update(res, beta=2.0)
    ref = sum(np.outer(s0[0, p], sb[0, p] - s0[0, p]) for p in range(4)) / (2.0 * 4)
    np.testing.assert_allclose(dW[0], ref, rtol=1e-12)
    np.testing.assert_allclose(db[0], (sb[0] - s0[0]).sum(0) / 8.0, rtol=1e-12)
    dW, db = contrastive_update(res, beta=2.0)
    ref = sum(np.outer(sb[1, p], sb[1, p]) - np.outer(s0[1, p], s0[1, p]) for p in range(4)) / 8.0
    np.testing.assert_allclose(dW[1], ref, rtol=1e-12)
    np.testing.assert_allclose(dW, np.swapaxes(dW, 1, 2))
    with pytest.raises(InvalidInputError, match="needs the nudged phase"):
        weight_update("endpoint", PhaseResult(free), {"beta": 1.0})
    with pytest.raises(InvalidInputError, match="Unknown learning rule 'hebb'"):
        weight_update("hebb", res, {})


def test_apply_update_follows_the_reference_order():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(1, 4, 4))
    dW = rng.normal(size=(1, 4, 4))
    mask = rng.uniform(size=(1, 4, 4)) > 0.3
    W = np.where(mask, W, 0)
    new, _ = apply_update(W, np.zeros((1, 4)), dW, np.zeros((1, 4)), mask, eta=100.0, l1=1.5e-4)
    np.testing.assert_array_equal(new, np.where(mask, W + 100.0 * dW - 1.5e-4 * np.sign(W), 0))
    new, _ = apply_update(W, np.zeros((1, 4)), dW, np.zeros((1, 4)), mask, eta=0.01, sign=True)
    np.testing.assert_array_equal(new, np.where(mask, W + 0.01 * np.sign(dW), 0))


def test_noise_shrinkage_is_the_signal_share_of_repeated_measurements(states):
    """``max(0, 1 - (v/K) / |m|^2)`` over the live connections, from K repeated sums."""
    from deepcircuit.learning.steps import noise_shrinkage

    rng = np.random.default_rng(3)
    S, N, K = 2, 5, 6
    mask = np.ones((S, N, N), bool)
    mask[:, :, :2] = False  # no connections into the inputs: never read
    mu = np.zeros((S, N, N))
    mu[0] = rng.normal(size=(N, N))            # network 0: signal far above the noise
    each = mu + 0.01 * rng.normal(size=(K, S, N, N))  # network 1: noise only
    each[:, :, :, :2] = 1e6                    # outside the mask: must not count
    share = noise_shrinkage(make_traj(states, meta={"synaptic_traces": {"pre_dpost_each": each}}), mask)
    m, v = each.mean(axis=0), each.var(axis=0, ddof=1)
    want = [1 - (v[k][mask[k]].sum() / K) / (m[k][mask[k]] ** 2).sum() for k in range(S)]
    assert share[0] == pytest.approx(want[0]) and share[0] > 0.99
    assert share[1] == pytest.approx(max(0.0, want[1]), abs=1e-12) and share[1] < 0.5
    with pytest.raises(InvalidInputError, match="repeats >= 2"):
        noise_shrinkage(make_traj(states), mask)


def test_apply_update_takes_one_rate_per_network():
    W = np.ones((2, 3, 3))
    dW = np.full((2, 3, 3), 2.0)
    eta = np.array([0.5, 0.0])[:, None, None]
    W_new, b_new = apply_update(W, np.zeros((2, 3)), dW, np.ones((2, 3)), np.ones((2, 3, 3), bool), eta=eta)
    np.testing.assert_array_equal(W_new[0], 2.0)
    np.testing.assert_array_equal(W_new[1], 1.0)
    np.testing.assert_array_equal(b_new, [[0.5] * 3, [0.0] * 3])
