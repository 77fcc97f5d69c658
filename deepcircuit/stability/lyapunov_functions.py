"""Lyapunov functions of a network, each with the condition that certifies it (or why none does).

:func:`lyapunov_function` picks or checks one of: the energy (``ep-sym``), the 1-norm and the
max-norm (certified by Gershgorin column / row dominance, :mod:`.certificates`: global) and a
quadratic form at a Hurwitz equilibrium (:mod:`.equilibrium`: local). :class:`LyapunovFunction`
evaluates ``V(s; s*)``; :mod:`.lyapunov` evaluates it along any substrate's trajectory.

Times are in units of tau, so rates are in 1/tau; states are dimensionless.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validation import check_choice, check_real
from ..errors import InvalidInputError
from ..model.network import Network
from .certificates import Gershgorin, check_network, finite_or_none, gershgorin
from .equilibrium import EquilibriumAnalysis

FUNCTIONS = ("auto", "energy", "1-norm", "max-norm", "quadratic")


@dataclass(frozen=True, eq=False)
class LyapunovFunction:
    """A candidate Lyapunov function ``V(s; s*)`` and what (if anything) certifies it.

    Attributes
    ----------
    name : str
        ``"1-norm"`` (``||s - s*||_1``), ``"max-norm"`` (``||s - s*||_inf``), ``"quadratic"``
        (``(s - s*)^T P (s - s*)``) or ``"energy"`` (``E(s) - E(s*)``, plus ``beta * C`` when
        nudged), over the free neurons.
    condition : str
        The condition that certifies it, or why it is only an empirical check.
    certified : bool
        Whether the condition holds (so V must not increase along exact trajectories).
    scope : str
        ``"global"``: V never increases anywhere in the box [0, 1] (Gershgorin norms, energy);
        ``"local"``: only near ``s*`` (the quadratic form, valid while the held neurons stay
        held and the linearisation holds), so V may rise early on a trajectory that starts far
        away; ``"none"``: not certified.
    guaranteed_rate : float or None
        Exponential decay rate (1/tau) the certificate guarantees for V, when it gives one.
    P : array (F, F) or None
        The quadratic form over the free neurons.
    """

    name: str
    condition: str
    certified: bool
    network: Network = field(repr=False)
    guaranteed_rate: float | None = None
    P: np.ndarray | None = None
    beta: float = 0.0

    def __call__(self, states, equilibrium, *, target=None) -> np.ndarray:
        """V of ``states (..., N)`` relative to ``equilibrium`` (broadcastable to them)."""
        states = np.asarray(states, dtype=float)
        eq = np.asarray(equilibrium, dtype=float)
        if self.name == "energy":
            net = self.network
            fam = net.family_
            V = fam.energy(states, net.weights, net.bias) - fam.energy(eq, net.weights, net.bias)
            if self.beta > 0.0:
                if target is None:
                    raise InvalidInputError("The nudged-phase energy needs the presentation's 'target'.")
                out = net.roles.outputs
                cost = lambda s: 0.5 * np.sum((np.asarray(target) - s[..., out]) ** 2, axis=-1)
                V = V + self.beta * (cost(states) - cost(eq))
            return V
        free = self.network.roles.free
        e = states[..., free] - eq[..., free]
        if self.name == "1-norm":
            return np.abs(e).sum(axis=-1)
        if self.name == "max-norm":
            return np.abs(e).max(axis=-1, initial=0.0)
        return np.einsum("...i,ij,...j->...", e, self.P, e)

    @property
    def scope(self) -> str:
        if not self.certified:
            return "none"
        return "local" if self.name == "quadratic" else "global"

    def to_dict(self) -> dict:
        return {"name": self.name, "condition": self.condition, "certified": self.certified,
                "scope": self.scope,
                "guaranteed_rate": None if self.guaranteed_rate is None else finite_or_none(self.guaranteed_rate)}


def quadratic_form(analysis: EquilibriumAnalysis, n_free: int, n_inputs: int) -> np.ndarray:
    """``P (F, F)`` of the quadratic Lyapunov function at a Hurwitz equilibrium.

    On the neurons kept in ``analysis``, ``P`` solves ``J^T P + P J = -I``
    (:func:`scipy.linalg.solve_continuous_lyapunov`); a held neuron, which stays at its bound
    near ``s*``, gets ``lambda_max`` of that block so that V still measures its distance.
    """
    from scipy.linalg import solve_continuous_lyapunov

    if not analysis.hurwitz:
        raise InvalidInputError(
            f"The quadratic Lyapunov function needs a Hurwitz restricted Jacobian; this one is "
            f"{analysis.status} (spectral abscissa {analysis.spectral_abscissa:.3g} /tau).")
    J = analysis.jacobian
    P = np.eye(n_free)
    if J.size:
        Pk = solve_continuous_lyapunov(J.T, -np.eye(J.shape[0]))
        Pk = 0.5 * (Pk + Pk.T)
        idx = [j - n_inputs for j in analysis.indices]
        P *= float(np.linalg.eigvalsh(Pk).max())
        P[np.ix_(idx, idx)] = Pk
    return P


def lyapunov_function(network: Network, *, function: str = "auto",
                      analysis: EquilibriumAnalysis | None = None, beta: float = 0.0,
                      certificates: Gershgorin | None = None) -> LyapunovFunction:
    """A Lyapunov function for ``network``, certified where possible.

    ``function="auto"`` picks, in order: the energy for ``ep-sym``; ``1-norm`` under column
    dominance; ``max-norm`` under row dominance; ``quadratic`` when ``analysis`` (the
    equilibrium) has a Hurwitz restricted Jacobian; otherwise the 1-norm as an uncertified,
    empirical check. A named ``function`` is returned with its certificate status.
    ``beta`` (1/tau) selects the nudged phase; the Gershgorin conditions of the free phase are
    used for the norms either way (the nudge only adds ``-beta`` to the output diagonal, so a
    free-phase certificate also covers the nudged phase).
    """
    network = check_network(network)
    check_choice("function", function, FUNCTIONS)
    beta = check_real("beta", beta, low=0.0)
    g = certificates if certificates is not None else gershgorin(network)
    neg = g["negative_diagonal"].holds
    col = neg and g["column_dominance"].holds
    row = neg and g["row_dominance"].holds
    sym = network.family_.symmetric
    if function == "auto":
        if sym:
            function = "energy"
        elif col:
            function = "1-norm"
        elif row:
            function = "max-norm"
        elif analysis is not None and analysis.hurwitz:
            function = "quadratic"
        else:
            function = "1-norm"
    if function == "energy":
        if not sym:
            raise InvalidInputError(
                f"The 'energy' Lyapunov function needs the 'ep-sym' family; this network is {network.family!r}.")
        cond = ("symmetric W: the free dynamics is the gradient flow of E (Scellier & Bengio 2017)"
                if beta == 0.0 else "symmetric W: the nudged dynamics is the gradient flow of E + beta C")
        return LyapunovFunction("energy", cond, True, network, None, None, beta)
    if function == "1-norm":
        if col:
            return LyapunovFunction("1-norm", "Gershgorin column dominance with negative diagonal", True,
                                    network, g.rate_1norm, None, beta)
        why = g["column_dominance"].failing or g["negative_diagonal"].failing
        return LyapunovFunction("1-norm", "none: column dominance fails (neurons "
                                + ", ".join(why) + "); empirical check only", False, network, None, None, beta)
    if function == "max-norm":
        if row:
            return LyapunovFunction("max-norm", "Gershgorin row dominance with negative diagonal", True,
                                    network, g.rate_maxnorm, None, beta)
        why = g["row_dominance"].failing or g["negative_diagonal"].failing
        return LyapunovFunction("max-norm", "none: row dominance fails (neurons "
                                + ", ".join(why) + "); empirical check only", False, network, None, None, beta)
    if analysis is None:
        raise InvalidInputError("The 'quadratic' Lyapunov function needs the equilibrium 'analysis'.")
    r = network.roles
    P = quadratic_form(analysis, r.n_neurons - r.n_inputs, r.n_inputs)
    lam = float(np.linalg.eigvalsh(P).max())
    cond = (f"restricted Jacobian Hurwitz at s* (spectral abscissa {analysis.spectral_abscissa:.3g} /tau): "
            "J^T P + P J = -I; local, near s*")
    return LyapunovFunction("quadratic", cond, True, network, 1.0 / lam, P, beta)
