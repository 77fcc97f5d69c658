"""Shared fixtures: small networks and a literal copy of the reference scheme."""

from __future__ import annotations

import numpy as np
import pytest

from deepcircuit import Network, Roles, get_task


def cosine(a, b) -> float:
    """Cosine similarity of two update vectors (spike-based against rate updates)."""
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def xor_networks_in_training():
    """Two XOR networks (seeds 0 and 2) three ODE epochs into training: their nudged phases
    still move the states, so their updates are far from zero."""
    import warnings

    from deepcircuit.learning.config import TrainingConfig
    from deepcircuit.learning.training import train

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train("xor", seeds=[0, 2], config=TrainingConfig.preset("default").replace(epochs=3)).networks


@pytest.fixture
def xor():
    return get_task("xor")


@pytest.fixture
def xor_roles():
    return Roles(3, (5,), 1)


@pytest.fixture
def deep_net(xor_roles):
    return Network.create(xor_roles, family="deep", rng=1)


def reference_phase(S, W, N_X, dt, steps, beta=0.0, Y=None):
    """The reference notebook's per-step numpy loop for one network (states (P, N))."""
    S = S.copy()
    traj = [S.copy()]
    for _ in range(steps):
        dS = S @ W - S * (np.sum(W, axis=1))
        if Y is not None:
            dS[:, -Y.shape[1]:] += beta * (Y - S[:, -Y.shape[1]:])
        S[:, N_X:] += dt * dS[:, N_X:]
        S[:, N_X:] = np.clip(S[:, N_X:], 0, 1)
        traj.append(S.copy())
    return np.array(traj)
