"""Model families: each states its dynamics, Jacobian and learning rule in one place.

All four families share one form of the unbounded dynamics, a linear vector field

    ds_j/dt = sum_i A[i, j] s_i + c_j - d_j s_j   (+ beta (y_j - s_j) on outputs when nudged)

projected onto the box [0, 1] (the hard sigmoid), with inputs and bias clamped. A family says
how ``A``, ``c`` and ``d`` follow from its weights; the substrates use that form or their own
physical reading of it (see ``shared/spec/DEEP.md``). Time is in units of tau (the spec's unit
time); states are dimensionless (1.0 = V_scale on a circuit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import numpy as np

from ..errors import InvalidInputError


@dataclass(frozen=True)
class LinearForm:
    """``A (..., N, N)``, ``c (..., N)``, ``d (..., N)`` of ``ds = s @ A + c - d * s``."""

    A: np.ndarray
    c: np.ndarray
    d: np.ndarray


class Family:
    """One model family. Subclasses set the class attributes and the three methods."""

    name: ClassVar[str]
    summary: ClassVar[str]
    #: Which learning rule trains it: "stdp" (DEEP's trajectory rule), "endpoint" (asymmetric
    #: EP), or "contrastive" (symmetric EP).
    rule: ClassVar[str]
    #: Every rule the family can train with (its own ``rule`` first); see :func:`select_rule`.
    rules: ClassVar[tuple[str, ...]] = ()
    #: Family parameters with their defaults (dimensionless, in units of 1/tau for rates).
    defaults: ClassVar[Mapping[str, float]] = {}
    #: Whether the family has a learned per-neuron bias vector ``b`` besides the bias neuron.
    has_bias_vector: ClassVar[bool] = False
    #: Whether weights must be symmetric.
    symmetric: ClassVar[bool] = False

    def linear_form(self, W: np.ndarray, b: np.ndarray, params: Mapping[str, float]) -> LinearForm:
        """``A, c, d`` of the unbounded dynamics for weights ``W (..., N, N)`` and bias ``b (..., N)``."""
        raise NotImplementedError

    def velocity(self, s: np.ndarray, W: np.ndarray, b: np.ndarray, params: Mapping[str, float]) -> np.ndarray:
        """Unbounded free-phase velocity ds/dt (1/tau) for states ``s (..., P, N)`` (no clamping)."""
        f = self.linear_form(W, b, params)
        return s @ f.A + f.c[..., None, :] - f.d[..., None, :] * s

    def jacobian(self, W: np.ndarray, b: np.ndarray, params: Mapping[str, float]) -> np.ndarray:
        """Jacobian ``J[j, i] = d(ds_j/dt)/ds_i`` of the unbounded free dynamics (all neurons)."""
        f = self.linear_form(W, b, params)
        n = W.shape[-1]
        return np.swapaxes(f.A, -1, -2) - f.d[..., :, None] * np.eye(n)

    def form_gradient(self, gA: np.ndarray, gc: np.ndarray, gd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Chain rule through :meth:`linear_form`: ``(dL/dW, dL/db)`` from ``dL/dA, dL/dc, dL/dd``.

        ``linear_form`` is affine in ``(W, b)``, so this is exact. Used by the gradient check
        (:mod:`deepcircuit.stability.gradient_check`).
        """
        raise NotImplementedError

    def energy(self, s: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Energy of the state (only families with an energy function define it)."""
        raise InvalidInputError(f"The {self.name!r} family has no energy function; only 'ep-sym' does.")


class Deep(Family):
    name = "deep"
    summary = "DEEP: ds_j = sum_i W[i,j] s_i - s_j sum_k W[j,k] (inflow minus outflow)"
    rule = "stdp"
    # stdp2: DEEP's rule with both endpoints' changes (post minus pre), closer to the gradient;
    # stdp2-mirror: the same, with backward synapses taking their forward twin's update.
    rules = ("stdp", "stdp2", "stdp2-mirror")

    def linear_form(self, W, b, params):
        return LinearForm(A=W, c=np.zeros(W.shape[:-1]), d=W.sum(axis=-1))

    def form_gradient(self, gA, gc, gd):
        # A = W and d_i = sum_k W[i, k]: W[i, j] is both j's inflow and i's outflow.
        return gA + gd[..., :, None], np.zeros(gc.shape)


class DeepLeaky(Family):
    name = "deep-leaky"
    summary = "leaky DEEP: DEEP plus a leak -gamma * s_j on every free neuron"
    rule = "stdp"
    rules = ("stdp", "stdp2", "stdp2-mirror")
    defaults = {"gamma": 0.1}

    def linear_form(self, W, b, params):
        gamma = float(params.get("gamma", self.defaults["gamma"]))
        return LinearForm(A=W, c=np.zeros(W.shape[:-1]), d=W.sum(axis=-1) + gamma)

    def form_gradient(self, gA, gc, gd):
        return gA + gd[..., :, None], np.zeros(gc.shape)


class EpAsym(Family):
    name = "ep-asym"
    summary = "asymmetric (vector-field) EP: ds = s @ W + b - s; endpoint rule"
    rule = "endpoint"
    rules = ("endpoint",)
    has_bias_vector = True

    def linear_form(self, W, b, params):
        return LinearForm(A=W, c=b, d=np.ones(W.shape[:-1]))

    def form_gradient(self, gA, gc, gd):
        return gA, gc


class EpSym(Family):
    name = "ep-sym"
    summary = "symmetric EP (Scellier & Bengio 2017): Hopfield energy, W = W.T; contrastive rule"
    rule = "contrastive"
    rules = ("contrastive",)
    has_bias_vector = True
    symmetric = True

    def linear_form(self, W, b, params):
        # With rho = hard sigmoid and states kept in [0, 1], rho(s) = s and rho'(s) = 1, so
        # -dE/ds reduces to s @ W + b - s.
        return LinearForm(A=W, c=b, d=np.ones(W.shape[:-1]))

    def form_gradient(self, gA, gc, gd):
        return gA, gc

    def energy(self, s, W, b):
        """``E = 1/2 sum s_i^2 - 1/2 sum_{i != j} Ws_ij s_i s_j - sum b_i s_i`` for ``s (..., N)``.

        With states in [0, 1], rho(s) = s. ``Ws`` is ``W`` completed symmetrically: the model
        stores an input coupling one way only (``W[x, j]``; ``W[j, x]`` is forbidden), and it
        counts in both directions here, so that the free dynamics ``ds = s @ W + b - s`` is
        exactly ``-dE/ds`` on the free neurons and ``E`` never increases along them.
        """
        rho = np.clip(s, 0.0, 1.0)
        Wz = W * (1.0 - np.eye(W.shape[-1]))
        Ws = np.where(Wz != 0.0, Wz, np.swapaxes(Wz, -1, -2))
        quad = np.einsum("...i,...ij,...j->...", rho, Ws, rho)
        return 0.5 * np.sum(s * s, axis=-1) - 0.5 * quad - np.sum(b * rho, axis=-1)


FAMILIES: dict[str, Family] = {f.name: f for f in (Deep(), DeepLeaky(), EpAsym(), EpSym())}


def get_family(name: str) -> Family:
    """The family object for ``name``; unknown names fail with the list of choices."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise InvalidInputError(
            f"Unknown model family {name!r}; use one of {', '.join(map(repr, FAMILIES))}.") from None


def select_rule(family: "Family | str", rule: str | None = None) -> str:
    """The learning rule a network of ``family`` trains with: ``rule``, or the family's own.

    A rule the family cannot use (for example ``stdp2``, which needs DEEP's trajectories, on an
    EP family) fails with the family's choices.
    """
    fam = family if isinstance(family, Family) else get_family(family)
    if rule is None:
        return fam.rule
    if rule not in fam.rules:
        raise InvalidInputError(
            f"The {fam.name!r} family cannot train with rule {rule!r}; use one of {', '.join(map(repr, fam.rules))}.")
    return rule
