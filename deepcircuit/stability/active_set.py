"""Exact equilibria near a substrate's settled states: the projected Newton (active-set) iteration.

A substrate's settled free state is close to an equilibrium of the projected dynamics, not on
one; a gradient of the settled loss needs the exact equilibrium and the *interior* set (the free
neurons the projection onto [0, 1] does not hold at a bound). Both gradient references polish
with the one iteration here, :func:`active_set_equilibria`: the ideal model
(:func:`~deepcircuit.stability.gradient_check.polish_equilibria`: linear between the bounds, one
solve) and the circuit as built (:func:`~deepcircuit.stability.as_built.polish`: Newton steps
through the synapses' element law). Each passes its field and its solve on the interior set.

States are dimensionless; velocities (the field) in 1/tau.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True, eq=False)
class Equilibria:
    """Free equilibria of one network, one row per presentation.

    ``states (P, N)``; ``interior (P, N)`` bool: free neurons not held at a bound;
    ``singular (P,)``: the interior Jacobian is singular (no isolated equilibrium);
    ``converged (P,)``: the polished state is an equilibrium of the projected dynamics
    (residual below ``tol``); ``residual (P,)`` the largest projected velocity (1/tau).
    """

    states: np.ndarray
    interior: np.ndarray
    singular: np.ndarray
    converged: np.ndarray
    residual: np.ndarray

    @property
    def usable(self) -> np.ndarray:
        """Presentations with an isolated, converged equilibrium (a gradient exists)."""
        return self.converged & ~self.singular


def is_singular(J: np.ndarray, rcond: float) -> bool:
    """Whether ``J`` is singular to relative condition ``rcond`` (smallest singular value at most
    ``rcond * max(1, largest)``); an empty matrix is not."""
    if not J.size:
        return False
    sv = np.linalg.svd(J, compute_uv=False)
    return bool(sv[-1] <= rcond * max(1.0, sv[0]))


def active_set_equilibria(states, n_inputs: int, field: Callable[[np.ndarray], np.ndarray],
                          solve_interior: Callable[[np.ndarray, np.ndarray], bool], *, tol: float,
                          scale: float, max_iter: int) -> Equilibria:
    """Equilibria of the projected dynamics near ``states (P, N)`` (the first ``n_inputs`` clamped).

    Starting from the free neurons strictly inside [0, 1] (by 1e-6) as the interior set, this
    alternates ``solve_interior(s, I)`` (moves ``s[I]`` in place onto ``F_I(s) = 0``; returns True
    when the interior Jacobian is singular, which ends the presentation) with releasing held
    neurons whose velocity ``field(s)`` (1/tau) points inward (beyond ``tol``) and holding
    interior ones that left [0, 1], at most ``max_iter`` times, until the set no longer changes.
    A presentation has converged when its largest projected velocity is at most ``tol * scale``.
    """
    states = np.array(states, dtype=float)
    P, N = states.shape
    nx = n_inputs
    interior = np.zeros((P, N), dtype=bool)
    singular = np.zeros(P, dtype=bool)
    converged = np.zeros(P, dtype=bool)
    residual = np.full(P, np.inf)
    for p in range(P):
        s = states[p].copy()
        s[nx:] = np.clip(s[nx:], 0.0, 1.0)
        inner = np.zeros(N, dtype=bool)
        inner[nx:] = (s[nx:] > 1e-6) & (s[nx:] < 1.0 - 1e-6)
        for _ in range(max_iter):
            if solve_interior(s, np.flatnonzero(inner)):
                singular[p] = True
                break
            if not _update_active_set(s, inner, field(s), nx, tol):
                break
        vf, sf = field(s)[nx:], s[nx:]
        proj = np.where(((sf <= 0.0) & (vf < 0.0)) | ((sf >= 1.0) & (vf > 0.0)), 0.0, vf)
        residual[p] = float(np.abs(proj).max(initial=0.0))
        converged[p] = residual[p] <= tol * scale
        states[p], interior[p] = s, inner
    return Equilibria(states, interior, singular, converged, residual)


def _update_active_set(s: np.ndarray, inner: np.ndarray, v: np.ndarray, nx: int, tol: float) -> bool:
    """Hold interior neurons that left [0, 1] (clipped back) and release held ones whose velocity
    ``v`` points inward; ``s`` and ``inner`` change in place. Returns whether the set changed."""
    changed = False
    for j in range(nx, len(s)):
        if inner[j] and not (0.0 <= s[j] <= 1.0):
            s[j] = min(max(s[j], 0.0), 1.0)
            inner[j], changed = False, True
        elif not inner[j] and ((s[j] <= 0.0 and v[j] > tol) or (s[j] >= 1.0 and v[j] < -tol)
                               or 0.0 < s[j] < 1.0):
            inner[j], changed = True, True
    return changed
