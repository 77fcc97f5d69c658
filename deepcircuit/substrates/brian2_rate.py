"""The Brian2 rate substrate: DEEP as a continuous-time neuron model, with its learning rule
inside the synapses.

The whole batch is compiled into one Brian2 network:

* one ``NeuronGroup`` holding ``S * P`` copies of the network, one copy per (network,
  presentation), so a single run does a whole phase for every presentation of every network;
* one ``Synapses`` object with block-diagonal connectivity: copy ``k`` of network ``s`` gets one
  synapse per connection of that network's topology (pruned connections keep their synapse with
  ``w = 0``, which makes them inert);
* summed variables for the family's terms: DEEP's inflow ``sum_i W[i, j] s_i`` is summed onto the
  post-synaptic neuron, its outflow factor ``sum_k W[j, k]`` onto the *pre*-synaptic neuron;
  the EP families sum only the inflow and add their bias ``b`` and ``-s``;
* the [0, 1] projection as a ``run_regularly`` operation right after the integration step, so
  ``method="euler"`` is exactly the projected Euler scheme ``s <- clip(s + dt * v, 0, 1)`` of
  :mod:`deepcircuit.substrates.ode`;
* DEEP's learning rule in the synapses: during the nudged phase every synapse accumulates
  ``s_pre(t) * (s_post(t) - s_post(t-1))`` and ``s_pre(t) * s_post(t)`` from Brian2 variables
  (the neuron keeps its previous state), returned as ``nudged.meta["synaptic_traces"]`` for
  :func:`deepcircuit.learning.rule.stdp_update`.

Time: the spec's unit time is ``tau`` (seconds, default 1 ms); Brian2 runs with
``dt = schedule.dt * tau`` and trajectories come back in units of tau.

Reuse: the Brian2 network is built and its code generated once per network structure (roles,
family, topology masks, number of copies, dt, target) and reused across calls; weights, bias,
inputs, targets and states are written into the existing Brian2 arrays. Brian2's own
``Network.run`` regenerates every code object and calls ``gc.collect()`` on every call (about
0.1 s here, more than a whole phase of this small network), so by default (``driver="prepared"``)
the substrate generates the code objects once with ``Network.run(0 * second)`` and then calls
those prepared code objects in the network's schedule order itself, as ``Network.run``'s
single-clock loop does. ``driver="network"`` uses ``Network.run`` for every phase instead (same
results; slower).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from .._validation import check_choice, check_real
from ..errors import DeepCircuitWarning, DivergenceError, InvalidInputError
from ..model.network import NetworkBatch
from . import brian2_build  # compiler_available is looked up when called (a test replaces it)
from .trajectory import PhaseResult, Trajectory, phase_status
from .base import Schedule, Substrate, check_run_arguments
from .brian2_common import (PROJECTION_CODE, TRACE_CODE, block_diagonal_synapses, brian2_target,
                            check_target, deadline, euler_code, import_brian2, neuron_equations,
                            over_budget, run_before, synapse_equations)
from .brian2_standalone import StandaloneRunner

TARGETS = ("auto", "cpp_standalone", "numpy", "cython")
METHODS = ("euler", "heun", "rk2", "rk4", "exponential_euler")
DRIVERS = ("prepared", "network")


class _CompiledNetwork:
    """One Brian2 network for a fixed structure; reused across calls with new values."""

    def __init__(self, brian2, batch: NetworkBatch, P: int, dt: float, tau: float, method: str,
                 target: str, driver: str) -> None:
        b2 = brian2
        self.b2 = b2
        self.target = target
        self.driver = driver
        roles = batch.roles
        S, N = len(batch), roles.n_neurons
        self.S, self.P, self.N = S, P, N
        family = batch.family
        self.deep_like = family in ("deep", "deep-leaky")
        self.dt = dt
        copies = S * P
        with brian2_target(b2, target):
            self.clock = b2.Clock(dt=dt * tau * b2.second, name="deepcircuit_clock*")
            ns = {"tau": tau * b2.second, "dt_tau": float(dt)}
            G = b2.NeuronGroup(copies * N, neuron_equations(family, method),
                               method=None if method == "euler" else method, clock=self.clock,
                               namespace=ns, name="deepcircuit_neurons*")
            free = np.zeros(N)
            free[roles.free] = 1.0
            G.variables["free"].set_value(np.tile(free, copies))
            if self.deep_like:
                G.variables["leak"].set_value(np.full(copies * N, float(batch.params.get("gamma", 0.0))))
            # Euler is written out as one custom update so that the arithmetic is exactly the ODE
            # substrate's; the other methods use Brian2's state updater, then the projection.
            code = euler_code(family) if method == "euler" else PROJECTION_CODE
            self.projection = G.run_regularly(code, when="after_groups", order=0,
                                              name="deepcircuit_projection*")
            pre, post, self.syn_net, self.syn_i, self.syn_j = block_diagonal_synapses(batch.topology_mask, P)
            Syn = b2.Synapses(G, G, synapse_equations(family), clock=self.clock, namespace=ns,
                              name="deepcircuit_synapses*")
            Syn.connect(i=pre, j=post)
            self.traces = Syn.run_regularly(TRACE_CODE, when="after_groups", order=1,
                                            name="deepcircuit_traces*")
            self.monitor = b2.StateMonitor(G, "s", record=True, when="end", clock=self.clock,
                                           name="deepcircuit_monitor*")
            self.G, self.Syn = G, Syn
            self.net = b2.Network(G, Syn, self.monitor)
            self.n_codegen = 0
            if driver == "prepared":
                # Generate and compile every code object once (a run of zero length does all of
                # Network.run's preparation); later phases call these code objects directly.
                self.net.run(0 * b2.second, namespace={})
                self.n_codegen += 1
                self._codeobjects = self._collect_codeobjects()

    # -- values --------------------------------------------------------------------------
    def _array(self, owner, name: str) -> np.ndarray:
        """The Brian2 array behind a variable (written in place: no code generation)."""
        return owner.variables[name].get_value()

    def set_network_values(self, batch: NetworkBatch) -> None:
        W, b = batch.weights, batch.bias
        self._array(self.Syn, "w")[:] = W[self.syn_net, self.syn_i, self.syn_j]
        if not self.deep_like:
            self._array(self.G, "b")[:] = np.repeat(b, self.P, axis=0).ravel()

    def set_states(self, x0: np.ndarray) -> None:
        flat = x0.reshape(-1)
        self._array(self.G, "s")[:] = flat
        self._array(self.G, "sold")[:] = flat
        self._array(self.G, "dstep")[:] = 0.0

    def set_nudge(self, beta_vec: np.ndarray, y_full: np.ndarray) -> None:
        """Per-neuron nudging strength ``(N,)`` and targets ``(P, N)`` for every copy."""
        self._array(self.G, "beta")[:] = np.tile(beta_vec, self.S * self.P)
        self._array(self.G, "y")[:] = np.tile(y_full.reshape(-1), self.S)

    def reset_traces(self) -> None:
        self._array(self.Syn, "acc_dpost")[:] = 0.0
        self._array(self.Syn, "acc_coact")[:] = 0.0

    def synaptic_traces(self) -> dict:
        """The accumulators summed over presentations, as ``(S, N, N)`` arrays."""
        out = {}
        for key, var in (("pre_dpost", "acc_dpost"), ("pre_post", "acc_coact")):
            acc = np.zeros((self.S, self.N, self.N))
            np.add.at(acc, (self.syn_net, self.syn_i, self.syn_j), self._array(self.Syn, var))
            out[key] = acc
        return out

    # -- running -------------------------------------------------------------------------
    def _collect_codeobjects(self) -> dict:
        """Code objects of one step in schedule order, and those run once per phase."""
        wout = None
        if self.deep_like:
            wout = self.Syn.summed_updaters["wout_pre"]
        every, nudged, once = [], [], []
        for obj in self.net.sorted_objects:
            if obj is wout:
                # sum_k W[j, k] does not change during a phase (weights are fixed), so it is
                # evaluated once at the phase start instead of every step.
                once.extend(obj._code_objects)
                continue
            nudged.extend(obj._code_objects)
            if obj is not self.traces:
                every.extend(obj._code_objects)
        return {"every": every, "once": once, "nudged": nudged}

    def run_phase(self, steps: int, learn: bool, until: float | None = None,
                  max_seconds: float | None = None) -> np.ndarray:
        """Run ``steps`` steps; return the recorded states ``(steps, S*P*N)`` (after each step).
        Past the wall-time deadline ``until`` (``time.monotonic()``) the run stops with
        :func:`~deepcircuit.substrates.brian2_common.over_budget` (``max_seconds``: the budget
        it names)."""
        b2 = self.b2
        self.monitor.resize(0)
        with brian2_target(b2, self.target):
            if self.driver == "network":
                self.traces.active = learn
                run_before(b2, self.net, steps * self.clock.dt, until, self._what(), max_seconds)
                self.n_codegen += 1
            else:
                self._drive(steps, learn, until, max_seconds)
        return np.array(self.monitor.variables["s"].get_value(), copy=True)

    def _what(self) -> str:
        return f"The Brian2 run (target {self.target})"

    def _drive(self, steps: int, learn: bool, until: float | None = None,
               max_seconds: float | None = None) -> None:
        cos = self._codeobjects
        loop = cos["nudged"] if learn else cos["every"]
        for co in cos["once"] + loop:
            co.before_run()
        for co in cos["once"]:
            co()
        clock = self.clock
        timestep = clock.variables["timestep"].get_value()
        t = clock.variables["t"].get_value()
        dt = clock.variables["dt"].get_value()
        timestep[0] = 0
        t[0] = 0.0
        try:
            for _ in range(steps):
                for co in loop:
                    co()
                timestep[0] += 1
                t[0] = timestep[0] * dt[0]
                if until is not None and time.monotonic() > until:
                    raise over_budget(self._what(), max_seconds)
        finally:
            for co in cos["once"] + loop:
                co.after_run()


class Brian2FallbackWarning(DeepCircuitWarning):
    """The compiled (cpp_standalone) Brian2 target is not available here; numpy is used."""


_FALLBACK_SAID = False


def _fallback_once() -> None:
    global _FALLBACK_SAID
    if not _FALLBACK_SAID:
        _FALLBACK_SAID = True
        warnings.warn("Brian2: no C++ compiler (make and g++) found, so the compiled cpp_standalone "
                      "target is off; running Brian2's numpy target (slower).",
                      Brian2FallbackWarning, stacklevel=4)


def _structure_key(batch: NetworkBatch, P: int, dt: float) -> tuple:
    tm = batch.topology_mask
    return (batch.roles, batch.family, tuple(sorted(batch.params.items())), len(batch), P,
            float(dt), tm.tobytes())


class Brian2RateSubstrate(Substrate):
    """DEEP-family networks as a Brian2 rate model (see the module docstring).

    Parameters
    ----------
    target : {"auto", "cpp_standalone", "numpy", "cython"}
        ``cpp_standalone``: Brian2's C++ standalone device; every phase, and a whole training
        (:meth:`plan_training`), is one compiled program, built once per structure under
        :func:`~deepcircuit.substrates.brian2_build.cache_root` (needs make and a C++
        compiler). ``auto`` (default): ``cpp_standalone`` where a compiler is present, else
        ``numpy`` (said once, as a :class:`Brian2FallbackWarning`). ``numpy`` works on every
        machine; ``cython`` compiles each code object once (needs Cython and a C compiler;
        cached in ``~/.cython/brian_extensions``). ``method`` and ``driver`` apply to the
        runtime targets (``numpy``, ``cython``); ``cpp_standalone`` uses projected Euler.
    method : str
        Brian2 integrator: ``euler`` (with the projection: exactly the reference scheme),
        ``heun``, ``rk2``, ``rk4`` or ``exponential_euler``. The summed variables are updated once
        per step, so the higher-order methods see them constant within a step.
    tau : float
        Seconds per unit of the model's time (the neuron time constant); default 1 ms.
    driver : {"prepared", "network"}
        ``prepared``: generate the code once, then call the prepared code objects (fast).
        ``network``: call Brian2's ``Network.run`` for every phase (regenerates code each call).
    whole_training : bool
        ``cpp_standalone`` only: offer :meth:`plan_training` (a whole training as one program).
        False runs one compiled phase program per epoch instead.
    max_seconds : float or None
        Wall-time budget (seconds; default 600, None = no limit) of one run of a compiled
        program (``cpp_standalone``: killed past it) or of one :meth:`run` call on a runtime
        target (stopped between two time steps); either is reported as a
        :class:`~deepcircuit.errors.SimulationError`.
    """

    name = "brian2"

    def __init__(self, *, target: str = "auto", method: str = "euler", tau: float = 1e-3,
                 driver: str = "prepared", whole_training: bool = True,
                 max_seconds: float | None = 600.0) -> None:
        target = check_choice("target", target, TARGETS)
        self.method = check_choice("method", method, METHODS)
        self.tau = check_real("tau", tau, low=0.0, low_open=True)
        self.driver = check_choice("driver", driver, DRIVERS)
        self._brian2 = import_brian2()
        if target == "auto":
            target = ("cpp_standalone" if method == "euler" and brian2_build.compiler_available()
                      else "numpy")
            if target == "numpy" and method == "euler":
                _fallback_once()
        if target == "cpp_standalone" and method != "euler":
            raise InvalidInputError(
                f"The Brian2 'cpp_standalone' target runs projected Euler only; got method={method!r}. "
                f"Use method='euler', or target='numpy' or 'cython' for Brian2's other integrators.")
        self.target = target
        self.whole_training = bool(whole_training)
        check_target(self._brian2, self.target)
        self._standalone = None
        self.max_seconds = max_seconds
        self._standalone = (StandaloneRunner(self._brian2, self.tau, self.name, self.max_seconds)
                            if target == "cpp_standalone" else None)
        self._compiled: dict[tuple, _CompiledNetwork] = {}
        #: How many Brian2 networks this instance has built (one per network structure).
        self.n_builds = 0

    def __repr__(self) -> str:
        return (f"Brian2RateSubstrate(target={self.target!r}, method={self.method!r}, "
                f"tau={self.tau!r}, driver={self.driver!r}, whole_training={self.whole_training!r})")

    def close(self) -> None:
        self._compiled.clear()

    @property
    def max_seconds(self) -> float | None:
        """Wall-time budget of one run call, in seconds (None = no limit); may be changed between runs."""
        return self._max_seconds

    @max_seconds.setter
    def max_seconds(self, value) -> None:
        self._max_seconds = None if value is None else check_real("max_seconds", value, low=0.0, low_open=True)
        if self._standalone is not None:  # the compiled runs read the budget there
            self._standalone.max_seconds = self._max_seconds

    @property
    def build_seconds(self) -> float:
        """Seconds spent building compiled programs (cpp_standalone target; 0 otherwise)."""
        return self._standalone.build_seconds if self._standalone is not None else 0.0

    def plan_training(self, batch: NetworkBatch, inputs, targets, schedule: Schedule, config,
                      initial: np.ndarray) -> bool:
        """Optional capability used by :func:`deepcircuit.learning.training.train`: run a whole training
        as one compiled program (``cpp_standalone`` target only; see
        :mod:`deepcircuit.substrates.brian2_standalone`). The loop then still calls :meth:`run`
        for every epoch, and gets that epoch's recording as long as it asks for exactly what the
        program computed. Returns whether a plan was made.
        """
        if self._standalone is None or not self.whole_training or schedule.stop_at_equilibrium:
            return False
        batch = NetworkBatch.of(batch)
        return self._standalone.plan_training(batch, inputs, targets, schedule, config,
                                              np.asarray(initial, dtype=float))

    def compiled(self, batch: NetworkBatch, P: int, dt: float) -> _CompiledNetwork:
        """The Brian2 network for this structure, built on first use."""
        key = _structure_key(batch, P, dt)
        net = self._compiled.get(key)
        if net is None:
            # Keep one structure alive: a training run uses one, and Brian2 objects are heavy.
            self._compiled.clear()
            net = _CompiledNetwork(self._brian2, batch, P, dt, self.tau, self.method, self.target,
                                   self.driver)
            self._compiled[key] = net
            self.n_builds += 1
        return net

    # -- public ------------------------------------------------------------------------
    def run(self, networks, inputs, initial, schedule: Schedule, *, targets=None) -> PhaseResult:
        batch = NetworkBatch.of(networks)
        inputs, initial, targets = check_run_arguments(batch, inputs, initial, targets, schedule)
        if schedule.stop_at_equilibrium:
            raise InvalidInputError(
                "stop_at_equilibrium=True is not supported on the Brian2 substrates: they run every "
                "phase to its full length. Set stop_at_equilibrium=False or use the 'ode' substrate.")
        W, b = batch.weights, batch.bias
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
            raise DivergenceError("The weights contain non-finite values; the network has diverged.",
                                  phase="free", magnitude=float("inf"))
        P = inputs.shape[0]
        if self._standalone is not None:
            return self._standalone.run(batch, inputs, initial, schedule, targets,
                                        lambda *a, **k: self._trajectory(batch, *a, **k))
        until = deadline(self.max_seconds)
        net = self.compiled(batch, P, schedule.dt)
        net.set_network_values(batch)
        roles = batch.roles
        N = roles.n_neurons
        net.set_states(initial)
        net.set_nudge(np.zeros(N), np.zeros((P, N)))
        free = self._phase(net, batch, initial, schedule, schedule.free_steps, "free", learn=False,
                           until=until)
        if targets is None or schedule.nudged_steps == 0:
            return PhaseResult(free)
        beta_vec = np.zeros(N)
        beta_vec[roles.outputs] = schedule.beta
        y_full = np.zeros((P, N))
        y_full[:, roles.outputs] = targets
        net.set_nudge(beta_vec, y_full)
        net.reset_traces()
        nudged = self._phase(net, batch, free.final, schedule, schedule.nudged_steps, "nudged",
                             learn=True, until=until)
        return PhaseResult(free, nudged)

    # -- internals -----------------------------------------------------------------------
    def _phase(self, net: _CompiledNetwork, batch, x0, schedule, steps, phase, *, learn,
               until: float | None = None) -> Trajectory:
        roles = batch.roles
        S, P, N = x0.shape
        rec = net.run_phase(steps, learn, until, self.max_seconds)
        out = np.empty((S, P, steps + 1, N))
        out[:, :, 0] = x0
        out[:, :, 1:] = np.moveaxis(rec.reshape(steps, S, P, N), 0, 2)
        traces = None
        if learn:
            traces = net.synaptic_traces()
            traces["samples"] = steps
        return self._trajectory(batch, out, phase, schedule, traces, {})

    def _trajectory(self, batch, out, phase, schedule, traces, extra_meta, *, times=None,
                    speed_step=None) -> Trajectory:
        """The common trajectory of one phase from states ``out (S, P, T, N)``.

        ``times`` defaults to a uniform grid of ``dt``; ``speed_step`` (``(S, P, N)``, the last
        step's change) defaults to the difference of the last two samples.
        """
        roles = batch.roles
        S, P, T, N = out.shape
        steps = schedule.free_steps if phase == "free" else schedule.nudged_steps
        if times is None:
            times = schedule.dt * np.arange(T)
        fr = roles.free
        last = out[:, :, -1] - out[:, :, -2] if speed_step is None else speed_step
        with np.errstate(invalid="ignore"):
            speed = np.abs(last[:, :, fr]).max(axis=-1) / schedule.dt
        settled, diverged, msg = phase_status(phase, out, speed, schedule.settle_tol,
                                              float(schedule.dt * steps))
        meta: dict[str, Any] = {
            "integrator": f"Brian2 {self.method} + [0, 1] projection ({self.target} target)",
            "dt": schedule.dt, "tau_seconds": self.tau, "brian2_target": self.target,
            "steps_done": np.full((S, P), steps), "final_speed": speed}
        meta.update(extra_meta)
        if diverged.any():
            meta["magnitude"] = float("inf")
        if traces is not None:
            meta["synaptic_traces"] = traces
        return Trajectory(times, out, roles, phase, self.name, settled, schedule.settle_tol,
                          diverged, msg, meta)
