"""The common trajectory form that every substrate returns.

A :class:`Trajectory` is what the learning rule, the metrics and the Lyapunov checks consume;
none of them knows which substrate produced it. States are dimensionless (1.0 = V_scale on a
circuit, 1.0 = the upper bound of the hard sigmoid); times are in units of tau.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DivergenceError, InvalidInputError
from ..model.roles import Roles

STATUSES = ("settled", "not-settled", "diverged")


@dataclass(frozen=True, eq=False)
class Trajectory:
    """States of a batch of networks over one phase, for every presentation.

    Attributes
    ----------
    times : array (T,)
        Sample times in units of tau, starting at 0 for the phase start. Uniform on the ODE
        and Brian2 substrates; resampled to uniform on SPICE.
    states : array (S, P, T, N)
        State of neuron n of network s for presentation p at ``times[t]`` (dimensionless).
    roles : Roles
        Neuron roles, so consumers can find inputs and outputs.
    phase : str
        ``"free"`` or ``"nudged"``.
    substrate : str
        Name of the substrate that produced it (for reports only; consumers must not branch on it).
    settled : bool array (S, P)
        Whether each (network, presentation) reached equilibrium within ``settle_tol``.
    settle_tol : float
        Tolerance on ``max |ds/dt|`` (1/tau) used for ``settled``.
    diverged : bool array (S,)
        Networks whose simulation blew up (their states are not to be trusted).
    message : str
        Human-readable status (why not settled, what diverged).
    meta : dict
        Details for reports (integrator, timings, ...). Keys with a shared meaning:
        ``"clamp_overshoot_max"`` (how far, in state units, a substrate with a soft bound let a
        state go past [0, 1]) and ``"synaptic_traces"`` (STDP sums measured in the synapses; see
        :func:`deepcircuit.learning.rule.stdp_update`).
    """

    times: np.ndarray
    states: np.ndarray
    roles: Roles
    phase: str
    substrate: str
    settled: np.ndarray
    settle_tol: float
    diverged: np.ndarray
    message: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.states.ndim != 4 or self.states.shape[2] != self.times.shape[0] \
                or self.states.shape[3] != self.roles.n_neurons:
            raise InvalidInputError(
                f"Trajectory states must have shape (S, P, T={self.times.shape[0]}, "
                f"N={self.roles.n_neurons}); got {self.states.shape}.")

    @property
    def n_networks(self) -> int:
        return self.states.shape[0]

    @property
    def n_presentations(self) -> int:
        return self.states.shape[1]

    @property
    def final(self) -> np.ndarray:
        """Last state of every (network, presentation): ``(S, P, N)``."""
        return self.states[:, :, -1, :]

    @property
    def outputs(self) -> np.ndarray:
        """Final output states ``(S, P, n_outputs)``."""
        return self.final[..., self.roles.outputs]

    @property
    def status(self) -> str:
        """``"diverged"``, ``"not-settled"`` or ``"settled"`` for the whole batch."""
        if self.diverged.any():
            return "diverged"
        return "settled" if self.settled.all() else "not-settled"

    def raise_if_diverged(self, *, epoch: int | None = None) -> None:
        """Raise :class:`DivergenceError` if any network diverged."""
        if self.diverged.any():
            raise DivergenceError(self.message or f"{self.phase} phase diverged", phase=self.phase,
                                  epoch=epoch, magnitude=float(self.meta.get("magnitude", np.inf)))

    def select(self, networks) -> "Trajectory":
        """The trajectory of a subset of the networks (index, slice or boolean mask)."""
        idx = np.arange(self.n_networks)[networks]
        idx = np.atleast_1d(idx)
        return Trajectory(self.times, self.states[idx], self.roles, self.phase, self.substrate,
                          self.settled[idx], self.settle_tol, self.diverged[idx], self.message,
                          dict(self.meta))

    def resample(self, times: np.ndarray) -> "Trajectory":
        """The trajectory linearly interpolated onto ``times`` (units of tau, within the phase)."""
        times = np.asarray(times, dtype=float)
        if times.min() < self.times[0] - 1e-12 or times.max() > self.times[-1] + 1e-12:
            raise InvalidInputError(
                f"Resampling times must lie within [{self.times[0]}, {self.times[-1]}] tau.")
        idx = np.clip(np.searchsorted(self.times, times, side="right") - 1, 0, len(self.times) - 2)
        t0, t1 = self.times[idx], self.times[idx + 1]
        w = np.where(t1 > t0, (times - t0) / np.where(t1 > t0, t1 - t0, 1.0), 0.0)
        a = self.states[:, :, idx, :]
        b = self.states[:, :, idx + 1, :]
        states = a + (b - a) * w[None, None, :, None]
        return Trajectory(times, states, self.roles, self.phase, self.substrate, self.settled,
                          self.settle_tol, self.diverged, self.message, dict(self.meta))


def phase_status(phase: str, states: np.ndarray, speed: np.ndarray, settle_tol: float,
                 duration: float, *, speed_name: str = "max |ds/dt|") -> tuple[np.ndarray, np.ndarray, str]:
    """The shared verdict on a simulated phase: ``(settled (S, P), diverged (S,), message)``.

    A network diverged when any of its states ``(S, P, T, N)`` is not finite; a (network,
    presentation) is settled when ``speed (S, P)`` (1/tau; how fast the state still moves at the
    end, as the substrate measures it) is below ``settle_tol``. ``duration`` is the phase
    length (tau), for the message.
    """
    S = states.shape[0]
    diverged = ~np.isfinite(states).reshape(S, -1).all(axis=1)
    with np.errstate(invalid="ignore"):
        settled = (np.asarray(speed) < settle_tol) & ~diverged[:, None]
    msg = ""
    if diverged.any():
        msg = f"{phase} phase diverged for network(s) {np.flatnonzero(diverged).tolist()}: non-finite states"
    elif not settled.all():
        msg = (f"{phase} phase: {int((~settled).sum())} of {settled.size} (network, presentation) pairs "
               f"not settled after {duration:.4g} tau ({speed_name} = {np.nanmax(speed):.3g}, "
               f"tolerance {settle_tol:g})")
    return settled, diverged, msg


@dataclass(frozen=True, eq=False)
class PhaseResult:
    """The free phase and (when requested) the nudged phase that continues from it."""

    free: Trajectory
    nudged: Trajectory | None = None
