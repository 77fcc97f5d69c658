"""The contraction certificate of deep-leaky: one globally attracting equilibrium when gamma > gamma_min."""

from __future__ import annotations

import numpy as np
import pytest

from deepcircuit import Network, NetworkBatch, Roles, Schedule, get_substrate
from deepcircuit.stability.certificates import contraction


def _leaky(gamma, seed=0, neg=True):
    roles = Roles(3, (6,), 2)
    net = Network.create(roles, family="deep-leaky", params={"gamma": gamma}, init_scale=0.6, rng=seed)
    W = np.array(net.weights)
    if not neg:
        W = np.abs(W)
    return net.with_weights(W)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_certified_network_has_one_attracting_equilibrium(seed):
    probe = contraction(_leaky(0.0, seed))
    assert probe.gamma_min <= probe.column_bound + 1e-12
    assert probe.gamma_min > 0          # signed weights: plain DEEP is not certified
    net = _leaky(probe.gamma_min + 0.3, seed)
    c = contraction(net)
    assert c.holds and c.rate == pytest.approx(0.3, abs=1e-6)
    # From 30 initial states spread over the whole box, projected Euler (dt below the bound)
    # reaches one and the same state, and ||s - s*||_c shrinks at least by (1 - dt rate) per step.
    rng = np.random.default_rng(seed)
    P = 30
    x = np.tile([0.3, 0.8, 1.0], (P, 1))
    s0 = rng.uniform(0.0, 1.0, size=(1, P, net.n_neurons))
    dt = min(0.05, c.euler_dt_max)
    traj = get_substrate("ode").run(NetworkBatch.of(net), x, s0, Schedule(dt=dt, free_steps=3000,
                                                                          nudged_steps=0)).free
    final = traj.final[0]
    assert np.ptp(final, axis=0).max() < 1e-8
    e = np.abs(traj.states[0, :, :, 3:] - final[0, 3:]) @ c.weights       # (P, T)
    factor = 1.0 - dt * c.rate
    steps = np.arange(e.shape[1])
    assert np.all(e <= e[:, :1] * factor ** steps + 1e-12)


def test_plain_deep_and_small_leak_not_certified():
    nonneg = _leaky(0.0, 3, neg=False)
    c = contraction(nonneg)
    # non-negative weights: alpha(M_0) = 0 exactly (conserved activity), so gamma_min = 0 ...
    assert not c.holds and abs(c.gamma_min) < 1e-9 and c.column_bound == 0.0
    # ... and any leak certifies it
    assert contraction(_leaky(0.01, 3, neg=False)).holds
    signed = _leaky(0.0, 0)
    g0 = contraction(signed).gamma_min
    assert not contraction(_leaky(0.9 * g0, 0)).holds
