"""Lyapunov checks on trajectories, from any substrate, and a per-epoch certificate recorder.

:func:`check_trajectory` evaluates a Lyapunov function ``V(s; s*)`` along a
:class:`~deepcircuit.substrates.trajectory.Trajectory` (the common form every substrate returns) for every
(network, presentation): whether V is non-increasing within a stated tolerance, its largest
increase and when, and its empirical exponential decay rate. It reads ``times`` (tau) and
``states`` only; which substrate made the trajectory is never consulted, so Brian2 and SPICE
trajectories are checked by the same code as ODE ones.

:func:`certificate_recorder` is an epoch callback for :func:`~deepcircuit.learning.training.train`.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from .._validation import check_array, check_real
from .certificates import finite_or_none, gershgorin, gershgorin_margins
from .equilibrium import EquilibriumAnalysis, analyse_equilibria, batch_abscissae
from .lyapunov_functions import FUNCTIONS, LyapunovFunction, lyapunov_function
from ..errors import InvalidInputError
from ..model.network import Network, NetworkBatch
from ..substrates.trajectory import PhaseResult, Trajectory


@dataclass(frozen=True)
class PresentationCheck:
    """V along one (network, presentation) of a trajectory.

    Attributes
    ----------
    network, presentation : int
        Indices into the trajectory.
    function : LyapunovFunction
        The V evaluated (its name, condition and whether it is certified).
    monotone : bool
        Every step satisfies ``V[t+1] - V[t] <= tolerance``.
    max_increase : float
        Largest one-sample increase of V (0 if V never increases).
    max_increase_time : float or None
        Time (tau) of the sample at the end of that increase; None if V never increases.
    decay_rate : float
        ``-slope`` of a least-squares fit of ``log V`` against t (1/tau) over the samples where
        V is above ``floor``; NaN when fewer than 3 samples are above it.
    v_initial, v_final : float
        V at the first and last sample.
    tolerance : float
        The allowed increase per sample: ``atol + rtol * max V``.
    settled, diverged : bool
        The trajectory's own status for this pair (from the substrate).
    analysis : EquilibriumAnalysis or None
        The linearisation at the equilibrium, when the network was given.
    """

    network: int
    presentation: int
    function: LyapunovFunction
    monotone: bool
    max_increase: float
    max_increase_time: float | None
    decay_rate: float
    v_initial: float
    v_final: float
    tolerance: float
    settled: bool
    diverged: bool
    analysis: EquilibriumAnalysis | None = None

    def to_dict(self) -> dict:
        d = {"network": self.network, "presentation": self.presentation,
             "function": self.function.name, "condition": self.function.condition,
             "certified": self.function.certified, "scope": self.function.scope,
             "guaranteed_rate": None if self.function.guaranteed_rate is None
             else finite_or_none(self.function.guaranteed_rate),
             "monotone": self.monotone, "max_increase": finite_or_none(self.max_increase),
             "max_increase_time": self.max_increase_time, "decay_rate": finite_or_none(self.decay_rate),
             "v_initial": finite_or_none(self.v_initial), "v_final": finite_or_none(self.v_final),
             "tolerance": finite_or_none(self.tolerance), "settled": self.settled, "diverged": self.diverged}
        if self.analysis is not None:
            d["equilibrium"] = self.analysis.to_dict()
        return d


@dataclass(frozen=True, eq=False)
class TrajectoryCheck:
    """The Lyapunov check of a whole trajectory: ``values (S, P, T)`` and one check per pair."""

    phase: str
    times: np.ndarray
    values: np.ndarray
    checks: tuple[PresentationCheck, ...]

    @property
    def monotone(self) -> bool:
        """Whether V is non-increasing (within tolerance) for every pair."""
        return all(c.monotone for c in self.checks)

    def check(self, network: int = 0, presentation: int = 0) -> PresentationCheck:
        """The check of one (network, presentation)."""
        for c in self.checks:
            if c.network == network and c.presentation == presentation:
                return c
        raise InvalidInputError(f"No check for network {network}, presentation {presentation}.")

    def to_dict(self) -> dict:
        return {"phase": self.phase, "monotone": self.monotone,
                "checks": [c.to_dict() for c in self.checks]}


def evaluate_series(times, values, *, rtol: float = 1e-6, atol: float = 1e-12,
                    floor: float = 1e-6) -> dict:
    """Monotonicity and decay of one series ``values (T,)`` sampled at ``times (T,)`` (tau).

    Returns a dict with ``monotone``, ``max_increase``, ``max_increase_time``, ``decay_rate``
    and ``tolerance`` (see :class:`PresentationCheck`). ``floor`` is relative to ``max V``:
    samples at or below ``floor * max V`` (where V is at the level of the equilibrium's own
    error) are left out of the decay fit.
    """
    t = np.asarray(times, dtype=float)
    v = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(v)):
        return {"monotone": False, "max_increase": float("inf"), "max_increase_time":
                float(t[np.argmax(~np.isfinite(v))]), "decay_rate": float("nan"), "tolerance": float("nan")}
    vmax = float(v.max(initial=0.0))
    tol = atol + rtol * vmax
    dv = np.diff(v)
    k = int(np.argmax(dv)) if dv.size else 0
    inc = float(dv[k]) if dv.size else 0.0
    above = v > max(floor * vmax, atol)
    rate = float("nan")
    if above.sum() >= 3 and np.ptp(t[above]) > 0:
        slope = np.polyfit(t[above], np.log(v[above]), 1)[0]
        rate = float(-slope)
    return {"monotone": bool(not dv.size or inc <= tol), "max_increase": max(inc, 0.0),
            "max_increase_time": float(t[k + 1]) if inc > 0 else None, "decay_rate": rate,
            "tolerance": float(tol)}


def _equilibria(trajectory: Trajectory, equilibrium) -> np.ndarray:
    S, P, _, N = trajectory.states.shape
    if equilibrium is None:
        return trajectory.final
    eq = check_array("equilibrium", equilibrium, finite=False)
    if eq.shape not in ((N,), (P, N), (S, P, N)):
        raise InvalidInputError(
            f"The 'equilibrium' must have shape (N,), (P, N) or (S, P, N) = ({N},), ({P}, {N}) or "
            f"({S}, {P}, {N}); got {eq.shape}.")
    return np.broadcast_to(eq, (S, P, N))


def check_trajectory(trajectory: Trajectory, networks=None, *, equilibrium=None,
                     function: "str | LyapunovFunction" = "auto", beta: float | None = None,
                     targets=None, rtol: float = 1e-6, atol: float = 1e-12, floor: float = 1e-6,
                     bound_tol: float = 1e-6) -> TrajectoryCheck:
    """Evaluate a Lyapunov function along every (network, presentation) of ``trajectory``.

    Parameters
    ----------
    trajectory : Trajectory
        Any substrate's trajectory (states dimensionless, times in tau).
    networks : Network, NetworkBatch or sequence of Network
        The networks that made it, one per trajectory network (needed to choose and certify V).
    equilibrium : array (N,), (P, N) or (S, P, N), optional
        The equilibrium ``s*``; default: the trajectory's final states.
    function : str or LyapunovFunction
        ``"auto"`` (see :func:`~deepcircuit.stability.lyapunov_functions.lyapunov_function`), a name in
        ``energy``, ``1-norm``, ``max-norm``, ``quadratic``, or a ready LyapunovFunction.
    beta : float, optional
        Nudging strength (1/tau) of a nudged trajectory; with ``targets (P, n_outputs)``, needed
        to analyse the nudged equilibrium. Ignored (0) for a free-phase trajectory.
    rtol, atol : float
        V may increase by ``atol + rtol * max V`` per sample and still count as non-increasing
        (rounding, or the interpolation of a resampled trajectory).
    floor : float
        Relative floor of the decay-rate fit (see :func:`evaluate_series`).
    bound_tol : float
        How close to 0 or 1 a neuron must be to count as at a bound (raise it for soft clamps).
    """
    if not isinstance(trajectory, Trajectory):
        raise InvalidInputError(f"Expected a Trajectory; got {type(trajectory).__name__}.")
    rtol = check_real("rtol", rtol, low=0.0)
    atol = check_real("atol", atol, low=0.0)
    floor = check_real("floor", floor, low=0.0)
    S, P = trajectory.n_networks, trajectory.n_presentations
    nets = _networks(networks, S, trajectory)
    if isinstance(function, str) and function not in FUNCTIONS:
        raise InvalidInputError(
            f"The 'function' parameter must be one of {', '.join(map(repr, FUNCTIONS))} or a "
            f"LyapunovFunction; got {function!r}.")
    nudged = trajectory.phase == "nudged"
    if nudged and nets is not None:
        if beta is None or targets is None:
            raise InvalidInputError(
                "Checking a nudged trajectory needs the phase's 'beta' (1/tau) and the 'targets' "
                "(P, n_outputs) it was nudged toward.")
        beta = check_real("beta", beta, low=0.0)
        targets = check_array("targets", targets, shape=(P, trajectory.roles.n_outputs))
    else:
        beta = 0.0
    eq = _equilibria(trajectory, equilibrium)
    values = np.empty((S, P, trajectory.times.shape[0]))
    checks = []
    certs = [gershgorin(n) for n in nets] if nets is not None else None
    for s in range(S):
        analyses = [None] * P
        finite = np.all(np.isfinite(eq[s]), axis=-1)
        if nets is not None and finite.any():
            ok = np.flatnonzero(finite)
            found = analyse_equilibria(nets[s], eq[s, ok], beta=beta,
                                       targets=targets[ok] if beta > 0.0 else None, bound_tol=bound_tol)
            for p, a in zip(ok, found):
                analyses[p] = a
        for p in range(P):
            target = targets[p] if (nudged and targets is not None) else None
            analysis = analyses[p]
            if isinstance(function, LyapunovFunction):
                V = function
            elif nets is None:
                raise InvalidInputError(
                    "Give the 'networks' that made the trajectory (to choose and certify V), or "
                    "pass a ready LyapunovFunction as 'function'.")
            else:
                # The Jacobian at s* certifies only if s* is an equilibrium: for a trajectory
                # that did not settle, "auto" does not pick the quadratic V on its strength, and
                # an explicit quadratic V is an empirical check only.
                at_rest = bool(trajectory.settled[s, p])
                V = lyapunov_function(nets[s], function=function, analysis=analysis if at_rest else None,
                                      beta=beta, certificates=certs[s]) \
                    if at_rest or function != "quadratic" or analysis is None else _uncertified(
                        lyapunov_function(nets[s], function=function, analysis=analysis, beta=beta,
                                          certificates=certs[s]))
            with np.errstate(invalid="ignore", over="ignore"):
                values[s, p] = V(trajectory.states[s, p], eq[s, p], target=target)
            r = evaluate_series(trajectory.times, values[s, p], rtol=rtol, atol=atol, floor=floor)
            checks.append(PresentationCheck(
                s, p, V, r["monotone"], r["max_increase"], r["max_increase_time"], r["decay_rate"],
                float(values[s, p, 0]), float(values[s, p, -1]), r["tolerance"],
                bool(trajectory.settled[s, p]), bool(trajectory.diverged[s]), analysis))
    return TrajectoryCheck(trajectory.phase, trajectory.times, values, tuple(checks))


def _uncertified(V: LyapunovFunction) -> LyapunovFunction:
    from dataclasses import replace

    return replace(V, certified=False, guaranteed_rate=None,
                   condition="none: the trajectory did not settle, so s* is not an equilibrium and the "
                             "Jacobian there certifies nothing; empirical check only")


def _networks(networks, S: int, trajectory: Trajectory) -> list[Network] | None:
    if networks is None:
        return None
    nets = list(NetworkBatch.of(networks).networks)
    if len(nets) != S:
        raise InvalidInputError(f"The trajectory has {S} network(s) but {len(nets)} network(s) were given.")
    if nets[0].roles != trajectory.roles:
        raise InvalidInputError(
            f"The networks' roles {nets[0].roles} differ from the trajectory's {trajectory.roles}.")
    return nets


def check_phases(result: PhaseResult, networks, *, beta: float | None = None, targets=None,
                 **options) -> dict:
    """:func:`check_trajectory` of the free phase and, if present, the nudged phase.

    Each phase is checked against its own final states as equilibria. Returns
    ``{"free": TrajectoryCheck, "nudged": TrajectoryCheck}`` (``nudged`` only when run).
    """
    out = {"free": check_trajectory(result.free, networks, **options)}
    if result.nudged is not None:
        out["nudged"] = check_trajectory(result.nudged, networks, beta=beta, targets=targets, **options)
    return out


@dataclass(frozen=True)
class StabilityVerdict:
    """What the trajectories and the linearisations together say about one phase.

    Attributes
    ----------
    status : str
        ``"stable"``, ``"marginal"`` or ``"unstable"`` (every trajectory settled; the worst
        Jacobian at the equilibria it reached), ``"not-settled"`` (some trajectory still moves
        at the end of the phase: no equilibrium was reached, so the Jacobians at the final
        states, which are not equilibria, say nothing) or ``"diverged"``.
    basis : str
        The check the status rests on, in words, with its numbers.
    settled : int
        Presentations that settled, of ``total``.
    total : int
    """

    status: str
    basis: str
    settled: int
    total: int


def stability_verdict(check: TrajectoryCheck) -> StabilityVerdict:
    """The verdict on one phase from its :class:`TrajectoryCheck` (which holds the analyses).

    A Jacobian is evidence only at an equilibrium: it is used only when every trajectory of
    the phase settled (the substrate's ``settled``: ``max |ds/dt|`` below the schedule's
    tolerance at the end). An oscillating network has no settled trajectory, whatever the
    Jacobian at its last sample says.
    """
    checks = check.checks
    total = len(checks)
    settled = sum(c.settled for c in checks)
    rising = [c for c in checks if not c.monotone]
    v_note = (f"; V = {checks[0].function.name} increases along {len(rising)} of them "
              f"(largest increase {max(c.max_increase for c in rising):.3g})") if rising else ""
    if any(c.diverged for c in checks):
        return StabilityVerdict("diverged", "the simulation, which diverged (states far outside [0, 1] or "
                                "non-finite)", settled, total)
    if settled < total:
        res = [c.analysis.residual for c in checks if not c.settled and c.analysis is not None]
        speed = f" (|ds/dt| up to {max(res):.3g} /tau at the end)" if res else ""
        return StabilityVerdict(
            "not-settled", f"trajectories: {total - settled} of {total} did not settle in "
            f"{float(check.times[-1]):.4g} tau{speed}, so no equilibrium was reached (an oscillation or "
            f"a slow approach){v_note}; the Jacobians at their final states are not evidence", settled, total)
    an = [c.analysis for c in checks]
    if any(a is None for a in an):
        return StabilityVerdict("settled", f"trajectories: all {total} settled (no network given for a "
                                "linearisation)", settled, total)
    order = {"stable": 0, "marginal": 1, "unstable": 2}
    status = max((a.status for a in an), key=order.__getitem__)
    abscissa = max(a.spectral_abscissa for a in an)
    return StabilityVerdict(
        status, f"trajectories: all {total} settled; linearisation at the equilibria they reached: "
        f"largest spectral abscissa {abscissa:.4g} /tau ({'Hurwitz' if status == 'stable' else status}){v_note}",
        settled, total)


# -- during training ---------------------------------------------------------------------------
#: Keys :func:`certificate_recorder` adds to ``History.extra`` (one value per epoch).
RECORDED = ("gershgorin_margin_negative_diagonal", "gershgorin_margin_row", "gershgorin_margin_column",
            "gershgorin_certified", "spectral_abscissa", "hurwitz", "stability", "equilibrium_reached")


def certificate_recorder(*, bound_tol: float = 1e-6, marginal_tol: float = 1e-8):
    """An epoch callback for :func:`~deepcircuit.learning.training.train` that records stability.

    Use as ``train(..., callbacks=[certificate_recorder()])``. Every epoch it stores, per
    network, in ``History.extra``:

    * ``gershgorin_margin_*``: the smallest margin (1/tau) of each Gershgorin condition of the
      network after this epoch's update (positive: holds; see :mod:`deepcircuit.stability.certificates`),
      and ``gershgorin_certified`` (negative diagonal and row or column dominance);
    * ``spectral_abscissa`` (1/tau, largest over presentations), ``hurwitz`` and ``stability``
      (``stable`` / ``marginal`` / ``unstable``, the worst presentation): the updated network's
      Jacobian restricted by the bound pattern of this epoch's free-phase end states (the
      dynamics are linear, so only which neurons are held there matters);
    * ``equilibrium_reached``: whether every presentation settled in both phases this epoch.

    A network whose phases diverged gets NaN margins and abscissa and ``False`` flags.
    """
    bound_tol = check_real("bound_tol", bound_tol, low=0.0)
    marginal_tol = check_real("marginal_tol", marginal_tol, low=0.0)
    gershgorin_tol = 1e-12  # the default of certificates.gershgorin
    order = {"stable": 0, "marginal": 1, "unstable": 2}

    def record(epoch: int, networks, result: PhaseResult) -> dict:
        batch = NetworkBatch.of(networks)
        r = batch.roles
        free = result.free
        reached = free.settled.all(axis=1) & ~free.diverged
        if result.nudged is not None:
            reached &= result.nudged.settled.all(axis=1) & ~result.nudged.diverged
        W = batch.weights
        ok = np.isfinite(W).reshape(len(batch), -1).all(axis=1)
        J = batch.family_.jacobian(np.where(ok[:, None, None], W, 0.0), batch.bias, batch.params)[:, r.free, r.free]
        thr = [gershgorin_tol * max(1.0, float(np.abs(j).max(initial=0.0))) for j in J]
        margins = {k: np.where(ok, m.min(axis=-1), np.nan) for k, m in gershgorin_margins(J).items()}
        certified = ok & (margins["negative_diagonal"] > thr) & (
            (margins["row_dominance"] > thr) | (margins["column_dominance"] > thr))
        fine = ok & ~free.diverged & np.isfinite(free.final).reshape(len(batch), -1).all(axis=1)
        abscissa = np.full(len(batch), np.nan)
        stability = np.array(["diverged"] * len(batch), dtype=object)
        if fine.any():
            sub = NetworkBatch(tuple(n for n, f in zip(batch.networks, fine) if f))
            a, st = batch_abscissae(sub, free.final[fine], bound_tol=bound_tol, marginal_tol=marginal_tol)
            abscissa[fine] = a.max(axis=1)
            stability[fine] = [max(row, key=order.__getitem__) for row in st]
        return {"gershgorin_margin_negative_diagonal": margins["negative_diagonal"].tolist(),
                "gershgorin_margin_row": margins["row_dominance"].tolist(),
                "gershgorin_margin_column": margins["column_dominance"].tolist(),
                "gershgorin_certified": [bool(c) for c in certified],
                "spectral_abscissa": abscissa.tolist(),
                "hurwitz": [s == "stable" for s in stability],
                "stability": [str(s) for s in stability],
                "equilibrium_reached": [bool(x) for x in reached]}

    return record


__all__ = ["PresentationCheck", "TrajectoryCheck", "check_phases", "check_trajectory",
           "certificate_recorder", "evaluate_series", "RECORDED", "StabilityVerdict", "stability_verdict"]
