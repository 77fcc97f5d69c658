"""Stability certificates from the network alone, and at an equilibrium.

Everything here reads a :class:`~deepcircuit.model.network.Network` (and, for the Jacobian at an
equilibrium, a state); nothing runs a simulation or knows about substrates.

* :func:`gershgorin`: the authors' sufficient conditions (see ``shared/spec/DEEP.md``) on the
  Jacobian ``J`` of the unbounded dynamics over the free neurons: a negative diagonal, strict
  row dominance (``sum_{i != j} |J[j, i]| < |J[j, j]|``: the in-weights of j) and strict column
  dominance (``sum_{k != j} |J[k, j]| < |J[j, j]|``: the out-weights of j). For ``ep-asym`` the
  diagonal is -1 and these are "row / column sum of |W| below 1".
* :func:`analyse_equilibrium`: ``J`` restricted to the free neurons that the projection onto
  [0, 1] does not hold at a bound, its eigenvalues, spectral abscissa and a stable / marginal /
  unstable status.
* :func:`lyapunov_function`: a Lyapunov function wherever one can be certified (1-norm,
  max-norm, quadratic, energy), each naming the condition that certifies it.

Times are in units of tau, so eigenvalues, margins and rates are in 1/tau; states are
dimensionless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .._validation import check_array, check_choice, check_real
from ..errors import InvalidInputError
from ..model.network import Network

CONDITIONS = ("negative_diagonal", "row_dominance", "column_dominance")
STATUSES = ("stable", "marginal", "unstable")
FUNCTIONS = ("auto", "energy", "1-norm", "max-norm", "quadratic")


def _float(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _check_network(network) -> Network:
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
    network = _check_network(network)
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


def _velocity(network: Network, state: np.ndarray, beta: float, target) -> np.ndarray:
    """Unbounded velocity ds/dt (1/tau) of ``state (..., N)``, with the nudge when ``beta > 0``."""
    v = network.family_.velocity(state[..., None, :], network.weights, network.bias, network.params)[..., 0, :]
    if beta > 0.0:
        out = network.roles.outputs
        v[..., out] += beta * (target - state[..., out])
    return v


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
                "failing": list(self.failing), "min_margin": _float(self.min_margin),
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
    network = _check_network(network)
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


# -- the Jacobian at an equilibrium ----------------------------------------------------------
@dataclass(frozen=True, eq=False)
class EquilibriumAnalysis:
    """The linearisation at one state, restricted to the free neurons not held at a bound.

    Attributes
    ----------
    state : array (N,)
        The state analysed (dimensionless).
    neurons : tuple of str
        Free neurons kept in the restricted Jacobian.
    held : dict
        Free neurons held by the projection, mapped to their bound (0.0 or 1.0): at the bound,
        with the unbounded velocity pointing outward.
    jacobian : array (R, R)
        Restricted Jacobian (1/tau), rows and columns in the order of ``neurons``.
    eigenvalues : complex array (R,)
        Its eigenvalues (1/tau), largest real part first.
    spectral_abscissa : float
        Largest real part (1/tau); ``-inf`` when every free neuron is held.
    status : str
        ``"stable"`` (abscissa below ``-marginal_tol``), ``"marginal"`` (within
        ``marginal_tol`` of 0: DEEP's conserved activity gives a zero eigenvalue when no
        outflow is cut by a bound) or ``"unstable"``.
    residual : float
        Largest projected velocity ``|ds/dt|`` (1/tau) at the state (velocities pointing out of
        [0, 1] within ``bound_tol`` of a bound count as 0): how far it is from an equilibrium
        (0 at an exact one).
    marginal_tol : float
        The tolerance used for ``"marginal"`` (1/tau, already scaled by ``max(1, max |J|)``).
    beta : float
        Nudging strength of the phase analysed (1/tau).
    """

    state: np.ndarray
    neurons: tuple[str, ...]
    held: dict
    jacobian: np.ndarray
    eigenvalues: np.ndarray
    spectral_abscissa: float
    status: str
    residual: float
    marginal_tol: float
    beta: float
    indices: tuple[int, ...] = field(repr=False, default=())

    @property
    def hurwitz(self) -> bool:
        """Every eigenvalue has a real part below ``-marginal_tol``."""
        return self.status == "stable"

    def to_dict(self) -> dict:
        return {"state": [float(x) for x in self.state], "neurons": list(self.neurons), "held": dict(self.held),
                "eigenvalues": [[float(z.real), float(z.imag)] for z in self.eigenvalues],
                "spectral_abscissa": _float(self.spectral_abscissa), "hurwitz": self.hurwitz,
                "status": self.status, "residual": float(self.residual),
                "marginal_tol": self.marginal_tol, "beta": self.beta}


def held_neurons(network: Network, state, *, beta: float = 0.0, target=None,
                 bound_tol: float = 1e-6, velocity_tol: float = 1e-9) -> dict:
    """Free neurons that the projection holds at a bound in ``state (N,)``: ``{name: bound}``.

    A neuron is held when it is within ``bound_tol`` of 0 (or beyond) with velocity below
    ``-velocity_tol`` (1/tau), or within ``bound_tol`` of 1 (or beyond) with velocity above
    ``velocity_tol``. A soft physical clamp may leave a held neuron slightly outside [0, 1];
    raise ``bound_tol`` for such substrates.
    """
    network = _check_network(network)
    state, target, beta = _check_state(network, state, beta, target)
    bound_tol = check_real("bound_tol", bound_tol, low=0.0)
    velocity_tol = check_real("velocity_tol", velocity_tol, low=0.0)
    return _held(network, state, _velocity(network, state, beta, target), bound_tol, velocity_tol)


def _held_masks(states, v, n_inputs, bound_tol, velocity_tol):
    """Bool arrays ``(..., F)`` of the free neurons held at 0 and at 1 (the rule of :func:`held_neurons`)."""
    s, vf = states[..., n_inputs:], v[..., n_inputs:]
    low = (s <= bound_tol) & (vf < -velocity_tol)
    high = ~low & (s >= 1.0 - bound_tol) & (vf > velocity_tol)
    return low, high


def _held(network, state, v, bound_tol, velocity_tol, names=None) -> dict:
    r = network.roles
    names = r.names if names is None else names
    low, high = _held_masks(state, v, r.n_inputs, bound_tol, velocity_tol)
    return {names[r.n_inputs + j]: (0.0 if low[j] else 1.0) for j in np.flatnonzero(low | high)}


def _spectrum(J: np.ndarray, tol: float):
    """Eigenvalues (largest real part first), spectral abscissa and status of ``J (R, R)``."""
    if not J.size:
        return np.zeros(0, dtype=complex), float("-inf"), "stable"
    eig = np.linalg.eigvals(J)
    eig = eig[np.argsort(-eig.real, kind="stable")]
    abscissa = float(eig[0].real)
    return eig, abscissa, ("stable" if abscissa < -tol else ("marginal" if abscissa <= tol else "unstable"))


def _check_state(network, state, beta, target):
    r = network.roles
    state = check_array("state", state, shape=(r.n_neurons,))
    beta = check_real("beta", beta, low=0.0)
    if beta > 0.0:
        if target is None:
            raise InvalidInputError("A nudged-phase analysis (beta > 0) needs the presentation's 'target'.")
        target = check_array("target", target, shape=(r.n_outputs,))
    return state, target, beta


def analyse_equilibrium(network: Network, state, *, beta: float = 0.0, target=None,
                        bound_tol: float = 1e-6, velocity_tol: float = 1e-9,
                        marginal_tol: float = 1e-8) -> EquilibriumAnalysis:
    """Linearise ``network`` at ``state (N,)`` (normally an equilibrium a substrate reached).

    ``beta`` and ``target (n_outputs,)`` select the nudged-phase dynamics. ``marginal_tol``
    (1/tau) is relative: a spectral abscissa within ``marginal_tol * max(1, max |J|)`` of 0 is
    reported as ``"marginal"``, neither Hurwitz nor unstable. See :func:`held_neurons` for
    ``bound_tol`` and ``velocity_tol``.
    """
    network = _check_network(network)
    state, target, beta = _check_state(network, state, beta, target)
    return _analyse(network, state[None], beta, None if target is None else target[None],
                    bound_tol, velocity_tol, marginal_tol)[0]


def analyse_equilibria(network: Network, states, *, beta: float = 0.0, targets=None,
                       bound_tol: float = 1e-6, velocity_tol: float = 1e-9,
                       marginal_tol: float = 1e-8) -> list[EquilibriumAnalysis]:
    """:func:`analyse_equilibrium` of every row of ``states (P, N)`` (one per presentation).

    ``targets (P, n_outputs)`` go with ``beta > 0``. The Jacobian and the eigenvalues are
    computed once per distinct pattern of held neurons, so this is the fast way to analyse
    all presentations of a network.
    """
    network = _check_network(network)
    r = network.roles
    states = check_array("states", states, shape=(None, r.n_neurons))
    beta = check_real("beta", beta, low=0.0)
    if beta > 0.0:
        if targets is None:
            raise InvalidInputError("A nudged-phase analysis (beta > 0) needs the presentations' 'targets'.")
        targets = check_array("targets", targets, shape=(states.shape[0], r.n_outputs))
    return _analyse(network, states, beta, targets, bound_tol, velocity_tol, marginal_tol)


def _analyse(network, states, beta, targets, bound_tol, velocity_tol, marginal_tol) -> list:
    bound_tol = check_real("bound_tol", bound_tol, low=0.0)
    velocity_tol = check_real("velocity_tol", velocity_tol, low=0.0)
    marginal_tol = check_real("marginal_tol", marginal_tol, low=0.0)
    r = network.roles
    names = r.names
    V = _velocity(network, states, beta, targets)
    J_free = free_jacobian(network, beta=beta)
    tol = marginal_tol * max(1.0, float(np.abs(J_free).max(initial=0.0)))
    # The projected velocity: what a neuron at a bound actually does.
    sf, vf = states[:, r.free], V[:, r.free]
    outward = ((sf <= bound_tol) & (vf < 0.0)) | ((sf >= 1.0 - bound_tol) & (vf > 0.0))
    residual = np.abs(np.where(outward, 0.0, vf)).max(axis=1, initial=0.0)
    spectra: dict = {}
    out = []
    for state, v, res in zip(states, V, residual):
        held = _held(network, state, v, bound_tol, velocity_tol, names)
        key = tuple(held)
        if key not in spectra:
            keep = tuple(j for j in range(r.n_inputs, r.n_neurons) if names[j] not in held)
            idx = [j - r.n_inputs for j in keep]
            J = J_free[np.ix_(idx, idx)]
            spectra[key] = (keep, J, *_spectrum(J, tol))
        keep, J, eig, abscissa, status = spectra[key]
        out.append(EquilibriumAnalysis(state, tuple(names[j] for j in keep), held, J, eig, abscissa,
                                       status, float(res), tol, beta, keep))
    return out


def batch_abscissae(networks, states, *, bound_tol: float = 1e-6, velocity_tol: float = 1e-9,
                    marginal_tol: float = 1e-8):
    """Free-phase spectral abscissae of a batch at ``states (S, P, N)``, without the details.

    The fast path of :func:`analyse_equilibria` for many networks at once (the per-epoch
    recorder): returns ``(abscissa (S, P) in 1/tau, status (S, P) array of str)``, with the
    same held-neuron rule, restriction and tolerances.
    """
    from ..model.network import NetworkBatch

    batch = NetworkBatch.of(networks)
    r = batch.roles
    states = check_array("states", states, shape=(len(batch), None, r.n_neurons))
    fam, W, b = batch.family_, batch.weights, batch.bias
    J_free = fam.jacobian(W, b, batch.params)[:, r.free, r.free]
    low, high = _held_masks(states, fam.velocity(states, W, b, batch.params), r.n_inputs,
                            check_real("bound_tol", bound_tol, low=0.0),
                            check_real("velocity_tol", velocity_tol, low=0.0))
    keep = ~(low | high)
    marginal_tol = check_real("marginal_tol", marginal_tol, low=0.0)
    S, P = states.shape[:2]
    abscissa = np.empty((S, P))
    status = np.empty((S, P), dtype=object)
    for s in range(S):
        tol = marginal_tol * max(1.0, float(np.abs(J_free[s]).max(initial=0.0)))
        seen: dict = {}
        for p in range(P):
            key = keep[s, p].tobytes()
            if key not in seen:
                idx = np.flatnonzero(keep[s, p])
                seen[key] = _spectrum(J_free[s][idx][:, idx], tol)[1:]
            abscissa[s, p], status[s, p] = seen[key]
    return abscissa, status


# -- Lyapunov functions ----------------------------------------------------------------------
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
                "guaranteed_rate": None if self.guaranteed_rate is None else _float(self.guaranteed_rate)}


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
    network = _check_network(network)
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
        return {"holds": self.holds, "alpha": _float(self.alpha), "rate": _float(self.rate),
                "weights": [float(x) for x in self.weights], "gamma_min": _float(self.gamma_min),
                "column_bound": _float(self.column_bound), "euler_dt_max": _float(self.euler_dt_max),
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
    network = _check_network(network)
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
