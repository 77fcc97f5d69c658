"""Removing weak connections. Pruning returns a new live mask; a removed connection stays removed.

Both functions act on stacked weights ``W (S, N, N)`` and live masks ``mask (S, N, N)``.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_real


def stochastic_sparsify(W: np.ndarray, mask: np.ndarray, *, tol: float = 0.01,
                        temperature: float = 5.0, rng: "np.random.Generator | list") -> np.ndarray:
    """The spec's stochastic sparsification; returns the new live mask.

    A live connection with ``|W[i, j]| <= tol`` is removed when ``p[i, j] > u``, ``u ~ U(0, 1)``,
    with ``p[i, j] = exp(-|W[i, j]|/T) / sum_i' exp(-|W[i', j]|/T)``. As in the reference code
    the sum runs over the whole column of W (absent connections count with ``exp(0) = 1``).
    Connections above ``tol`` are never removed. ``rng`` is one generator, or one per network
    (so each seed's draws do not depend on the others in the batch).
    """
    tol = check_real("tol", tol, low=0.0)
    temperature = check_real("temperature", temperature, low=0.0, low_open=True)
    a = np.abs(W)
    e = np.exp(-a / temperature)
    probs = e / e.sum(axis=-2, keepdims=True)
    probs = np.where(a > tol, 0.0, probs)
    if isinstance(rng, (list, tuple)):
        u = np.stack([g.random(W.shape[1:]) for g in rng])
    else:
        u = rng.random(W.shape)
    remove = (probs > u) & (probs != 0) & mask
    return mask & ~remove


def magnitude_prune(W: np.ndarray, mask: np.ndarray, *, tol: float = 0.01) -> np.ndarray:
    """Deterministic pruning: remove every live connection with ``|W[i, j]| <= tol``."""
    tol = check_real("tol", tol, low=0.0)
    return mask & (np.abs(W) > tol)


def symmetric_keep(mask: np.ndarray, free: slice) -> np.ndarray:
    """For symmetric families: a connection between free neurons survives only if its twin does."""
    out = mask.copy()
    sub = out[..., free, free]
    out[..., free, free] = sub & np.swapaxes(sub, -1, -2)
    return out
