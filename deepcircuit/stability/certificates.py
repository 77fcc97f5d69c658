"""Stability certificates from the network alone: Gershgorin conditions and contraction.

Everything here reads a :class:`~deepcircuit.model.network.Network`; nothing runs a simulation
or knows about substrates.

* :func:`gershgorin`: the authors' sufficient conditions (see ``shared/spec/DEEP.md``) on the
  Jacobian ``J`` of the unbounded dynamics over the free neurons: a negative diagonal, strict
  row dominance (``sum_{i != j} |J[j, i]| < |J[j, j]|``: the in-weights of j) and strict column
  dominance (``sum_{k != j} |J[k, j]| < |J[j, j]|``: the out-weights of j). For ``ep-asym`` the
  diagonal is -1 and these are "row / column sum of |W| below 1".
* :func:`contraction`: a weighted 1-norm in which the projected dynamics contract (one, globally
  attracting equilibrium).

The linearisation at an equilibrium is in :mod:`.equilibrium`, the Lyapunov functions these
certify in :mod:`.lyapunov_functions` (both build on :func:`free_jacobian` here).

Times are in units of tau, so eigenvalues, margins and rates are in 1/tau; states are
dimensionless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .._validation import check_choice, check_real
from ..errors import InvalidInputError
from ..model.network import Network

CONDITIONS = ("negative_diagonal", "row_dominance", "column_dominance")


def finite_or_none(x) -> float | None:
    """``float(x)``, or None when it is not finite (for the ``to_dict`` JSON forms)."""
    x = float(x)
    return x if np.isfinite(x) else None


def check_network(network) -> Network:
    """``network`` if it is one :class:`~deepcircuit.model.network.Network`, else a clear refusal."""
    if not isinstance(network, Network):
        raise InvalidInputError(
            f"Expected a deepcircuit Network; got {type(network).__name__}. "
            "For a batch, analyse each network of batch.networks.")
    return network


def free_jacobian(network: Network, *, beta: float = 0.0) -> np.ndarray:
    """Jacobian ``J[j, i] = d(ds_j/dt)/ds_i`` (1/tau) over the free neurons, shape ``(F, F)``.

    Rows and columns are the free neurons in state order (hidden, then outputs). ``beta > 0``
    gives the nudged-phase Jacobian (``-beta`` on the output diagonal). It is the family's
    :meth:`~deepcircuit.model.families.Family.jacobian` cut to the free block.
    """
    network = check_network(network)
    beta = check_real("beta", beta, low=0.0)
    r = network.roles
    with np.errstate(over="ignore", invalid="ignore"):
        J = network.family_.jacobian(network.weights, network.bias, network.params)[r.free, r.free].copy()
        # Every certificate sums |J| along rows or columns: those sums must be finite too.
        scale = float(np.abs(J).sum()) if J.size else 0.0
    if not np.isfinite(scale):
        big = float(np.max(np.abs(network.weights), initial=0.0))
        raise InvalidInputError(
            f"The network's weights are too large to analyse: the free-neuron Jacobian (sums of weights, "
            f"1/tau) overflows float64 (largest |W| {big:.3g}); the stability checks need the absolute "
            "weight sums to stay finite (below about 1.8e308).")
    n_hidden = r.n_neurons - r.n_inputs - r.n_outputs
    J[np.arange(n_hidden, J.shape[0]), np.arange(n_hidden, J.shape[0])] -= beta
    return J


# -- Gershgorin ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """One Gershgorin condition: whether it holds, and each neuron's margin (1/tau).

    ``margins[name] > tol`` means neuron ``name`` satisfies the condition with that much to
    spare; ``failing`` lists the neurons whose margin is not above ``tol`` (strict inequalities:
    a margin of exactly 0 fails).
    """

    name: str
    description: str
    holds: bool
    failing: tuple[str, ...]
    margins: dict
    tol: float

    @property
    def min_margin(self) -> float:
        """The smallest margin (1/tau); ``inf`` over no neurons."""
        return min(self.margins.values(), default=float("inf"))

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "holds": self.holds,
                "failing": list(self.failing), "min_margin": finite_or_none(self.min_margin),
                "margins": {k: float(v) for k, v in self.margins.items()}, "tol": self.tol}


@dataclass(frozen=True)
class Gershgorin:
    """The Gershgorin conditions of one network (one phase), by name in :data:`CONDITIONS`."""

    family: str
    beta: float
    neurons: tuple[str, ...]
    conditions: dict

    def __getitem__(self, name: str) -> Condition:
        return self.conditions[check_choice("condition", name, CONDITIONS)]

    @property
    def certified(self) -> bool:
        """Negative diagonal and strict row or column dominance: the Jacobian is Hurwitz."""
        c = self.conditions
        return c["negative_diagonal"].holds and (c["row_dominance"].holds or c["column_dominance"].holds)

    @property
    def rate_1norm(self) -> float:
        """Guaranteed decay rate (1/tau) of ``||s - s*||_1`` under column dominance (else 0)."""
        c = self.conditions
        ok = c["negative_diagonal"].holds and c["column_dominance"].holds
        return max(c["column_dominance"].min_margin, 0.0) if ok else 0.0

    @property
    def rate_maxnorm(self) -> float:
        """Guaranteed decay rate (1/tau) of ``||s - s*||_inf`` under row dominance (else 0)."""
        c = self.conditions
        ok = c["negative_diagonal"].holds and c["row_dominance"].holds
        return max(c["row_dominance"].min_margin, 0.0) if ok else 0.0

    def to_dict(self) -> dict:
        return {"family": self.family, "beta": self.beta, "neurons": list(self.neurons),
                "certified": self.certified,
                **{name: cond.to_dict() for name, cond in self.conditions.items()}}


def _descriptions(family: str) -> dict:
    if family == "ep-asym":
        return {"negative_diagonal": "J[j,j] = -1 < 0 (always true for ep-asym)",
                "row_dominance": "sum_i |W[i,j]| < 1 over free i (row sum of |W| into j)",
                "column_dominance": "sum_k |W[j,k]| < 1 over free k (column sum of |W| out of j)"}
    return {"negative_diagonal": "J[j,j] < 0 (for deep: -sum_k W[j,k] < 0, minus gamma if leaky)",
            "row_dominance": "sum_{i != j} |J[j,i]| < |J[j,j]|  (in-weights |W[i,j]| from free i)",
            "column_dominance": "sum_{k != j} |J[k,j]| < |J[j,j]|  (out-weights |W[j,k]| to free k)"}


def gershgorin(network: Network, *, beta: float = 0.0, neurons: Sequence | None = None,
               tol: float = 1e-12) -> Gershgorin:
    """The Gershgorin conditions on the free-neuron Jacobian of ``network``.

    Parameters
    ----------
    network : Network
        The network (any family).
    beta : float
        Nudging strength (1/tau); 0 for the free phase (the authors' check).
    neurons : sequence of names or indices, optional
        Restrict ``J`` to these free neurons (for example the ones not held at a bound);
        default: every free neuron.
    tol : float
        Relative tolerance: a margin must exceed ``tol * max(1, max |J|)`` to count, so that
        DEEP's exactly-zero column margins (conservation) are not certified by rounding.
    """
    network = check_network(network)
    tol = check_real("tol", tol, low=0.0)
    J = free_jacobian(network, beta=beta)
    r = network.roles
    names = r.names[r.n_inputs:]
    if neurons is not None:
        idx = [r.index_of(n) - r.n_inputs for n in neurons]
        if any(i < 0 for i in idx):
            raise InvalidInputError("Gershgorin 'neurons' must be free neurons (hidden or outputs), not inputs.")
        J = J[np.ix_(idx, idx)]
        names = [names[i] for i in idx]
    return _conditions(J, names, network.family, float(beta), tol)


def gershgorin_margins(J: np.ndarray) -> dict:
    """Per-neuron margins (1/tau) of the three conditions for Jacobians ``J (..., F, F)``.

    Returns ``{condition: array (..., F)}``; a condition holds where its margin is positive.
    """
    diag = np.diagonal(J, axis1=-2, axis2=-1)
    off = np.abs(J) * (1.0 - np.eye(J.shape[-1]))
    return {"negative_diagonal": -diag,
            "row_dominance": np.abs(diag) - off.sum(axis=-1),
            "column_dominance": np.abs(diag) - off.sum(axis=-2)}


def _conditions(J: np.ndarray, names: Sequence[str], family: str, beta: float, tol: float) -> Gershgorin:
    thr = tol * max(1.0, float(np.abs(J).max(initial=0.0)))
    margins = gershgorin_margins(J)
    desc = _descriptions(family)
    conds = {}
    for name in CONDITIONS:
        m = margins[name]
        failing = tuple(n for n, v in zip(names, m) if not v > thr)
        conds[name] = Condition(name, desc[name], not failing, failing,
                                {n: float(v) for n, v in zip(names, m)}, thr)
    return Gershgorin(family, beta, tuple(names), conds)


# -- contraction: a unique, globally attracting equilibrium -----------------------------------
@dataclass(frozen=True)
class Contraction:
    """Contraction of the projected dynamics in a weighted 1-norm ``||x||_c = sum_j c_j |x_j|``.

    The free dynamics of every family are affine between the bounds, with Jacobian ``J`` over the
    free neurons. Let ``M`` be its comparison (Metzler) matrix, ``M[j, j] = J[j, j]`` and
    ``M[k, j] = |J[k, j]|`` for ``k != j``, and ``alpha(M)`` its spectral abscissa (1/tau). If
    ``alpha(M) < 0``, the left Perron vector ``c > 0`` of ``M`` gives the matrix measure
    ``mu_c(J) = max_j (J[j, j] + sum_{k != j} c_k |J[k, j]| / c_j) = alpha(M) < 0``: two
    trajectories of the unbounded flow approach each other in ``||.||_c`` at rate ``-alpha(M)``.
    The projection onto [0, 1] is a coordinatewise 1-Lipschitz map, so it never expands
    ``||.||_c``: projected Euler with ``dt <= euler_dt_max`` is a contraction of the box with
    factor ``1 + dt alpha(M)``, and the projected flow (its ``dt -> 0`` limit) has **one
    equilibrium, globally attracting**, reached at rate ``-alpha(M)`` (Banach). The nudge only
    adds ``-beta`` to output diagonals, so a free-phase certificate covers the nudged phase.

    For ``deep-leaky``, ``J = W^T - diag(W.sum(1) + gamma)`` on the free block, so
    ``alpha(M) = alpha(M_0) - gamma`` with ``M_0`` the comparison matrix of plain DEEP: the
    condition is **gamma > gamma_min = alpha(M_0)**, and Gershgorin on the columns gives the
    simple bound ``alpha(M_0) <= 2 max_j sum_k max(-W[j, k], 0)`` over free j, k (twice the
    largest negative out-weight sum). With non-negative weights any ``gamma > 0`` certifies;
    plain DEEP (gamma = 0) then has ``alpha(M_0) = 0``: conserved activity, not certified.

    Attributes: ``holds``; ``alpha`` (alpha(M), 1/tau); ``rate`` (``-alpha`` when it holds, else 0);
    ``weights`` (c, shape (F,), normalised to sum 1); ``gamma_min`` (alpha(M_0): the leak above
    which the network is certified; meaningful for the deep families); ``column_bound`` (the
    Gershgorin bound on ``gamma_min``); ``euler_dt_max`` (tau).
    """

    holds: bool
    alpha: float
    rate: float
    weights: np.ndarray
    gamma_min: float
    column_bound: float
    euler_dt_max: float
    family: str

    def to_dict(self) -> dict:
        return {"holds": self.holds, "alpha": finite_or_none(self.alpha), "rate": finite_or_none(self.rate),
                "weights": [float(x) for x in self.weights], "gamma_min": finite_or_none(self.gamma_min),
                "column_bound": finite_or_none(self.column_bound), "euler_dt_max": finite_or_none(self.euler_dt_max),
                "family": self.family}


def _comparison(J: np.ndarray) -> np.ndarray:
    M = np.abs(J)
    np.fill_diagonal(M, np.diagonal(J))
    return M


def _perron(M: np.ndarray) -> tuple[float, np.ndarray]:
    """Spectral abscissa of a Metzler matrix and a positive left eigenvector for it."""
    if not M.size:
        return float("-inf"), np.zeros(0)
    ev, vec = np.linalg.eig(M.T)
    k = int(np.argmax(ev.real))
    c = np.abs(vec[:, k].real)
    # A reducible M may give zero entries; any c > 0 close to the Perron vector still bounds the
    # measure by the computed value up to the margin, so floor them and re-measure.
    c = np.maximum(c / max(c.sum(), 1e-300), 1e-12)
    return float(ev[k].real), c / c.sum()


def contraction(network: Network, *, tol: float = 1e-9) -> Contraction:
    """The weighted 1-norm contraction certificate of ``network``'s free dynamics (see :class:`Contraction`).

    ``holds`` needs the measure ``mu_c(J)`` computed with the returned weights to be below
    ``-tol * max(1, max |J|)`` (so DEEP's exact zero is not certified by rounding).
    """
    network = check_network(network)
    tol = check_real("tol", tol, low=0.0)
    J = free_jacobian(network)
    alpha, c = _perron(_comparison(J))
    # The measure with these weights (what the certificate actually uses).
    if J.size:
        off = np.abs(J) * (1.0 - np.eye(J.shape[0]))
        mu = float(np.max(np.diagonal(J) + (c @ off) / c))
    else:
        mu = float("-inf")
    thr = tol * max(1.0, float(np.abs(J).max(initial=0.0)))
    holds = bool(mu < -thr)
    r = network.roles
    W = np.asarray(network.weights)[r.free, r.free]
    gamma = float(network.params.get("gamma", 0.0)) if network.family.startswith("deep") else 0.0
    if network.family.startswith("deep"):
        alpha0, _ = _perron(_comparison(J + gamma * np.eye(J.shape[0])))
        bound = float(2.0 * np.max(np.maximum(-W, 0.0).sum(axis=1), initial=0.0))
    else:
        alpha0, bound = float("nan"), float("nan")
    diag = np.abs(np.diagonal(J))
    dt_max = float(1.0 / diag.max()) if diag.size and diag.max() > 0 else float("inf")
    return Contraction(holds, mu, -mu if holds else 0.0, c, alpha0, bound, dt_max, network.family)
