"""The pieces of a finite-difference gradient check that the ideal and the as-built references
share: the perturbed networks and the settled loss.

Both :mod:`.gradient_check` (the ideal model) and :mod:`.as_built` (the circuit as built) take the
gradient of the settled output loss ``0.5 * sum (s_out - y)^2 / P`` with respect to programmed
weights by central differences; only how a perturbed network is settled differs.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..model.network import Network
from ..substrates import Schedule


def perturbed_networks(network: Network, entries: Iterable[tuple[int, int]], h: float) -> list[Network]:
    """For each entry ``(i, j)`` the networks with ``W[i, j] + h`` and ``W[i, j] - h``, in that
    order; for a symmetric family (ep-sym) a free pair moves in both directions."""
    r = network.roles
    W0 = np.asarray(network.weights)
    sym = network.family_.symmetric
    nets = []
    for i, j in entries:
        for sign in (1.0, -1.0):
            W = W0.copy()
            W[i, j] += sign * h
            if sym and i >= r.n_inputs and j >= r.n_inputs:
                W[j, i] += sign * h
            nets.append(network.with_weights(W))
    return nets


def settle_schedule(dt: float, settle_steps: int) -> Schedule:
    """A free phase run to a tight equilibrium (the perturbed networks start at the unperturbed one)."""
    return Schedule(dt=dt, free_steps=settle_steps, nudged_steps=0, beta=0.0, settle_tol=1e-12,
                    stop_at_equilibrium=True)


def output_loss(states: np.ndarray, outputs, y: np.ndarray, n_targets: int) -> float:
    """``0.5 * sum (s_out - y)^2 / n_targets`` over settled ``states (P, N)`` (dimensionless)."""
    d = states[:, outputs] - y
    return 0.5 * float(np.sum(d * d)) / n_targets


def central_differences(losses: Sequence[float], h: float) -> np.ndarray:
    """``(L(+h) - L(-h)) / 2h`` per entry, from losses in :func:`perturbed_networks`'s order."""
    pairs = np.asarray(losses, dtype=float).reshape(-1, 2)
    return (pairs[:, 0] - pairs[:, 1]) / (2.0 * h)
