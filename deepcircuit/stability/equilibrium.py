"""The linearisation of a network at an equilibrium: held neurons, restricted Jacobian, its spectrum.

:func:`analyse_equilibrium` (one state) and :func:`analyse_equilibria` (one per presentation)
restrict the free-neuron Jacobian (:func:`~.certificates.free_jacobian`) to the free neurons that
the projection onto [0, 1] does not hold at a bound (:func:`held_neurons`), and report its
eigenvalues, spectral abscissa and a stable / marginal / unstable status;
:func:`batch_abscissae` is the fast path for many networks at once (the per-epoch recorder).
Nothing here runs a simulation or knows about substrates: the state comes from whoever settled it.

Times are in units of tau, so eigenvalues and velocities are in 1/tau; states are dimensionless.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validation import check_array, check_real
from ..errors import InvalidInputError
from ..model.network import Network, NetworkBatch
from .certificates import check_network, finite_or_none, free_jacobian

STATUSES = ("stable", "marginal", "unstable")


def _velocity(network: Network, state: np.ndarray, beta: float, target) -> np.ndarray:
    """Unbounded velocity ds/dt (1/tau) of ``state (..., N)``, with the nudge when ``beta > 0``."""
    v = network.family_.velocity(state[..., None, :], network.weights, network.bias, network.params)[..., 0, :]
    if beta > 0.0:
        out = network.roles.outputs
        v[..., out] += beta * (target - state[..., out])
    return v


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
                "spectral_abscissa": finite_or_none(self.spectral_abscissa), "hurwitz": self.hurwitz,
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
    network = check_network(network)
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
    network = check_network(network)
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
    network = check_network(network)
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
