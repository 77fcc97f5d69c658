"""The Brian2 spiking substrate: the same networks, with every state carried by a spike rate.

Encoding (see ``docs/brian2.md``):

* every neuron (inputs and bias included) fires as a Poisson process of rate ``s * max_rate``,
  so its state ``s`` in [0, 1] is its firing rate in units of ``max_rate``;
* a spike of neuron i moves a packet of activity along each of its synapses i -> j: it adds
  ``w * q`` to the inflow current ``I`` of j and, for the DEEP families, to the outflow current
  ``O`` of i, with ``q = 1 / (max_rate * tau_s)``; both currents decay with the synaptic time
  constant ``tau_s``. Their expectations are DEEP's inflow ``sum_i W[i, j] s_i`` and outflow
  ``s_j * sum_k W[j, k]``: the filtered spike trains carry the model's terms;
* the neuron integrates ``ds/dt = (I - O + beta (y - s)) / tau`` (EP families:
  ``(I + b - s + beta (y - s)) / tau``), projected to [0, 1] after each step; inputs are
  clamped (they keep their state and fire at their fixed rate).

The state is therefore a noisy version of the ODE's: its error shrinks as ``max_rate * tau_s``
(spikes per filter window) grows. Brian2 runs with a step ``schedule.dt * tau / substeps`` and
the trajectory is recorded every ``schedule.dt`` (units of tau), in the common form. Each
phase is one ``Network.run``. ``meta["window_mean"]`` holds each state's mean over the last
``window`` fraction of the phase, a less noisy read-out than the final sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_choice, check_int, check_real
from ..errors import DivergenceError, InvalidInputError
from ..network import NetworkBatch
from ..trajectory import PhaseResult, Trajectory, phase_status
from .base import Schedule, Substrate, check_run_arguments
from .brian2_rate import TARGETS, block_diagonal_synapses, brian2_target, check_target, import_brian2


def spiking_equations(family: str) -> str:
    """Brian2 equations of one spiking neuron of ``family`` (``s`` dimensionless, rate-coded)."""
    if family in ("deep", "deep-leaky"):
        rhs = "free * (I - O - leak * s + beta * (y - s)) / tau"
        extra = ("dO/dt = -O / tau_s : 1  # filtered own spikes x outgoing weights (outflow)\n"
                 "leak : 1 (constant)\n")
    elif family in ("ep-asym", "ep-sym"):
        rhs = "free * (I + b - s + beta * (y - s)) / tau"
        extra = "b : 1 (constant)\n"
    else:  # pragma: no cover - families are validated by the network description
        raise InvalidInputError(f"No Brian2 equations for family {family!r}.")
    return (f"ds/dt = {rhs} : 1\n"
            "dI/dt = -I / tau_s : 1  # filtered incoming spikes x weights (inflow)\n"
            + extra +
            "free : 1 (constant)\n"
            "beta : 1\n"
            "y : 1 (constant)\n")


def spiking_on_pre(family: str) -> str:
    """What a pre-synaptic spike does: move ``w * q`` of activity from pre to post."""
    if family in ("deep", "deep-leaky"):
        return "I_post += w * q\nO_pre += w * q"
    return "I_post += w * q"


class _SpikingNetwork:
    def __init__(self, b2, batch: NetworkBatch, P: int, dt: float, tau: float, tau_s: float,
                 max_rate: float, substeps: int, target: str) -> None:
        self.b2, self.target = b2, target
        roles = batch.roles
        S, N = len(batch), roles.n_neurons
        self.S, self.P, self.N = S, P, N
        self.deep_like = batch.family in ("deep", "deep-leaky")
        copies = S * P
        with brian2_target(b2, target):
            self.clock = b2.Clock(dt=dt * tau / substeps * b2.second, name="deepcircuit_spk_clock*")
            ns = {"tau": tau * b2.second, "tau_s": tau_s * b2.second,
                  "max_rate": max_rate * b2.Hz, "q": 1.0 / (max_rate * tau_s)}
            G = b2.NeuronGroup(copies * N, spiking_equations(batch.family), method="euler",
                               threshold="rand() < s * max_rate * dt", clock=self.clock,
                               namespace=ns, name="deepcircuit_spiking*")
            free = np.zeros(N)
            free[roles.free] = 1.0
            G.variables["free"].set_value(np.tile(free, copies))
            if self.deep_like:
                G.variables["leak"].set_value(np.full(copies * N, float(batch.params.get("gamma", 0.0))))
            G.run_regularly("s = clip(s, 0, 1)", when="after_groups", name="deepcircuit_spk_projection*")
            pre, post, self.syn_net, self.syn_i, self.syn_j = block_diagonal_synapses(batch.topology_mask, P)
            Syn = b2.Synapses(G, G, "w : 1", on_pre=spiking_on_pre(batch.family), clock=self.clock,
                              namespace=ns, name="deepcircuit_spk_synapses*")
            Syn.connect(i=pre, j=post)
            self.monitor = b2.StateMonitor(G, "s", record=True, when="start",
                                           dt=dt * tau * b2.second, name="deepcircuit_spk_monitor*")
            self.spikes = b2.SpikeMonitor(G, record=False, name="deepcircuit_spk_count*")
            self.G, self.Syn = G, Syn
            self.net = b2.Network(G, Syn, self.monitor, self.spikes)

    def set_values(self, batch: NetworkBatch, x0: np.ndarray, beta_vec, y_full, steady_currents: bool) -> None:
        G, Syn = self.G, self.Syn
        W = batch.weights
        Syn.variables["w"].get_value()[:] = W[self.syn_net, self.syn_i, self.syn_j]
        if not self.deep_like:
            G.variables["b"].get_value()[:] = np.repeat(batch.bias, self.P, axis=0).ravel()
        G.variables["s"].get_value()[:] = x0.reshape(-1)
        G.variables["beta"].get_value()[:] = np.tile(beta_vec, self.S * self.P)
        G.variables["y"].get_value()[:] = np.tile(y_full.reshape(-1), self.S)
        if steady_currents:
            # Start the filtered currents at their expected values for the initial states, so a
            # phase does not begin with an artificial silence of length tau_s.
            x = x0.reshape(self.S, self.P, self.N)
            inflow = np.einsum("spi,sij->spj", x, W)
            G.variables["I"].get_value()[:] = inflow.reshape(-1)
            if self.deep_like:
                G.variables["O"].get_value()[:] = (x * W.sum(axis=-1)[:, None, :]).reshape(-1)

    def run_phase(self, steps: int, dt_tau: float, tau: float) -> np.ndarray:
        b2 = self.b2
        self.monitor.resize(0)
        with brian2_target(b2, self.target):
            self.net.run(steps * dt_tau * tau * b2.second, namespace={})
        # Recorded at the start of every interval: s(0), ..., s(T - dt); then the final state.
        rec = np.array(self.monitor.variables["s"].get_value(), copy=True)[:steps]
        return np.concatenate([rec, self.G.variables["s"].get_value()[None, :]])


class Brian2SpikingSubstrate(Substrate):
    """DEEP-family networks as Poisson spiking neurons in Brian2 (see the module docstring).

    Parameters
    ----------
    max_rate : float
        Firing rate of a neuron at state 1 (Hz).
    tau : float
        Seconds per unit of the model's time (the neuron time constant); default 10 ms.
    tau_s : float
        Synaptic filter time constant (seconds); default 5 ms.
    substeps : int
        Brian2 steps per ``schedule.dt`` (spikes need ``max_rate * dt << 1``).
    target : {"numpy", "cython"}
        Brian2 code-generation target.
    seed : int, optional
        Seed of Brian2's random numbers (the spike trains); None = not reproducible.
    window : float
        Fraction of each phase (at its end) averaged into ``meta["window_mean"]``.
    """

    name = "brian2-spiking"

    def __init__(self, *, max_rate: float = 2000.0, tau: float = 10e-3, tau_s: float = 5e-3,
                 substeps: int = 10, target: str = "numpy", seed: int | None = 0,
                 window: float = 0.2) -> None:
        self.max_rate = check_real("max_rate", max_rate, low=0.0, low_open=True)
        self.tau = check_real("tau", tau, low=0.0, low_open=True)
        self.tau_s = check_real("tau_s", tau_s, low=0.0, low_open=True)
        self.substeps = check_int("substeps", substeps, low=1)
        self.target = check_choice("target", target, TARGETS)
        self.seed = None if seed is None else check_int("seed", seed, low=0)
        self.window = check_real("window", window, low=0.0, high=1.0, low_open=True)
        self._brian2 = import_brian2()
        check_target(self._brian2, self.target)
        self._net: _SpikingNetwork | None = None
        self._key: tuple | None = None

    def __repr__(self) -> str:
        return (f"Brian2SpikingSubstrate(max_rate={self.max_rate!r}, tau={self.tau!r}, "
                f"tau_s={self.tau_s!r}, target={self.target!r})")

    def close(self) -> None:
        self._net = None

    def run(self, networks, inputs, initial, schedule: Schedule, *, targets=None) -> PhaseResult:
        batch = NetworkBatch.of(networks)
        inputs, initial, targets = check_run_arguments(batch, inputs, initial, targets, schedule)
        if schedule.stop_at_equilibrium:
            raise InvalidInputError(
                "stop_at_equilibrium=True is not supported on the Brian2 substrates: they run every "
                "phase to its full length. Set stop_at_equilibrium=False or use the 'ode' substrate.")
        if not np.all(np.isfinite(batch.weights)):
            raise DivergenceError("The weights contain non-finite values; the network has diverged.",
                                  phase="free", magnitude=float("inf"))
        p_max = self.max_rate * schedule.dt * self.tau / self.substeps
        if p_max > 0.5:
            raise InvalidInputError(
                f"max_rate * Brian2 step = {p_max:.3g} spikes per step at state 1; Poisson spiking needs "
                "it well below 1. Increase 'substeps' or lower 'max_rate'.")
        P = inputs.shape[0]
        key = (batch.roles, batch.family, tuple(sorted(batch.params.items())), len(batch), P,
               float(schedule.dt), batch.topology_mask.tobytes())
        if key != self._key:
            self._net = _SpikingNetwork(self._brian2, batch, P, schedule.dt, self.tau, self.tau_s,
                                        self.max_rate, self.substeps, self.target)
            self._key = key
        if self.seed is not None:
            self._brian2.seed(self.seed)
        roles = batch.roles
        N = roles.n_neurons
        net = self._net
        net.set_values(batch, initial, np.zeros(N), np.zeros((P, N)), steady_currents=True)
        free = self._phase(net, batch, initial, schedule, schedule.free_steps, "free")
        if targets is None or schedule.nudged_steps == 0:
            return PhaseResult(free)
        beta_vec = np.zeros(N)
        beta_vec[roles.outputs] = schedule.beta
        y_full = np.zeros((P, N))
        y_full[:, roles.outputs] = targets
        # The nudged phase continues from the free phase: states and currents carry over.
        net.G.variables["beta"].get_value()[:] = np.tile(beta_vec, len(batch) * P)
        net.G.variables["y"].get_value()[:] = np.tile(y_full.reshape(-1), len(batch))
        nudged = self._phase(net, batch, free.final, schedule, schedule.nudged_steps, "nudged")
        return PhaseResult(free, nudged)

    def _phase(self, net: _SpikingNetwork, batch, x0, schedule, steps, phase) -> Trajectory:
        roles = batch.roles
        S, P, N = x0.shape
        n_spikes0 = int(net.spikes.num_spikes)
        rec = net.run_phase(steps, schedule.dt, self.tau)
        out = np.moveaxis(rec.reshape(rec.shape[0], S, P, N), 0, 2)
        times = schedule.dt * np.arange(steps + 1)
        fr = roles.free
        k = max(2, int(round(self.window * steps)))
        tail = out[:, :, -k:, :]
        half = k // 2
        # Drift of the windowed mean (1/tau): the spiking analogue of max |ds/dt| at the end.
        drift = np.abs(tail[:, :, half:, fr].mean(axis=2) - tail[:, :, :half, fr].mean(axis=2)).max(axis=-1)
        drift = drift / (half * schedule.dt)
        settled, diverged, msg = phase_status(phase, out, drift, schedule.settle_tol, float(times[-1]),
                                              speed_name="drift of the windowed mean")
        n_spikes = int(net.spikes.num_spikes) - n_spikes0
        duration = steps * schedule.dt * self.tau
        meta: dict[str, Any] = {
            "integrator": f"Brian2 Poisson spiking, euler + [0, 1] projection ({self.target} target)",
            "dt": schedule.dt, "tau_seconds": self.tau, "tau_s_seconds": self.tau_s,
            "max_rate_hz": self.max_rate, "substeps": self.substeps, "brian2_target": self.target,
            "window_mean": tail.mean(axis=2), "final_speed": drift,
            "mean_rate_hz": n_spikes / (S * P * N * duration)}
        if diverged.any():
            meta["magnitude"] = float("inf")
        return Trajectory(times, out, roles, phase, self.name, settled, schedule.settle_tol,
                          diverged, msg, meta)
