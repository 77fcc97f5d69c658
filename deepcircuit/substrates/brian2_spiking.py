"""The Brian2 spiking substrate: the same networks, with every state carried by a spike rate.

Encoding (see ``docs/brian2.md``):

* every neuron (inputs and bias included) fires as a Poisson process of rate ``s * max_rate``,
  so its state ``s`` in [0, 1] is its firing rate in units of ``max_rate``. The spikes are
  drawn by time rescaling (:data:`~deepcircuit.substrates.brian2_common.POISSON_RESET`): each
  neuron integrates its intensity ``hz = int s * max_rate dt`` and fires when ``hz`` passes a
  threshold ``theta`` drawn from Exp(1) at the start of the run and after each of its spikes,
  so one random number is drawn per spike instead of one per neuron and step;
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

import hashlib
import zlib

from typing import Any

import numpy as np

from .._validation import check_choice, check_int, check_real
from ..errors import DivergenceError, InvalidInputError, SubstrateUnavailableError
from ..model.network import NetworkBatch
from . import brian2_build  # compiler_available is looked up when called (a test replaces it)
from .trajectory import PhaseResult, Trajectory, phase_status
from .base import Schedule, Substrate, check_run_arguments
from .brian2_build import build_standalone, cache_root, code_version, compile_args, run_standalone
from .brian2_common import (FIRST_THRESHOLD, POISSON_RESET, SPIKE_THRESHOLD, STDP_RESET,
                            block_diagonal_synapses, brian2_target, check_target, deadline,
                            import_brian2, run_before, spiking_equations, spiking_on_pre,
                            stdp_on_pre, synaptic_sums)
from .brian2_spiking_training import plan_spiking_training, replay_epoch
from .brian2_standalone import plan_matches


SPIKING_TARGETS = ("numpy", "cython", "cpp_standalone")

#: The configuration that learned XOR from spikes (docs/brian2.md, "Spike-based training of XOR
#: with the per-seed stop": 10/10 seeds in 7 of 8 runs, 9/10 in the other): the substrate's options
#: and the training settings. ``deepcircuit train --substrate brian2-spiking`` uses them unless
#: the user gives others (``--spike-rate``, ``--spike-substeps``, ``--stdp-window``,
#: ``--brian2-target``, ``--free-steps``, ``--nudged-steps``, ``--stop-when-solved``); the class's
#: own defaults stay those of inference and the library API.
VALIDATED_TRAINING_OPTIONS = {"max_rate": 10000.0, "substeps": 20, "stdp_window": 10.0, "target": "auto"}
VALIDATED_TRAINING_CONFIG = {"free_steps": 500, "nudged_steps": 300, "stop_when_solved": 3}


class _SpikingNetwork:
    def __init__(self, b2, batch: NetworkBatch, P: int, dt: float, tau: float, tau_s: float,
                 max_rate: float, substeps: int, target: str, tau_f: float, tau_l: float) -> None:
        self.b2, self.target = b2, target
        self.tau_f, self.tau_l, self.max_rate = tau_f, tau_l, max_rate
        roles = batch.roles
        S, N = len(batch), roles.n_neurons
        self.S, self.P, self.N = S, P, N
        self.deep_like = batch.family in ("deep", "deep-leaky")
        copies = S * P
        with brian2_target(b2, target):
            self.clock = b2.Clock(dt=dt * tau / substeps * b2.second, name="deepcircuit_spk_clock*")
            ns = {"tau": tau * b2.second, "tau_s": tau_s * b2.second,
                  "max_rate": max_rate * b2.Hz, "q": 1.0 / (max_rate * tau_s),
                  "tau_f": tau_f * b2.second, "tau_l": tau_l * b2.second}
            G = b2.NeuronGroup(copies * N, spiking_equations(batch.family), method="euler",
                               threshold=SPIKE_THRESHOLD, reset=STDP_RESET + "\n" + POISSON_RESET,
                               clock=self.clock, namespace=ns, name="deepcircuit_spiking*")
            free = np.zeros(N)
            free[roles.free] = 1.0
            G.variables["free"].set_value(np.tile(free, copies))
            if self.deep_like:
                G.variables["leak"].set_value(np.full(copies * N, float(batch.params.get("gamma", 0.0))))
            G.run_regularly("s = clip(s, 0, 1)", when="after_groups", name="deepcircuit_spk_projection*")
            pre, post, self.syn_net, self.syn_i, self.syn_j = block_diagonal_synapses(batch.topology_mask, P)
            Syn = b2.Synapses(G, G, "w : 1\nacc_d : 1/second\nacc_c : 1/second",
                              on_pre=spiking_on_pre(batch.family) + "\n" + stdp_on_pre(),
                              clock=self.clock, namespace=ns, name="deepcircuit_spk_synapses*")
            Syn.connect(i=pre, j=post)
            self.monitor = b2.StateMonitor(G, "s", record=True, when="start",
                                           dt=dt * tau * b2.second, name="deepcircuit_spk_monitor*")
            self.spikes = b2.SpikeMonitor(G, record=False, name="deepcircuit_spk_count*")
            self.out_degree_index = self._pre = pre
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
            # The STDP traces likewise start at their expected values.
            for var, tau_x in (("xf", self.tau_f), ("xl", self.tau_l)):
                G.variables[var].get_value()[:] = x0.reshape(-1) * self.max_rate * tau_x
        G.variables["learn"].get_value()[:] = 0.0
        # A run starts a fresh Poisson process per neuron (memoryless: no spike history needed).
        G.variables["hz"].get_value()[:] = 0.0
        with brian2_target(self.b2, self.target):
            G.theta = FIRST_THRESHOLD  # Brian2's generator: seeded by b2.seed like the spikes

    def start_learning(self) -> None:
        """Zero the synaptic accumulators and let pre-synaptic spikes feed them."""
        self.Syn.variables["acc_d"].get_value()[:] = 0.0
        self.Syn.variables["acc_c"].get_value()[:] = 0.0
        self.G.variables["learn"].get_value()[:] = 1.0

    def synaptic_traces(self, samples: int, dt_seconds: float, repeats: int = 1) -> dict:
        """The spike-based estimates of the rule's sums, per network ``(S, N, N)``.

        ``pre_dpost`` estimates ``sum_t s_i(t) (s_j(t) - s_j(t-1))`` (= ``int s_i ds_j``) as
        ``sum acc_d / (max_rate^2 (tau_l - tau_f))``; ``pre_post`` estimates
        ``sum_t s_i s_j`` over ``samples`` samples ``dt_seconds`` apart as
        ``sum acc_c / (max_rate^2 dt_seconds)``. Summed over presentations (see
        :func:`~deepcircuit.substrates.brian2_common.synaptic_sums` for ``repeats``).
        """
        return synaptic_sums({v: self.Syn.variables[v].get_value() for v in ("acc_d", "acc_c")},
                             self, samples, dt_seconds, repeats)

    def spike_counts(self) -> np.ndarray:
        """Spikes per neuron of the group so far (for the energy-like counts)."""
        return np.array(self.spikes.count[:], dtype=np.int64)

    def run_phase(self, steps: int, dt_tau: float, tau: float, learn_steps: int | None = None,
                  until: float | None = None, max_seconds: float | None = None) -> np.ndarray:
        """Run ``steps`` samples; the synapses learn during the first ``learn_steps`` of them.
        Past the wall-time deadline ``until`` the run stops with a SimulationError."""
        b2 = self.b2
        self.monitor.resize(0)
        what = f"The Brian2 spiking run (target {self.target})"
        with brian2_target(b2, self.target):
            if learn_steps is not None and 0 < learn_steps < steps:
                run_before(b2, self.net, learn_steps * dt_tau * tau * b2.second, until, what, max_seconds)
                self.G.variables["learn"].get_value()[:] = 0.0
                run_before(b2, self.net, (steps - learn_steps) * dt_tau * tau * b2.second, until, what,
                           max_seconds)
            else:
                run_before(b2, self.net, steps * dt_tau * tau * b2.second, until, what, max_seconds)
        # Recorded at the start of every interval: s(0), ..., s(T - dt); then the final state.
        rec = np.array(self.monitor.variables["s"].get_value(), copy=True)[:steps]
        return np.concatenate([rec, self.G.variables["s"].get_value()[None, :]])


class _SpikingProgram:
    """The spiking network as one compiled program (Brian2 cpp_standalone): a free phase, then
    a nudged phase, with the same equations, spikes and synaptic rule as the runtime targets.

    Built once per structure under :func:`~deepcircuit.substrates.brian2_build.cache_root`
    and run with new values as run arguments. Per Brian2 step a ``run_regularly`` operation
    derives the phase from the step number (nudge on after ``T1`` samples; learning during the
    first ``window`` samples of the nudged phase), and each spike is counted per phase. The
    random numbers (the spike trains) come from the program's own generator, seeded for each
    run by :meth:`Brian2SpikingSubstrate.run_seed` (unseeded if the substrate's seed is None).
    """

    def __init__(self, b2, batch: NetworkBatch, P: int, schedule: Schedule, tau: float, tau_s: float,
                 max_rate: float, substeps: int, tau_f: float, tau_l: float, learn_samples: int) -> None:
        roles = batch.roles
        S, N = len(batch), roles.n_neurons
        self.S, self.P, self.N = S, P, N
        self.deep_like = batch.family in ("deep", "deep-leaky")
        self.max_rate, self.tau_f, self.tau_l = max_rate, tau_f, tau_l
        self.T1, self.T2 = schedule.free_steps, max(schedule.nudged_steps, 1)
        copies = S * P
        tm = batch.topology_mask
        key = repr((b2.__version__, code_version(), "spiking", roles, batch.family, sorted(batch.params.items()), S, P,
                    float(schedule.dt), self.T1, self.T2, tau, tau_s, max_rate, substeps, tau_f, tau_l,
                    learn_samples, tm.tobytes(), compile_args(b2))).encode()
        self.directory = cache_root() / f"spiking-{hashlib.sha256(key).hexdigest()[:20]}"
        self._pre, self._post, self.syn_net, self.syn_i, self.syn_j = block_diagonal_synapses(tm, P)
        dt = schedule.dt

        def make(device):
            clock = b2.Clock(dt=dt * tau / substeps * b2.second, name="deepcircuit_spk_clock*")
            ns = {"tau": tau * b2.second, "tau_s": tau_s * b2.second, "max_rate": max_rate * b2.Hz,
                  "q": 1.0 / (max_rate * tau_s), "tau_f": tau_f * b2.second, "tau_l": tau_l * b2.second,
                  "T1s": self.T1 * substeps, "Ls": learn_samples * substeps}
            G = b2.NeuronGroup(copies * N, spiking_equations(batch.family) +
                               "beta_nudge : 1 (constant)\nnud : 1\nn_free : 1\nn_nudged : 1\n",
                               method="euler", threshold=SPIKE_THRESHOLD,
                               reset=STDP_RESET + "\n" + POISSON_RESET + "\nn_free += 1 - nud\nn_nudged += nud",
                               clock=clock, namespace=ns, name="spiking*")
            G.run_regularly("nud = int(t_in_timesteps >= T1s)\nbeta = beta_nudge * nud\n"
                            "learn = nud * int(t_in_timesteps < T1s + Ls)",
                            when="start", order=0, name="phase*")
            G.run_regularly("s = clip(s, 0, 1)", when="after_groups", name="projection*")
            pre, post = self._pre, self._post
            Syn = b2.Synapses(G, G, "w : 1\nacc_d : 1/second\nacc_c : 1/second",
                              on_pre=spiking_on_pre(batch.family) + "\n" + stdp_on_pre(),
                              clock=clock, namespace=ns, name="spk_synapses*")
            Syn.connect(i=pre, j=post)
            mon = b2.StateMonitor(G, "s", record=True, when="start", dt=dt * tau * b2.second,
                                  name="spk_monitor*")
            net = b2.Network(G, Syn, mon)
            device.apply_run_args()
            G.nud = 0.0
            G.learn = 0.0
            G.theta = FIRST_THRESHOLD
            net.run((self.T1 + self.T2) * dt * tau * b2.second, namespace={})
            results = {"rec": mon.variables["s"], "s": G.variables["s"], "acc_d": Syn.variables["acc_d"],
                       "acc_c": Syn.variables["acc_c"], "n_free": G.variables["n_free"],
                       "n_nudged": G.variables["n_nudged"]}
            targets = {k: (G, k, np.float64) for k in ("s", "I", "xf", "xl", "free", "beta_nudge", "y")}
            targets["w"] = (Syn, "w", np.float64)
            if self.deep_like:
                targets.update(O=(G, "O", np.float64), leak=(G, "leak", np.float64))
            else:
                targets["b"] = (G, "b", np.float64)
            return results, targets

        self._files, self._args, self.build_seconds = build_standalone(b2, self.directory, make)

    def run(self, batch: NetworkBatch, x0: np.ndarray, beta_vec, y_full, max_seconds: float | None = None,
            seed: int | None = None) -> dict:
        S, P, N = self.S, self.P, self.N
        W = batch.weights
        x = x0.reshape(S, P, N)
        vals = {"s": x0.reshape(-1), "I": np.einsum("spi,sij->spj", x, W).reshape(-1),
                "xf": x0.reshape(-1) * self.max_rate * self.tau_f,
                "xl": x0.reshape(-1) * self.max_rate * self.tau_l,
                "w": W[self.syn_net, self.syn_i, self.syn_j],
                "beta_nudge": np.tile(beta_vec, S * P), "y": np.tile(y_full.reshape(-1), S)}
        free = np.zeros(N)
        free[batch.roles.free] = 1.0
        vals["free"] = np.tile(free, S * P)
        if self.deep_like:
            vals["O"] = (x * W.sum(axis=-1)[:, None, :]).reshape(-1)
            vals["leak"] = np.full(S * P * N, float(batch.params.get("gamma", 0.0)))
        else:
            vals["b"] = np.repeat(batch.bias, P, axis=0).ravel()
        return run_standalone(self.directory, self._args, self._files, vals, max_seconds=max_seconds,
                              seed=seed)

    def synaptic_traces(self, res: dict, samples: int, dt_seconds: float, repeats: int = 1) -> dict:
        return synaptic_sums(res, self, samples, dt_seconds, repeats)


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
    stdp_tau_fast, stdp_tau_slow : float
        Time constants (seconds) of the two post-synaptic traces of the spike-based learning
        rule (see :func:`~deepcircuit.substrates.brian2_common.stdp_on_pre`); the rule's scale ``1 / (max_rate^2 (slow - fast))`` is
        derived from them, not tuned.
    target : {"numpy", "cython", "cpp_standalone", "auto"}
        Brian2 target (``auto``: ``cpp_standalone`` where a C++ compiler is present, else numpy). ``cpp_standalone`` runs both phases as one compiled program (built once,
        cached; see :class:`_SpikingProgram`), much faster.
    seed : int, optional
        Seed of Brian2's random numbers (the spike trains); None = not reproducible. The
        runtime targets re-seed with it at every run; a compiled run is seeded from it and
        the run's initial states and weights (:meth:`run_seed`): the same call gives the same
        spike trains, and each epoch of a training (new initial states) draws new ones.
    window : float
        Fraction of each phase (at its end) averaged into ``meta["window_mean"]``.
    repeats : int
        Presentations per (network, pattern) in a run with targets (a training step): each is
        simulated ``repeats`` times from the same initial state with independent spike trains,
        side by side in one run. The returned trajectories are the first repetition's; the
        synaptic traces are the mean over the repetitions, so the spike noise of the update has
        ``1/sqrt(repeats)`` of its standard deviation while its expectation (the rate rule) is
        unchanged, and ``synaptic_traces["pre_dpost_each"]`` keeps each repetition's sums (for a
        noise estimate). Runs without targets (inference, evaluation) simulate each presentation
        once. Spike and event counts in ``meta`` count every repetition (what the step costs).
    whole_training : bool
        ``cpp_standalone`` only: offer :meth:`plan_training`, a whole training as one compiled
        program (:mod:`deepcircuit.substrates.brian2_spiking_training`). False runs the compiled
        two-phase program once per epoch instead.
    max_seconds : float or None
        Wall-time budget (seconds; default 600, None = no limit) of one run of a compiled
        program (``cpp_standalone``: killed past it) or of one :meth:`run` call on a runtime
        target (stopped between two time steps); either is reported as a
        :class:`~deepcircuit.errors.SimulationError`.
    """

    name = "brian2-spiking"

    def __init__(self, *, max_rate: float = 2000.0, tau: float = 10e-3, tau_s: float = 5e-3,
                 substeps: int = 10, target: str = "numpy", seed: int | None = 0,
                 window: float = 0.2, stdp_tau_fast: float = 5e-3, stdp_tau_slow: float = 20e-3,
                 stdp_window: float | None = None, repeats: int = 1, whole_training: bool = True,
                 max_seconds: float | None = 600.0) -> None:
        self.max_rate = check_real("max_rate", max_rate, low=0.0, low_open=True)
        self.tau = check_real("tau", tau, low=0.0, low_open=True)
        self.tau_s = check_real("tau_s", tau_s, low=0.0, low_open=True)
        self.substeps = check_int("substeps", substeps, low=1)
        self.target = check_choice("target", target, SPIKING_TARGETS + ("auto",))
        if self.target == "auto":  # compiled where a C++ compiler is present, as the rate substrate
            self.target = "cpp_standalone" if brian2_build.compiler_available() else "numpy"
        self.stdp_tau_fast = check_real("stdp_tau_fast", stdp_tau_fast, low=0.0, low_open=True)
        self.stdp_tau_slow = check_real("stdp_tau_slow", stdp_tau_slow, low=self.stdp_tau_fast, low_open=True)
        self.stdp_window = None if stdp_window is None else check_real("stdp_window", stdp_window, low=0.0, low_open=True)
        self.seed = None if seed is None else check_int("seed", seed, low=0)
        self.window = check_real("window", window, low=0.0, high=1.0, low_open=True)
        self.repeats = check_int("repeats", repeats, low=1)
        self.whole_training = bool(whole_training)
        self.max_seconds = None if max_seconds is None else check_real("max_seconds", max_seconds, low=0.0,
                                                                       low_open=True)
        self._plan: dict | None = None
        self._training_programs: dict = {}
        self._brian2 = import_brian2()
        if self.target == "cpp_standalone":
            if not brian2_build.compiler_available():
                raise SubstrateUnavailableError(
                    "Brian2's 'cpp_standalone' target needs make and a C++ compiler "
                    "(apt-get install build-essential); use target='numpy' or 'cython'.")
        else:
            check_target(self._brian2, self.target)
        self._net = None
        #: Seconds spent building compiled programs (target cpp_standalone).
        self.build_seconds = 0.0
        self._key: tuple | None = None

    def __repr__(self) -> str:
        return (f"Brian2SpikingSubstrate(max_rate={self.max_rate!r}, tau={self.tau!r}, "
                f"tau_s={self.tau_s!r}, target={self.target!r}, repeats={self.repeats!r})")

    def run_seed(self, *arrays: np.ndarray) -> int | None:
        """The seed of one compiled run whose values are ``arrays`` (None if ``seed`` is None).

        A compiled program is built once, so its seed is handed to each run. It is derived from
        ``seed`` and the run's initial states and weights: the same call gives the same spike
        trains (as the runtime targets, re-seeded every run, do), while the epochs of a training,
        which start from new initial states, draw new ones.
        """
        if self.seed is None:
            return None
        words = [self.seed] + [zlib.crc32(np.ascontiguousarray(a).tobytes()) for a in arrays]
        return int(np.random.SeedSequence(words).generate_state(1)[0])

    def close(self) -> None:
        self._net = None
        self._plan = None
        self._training_programs.clear()

    def plan_training(self, batch: NetworkBatch, inputs, targets, schedule: Schedule, config,
                      initial: np.ndarray) -> bool:
        """Optional capability used by :func:`deepcircuit.learning.training.train`: run a whole
        spike-based training as one compiled program (``cpp_standalone`` target, ``repeats=1``,
        DEEP's families; see :mod:`deepcircuit.substrates.brian2_spiking_training`). The loop
        still calls :meth:`run` for every epoch and gets that epoch's recording while it asks
        for exactly what the program computed. Returns whether a plan was made."""
        self._plan = None
        if self.target != "cpp_standalone" or not self.whole_training or targets is None:
            return False
        self._plan = plan_spiking_training(self, NetworkBatch.of(batch), np.asarray(targets, dtype=float),
                                           schedule, config, np.asarray(initial, dtype=float),
                                           self._training_programs)
        return self._plan is not None

    def run(self, networks, inputs, initial, schedule: Schedule, *, targets=None) -> PhaseResult:
        batch = NetworkBatch.of(networks)
        inputs, initial, targets = check_run_arguments(batch, inputs, initial, targets, schedule)
        if self._plan is not None:
            if plan_matches(self._plan, batch, initial, schedule, targets):
                k = self._plan["epoch"]
                self._plan["epoch"] = k + 1
                return replay_epoch(self, self._plan, k, batch, initial, schedule, targets)
            self._plan = None  # departed from the plan: simulate from here on
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
        K = self.repeats if targets is not None and schedule.nudged_steps > 0 else 1
        if K > 1:
            # The repetitions are K more presentations of the same run: rows r * P + p.
            res = self._run_once(batch, np.tile(inputs, (K, 1)), np.tile(initial, (1, K, 1)), schedule,
                                 np.tile(targets, (K, 1)), K)
            return PhaseResult(_first_repetition(res.free, K), _first_repetition(res.nudged, K))
        return self._run_once(batch, inputs, initial, schedule, targets)

    def _run_once(self, batch: NetworkBatch, inputs, initial, schedule: Schedule, targets,
                  repeats: int = 1) -> PhaseResult:
        P = inputs.shape[0]
        if self.target == "cpp_standalone":
            return self._run_compiled(batch, inputs, initial, schedule, targets, repeats)
        key = (batch.roles, batch.family, tuple(sorted(batch.params.items())), len(batch), P,
               float(schedule.dt), batch.topology_mask.tobytes())
        if key != self._key:
            self._net = _SpikingNetwork(self._brian2, batch, P, schedule.dt, self.tau, self.tau_s,
                                        self.max_rate, self.substeps, self.target,
                                        self.stdp_tau_fast, self.stdp_tau_slow)
            self._key = key
        if self.seed is not None:
            self._brian2.seed(self.seed)
        until = deadline(self.max_seconds)
        roles = batch.roles
        N = roles.n_neurons
        net = self._net
        net.set_values(batch, initial, np.zeros(N), np.zeros((P, N)), steady_currents=True)
        free = self._phase(net, batch, initial, schedule, schedule.free_steps, "free", until=until)
        if targets is None or schedule.nudged_steps == 0:
            return PhaseResult(free)
        beta_vec = np.zeros(N)
        beta_vec[roles.outputs] = schedule.beta
        y_full = np.zeros((P, N))
        y_full[:, roles.outputs] = targets
        # The nudged phase continues from the free phase: states and currents carry over.
        net.G.variables["beta"].get_value()[:] = np.tile(beta_vec, len(batch) * P)
        net.G.variables["y"].get_value()[:] = np.tile(y_full.reshape(-1), len(batch))
        net.start_learning()
        nudged = self._phase(net, batch, free.final, schedule, schedule.nudged_steps, "nudged",
                             learn=True, repeats=repeats, until=until)
        return PhaseResult(free, nudged)

    def _phase(self, net: _SpikingNetwork, batch, x0, schedule, steps, phase, *, learn=False,
               repeats: int = 1, until: float | None = None) -> Trajectory:
        S, P, N = x0.shape
        counts0 = net.spike_counts()
        learn_steps = self._learn_steps(schedule) if learn else None
        rec = net.run_phase(steps, schedule.dt, self.tau, learn_steps, until, self.max_seconds)
        out = np.moveaxis(rec.reshape(rec.shape[0], S, P, N), 0, 2)
        traces = net.synaptic_traces(steps, schedule.dt * self.tau, repeats) if learn else None
        return self._trajectory(batch, out, schedule, steps, phase, net.spike_counts() - counts0,
                                traces, learn_steps)

    def _learn_steps(self, schedule) -> int | None:
        if self.stdp_window is None:
            return None
        return max(1, int(round(self.stdp_window / schedule.dt)))

    def _run_compiled(self, batch, inputs, initial, schedule, targets, repeats: int = 1) -> PhaseResult:
        """Both phases as one run of the compiled program (target ``cpp_standalone``)."""
        roles = batch.roles
        S, P, N = initial.shape
        T1, T2 = schedule.free_steps, schedule.nudged_steps
        learn = self._learn_steps(schedule)
        learn_samples = T2 if learn is None else min(learn, T2)
        key = ("compiled", batch.roles, batch.family, tuple(sorted(batch.params.items())), S, P,
               float(schedule.dt), T1, T2, learn_samples, batch.topology_mask.tobytes())
        if key != self._key:
            self._net = _SpikingProgram(self._brian2, batch, P, schedule, self.tau, self.tau_s,
                                        self.max_rate, self.substeps, self.stdp_tau_fast,
                                        self.stdp_tau_slow, learn_samples)
            self._key = key
            self.build_seconds += self._net.build_seconds
        prog = self._net
        beta_vec = np.zeros(N)
        y_full = np.zeros((P, N))
        if targets is not None:
            beta_vec[roles.outputs] = schedule.beta
            y_full[:, roles.outputs] = targets
        res = prog.run(batch, initial, beta_vec, y_full, self.max_seconds,
                       seed=self.run_seed(initial, batch.weights))
        rec = res["rec"].reshape(-1, S, P, N)
        final = res["s"].reshape(S, P, N)
        full = np.concatenate([np.moveaxis(rec, 0, 2), final[:, :, None]], axis=2)  # T1 + T2 + 1 samples
        free = self._trajectory(batch, full[:, :, :T1 + 1], schedule, T1, "free",
                                res["n_free"].astype(np.int64), None, None)
        if targets is None or T2 == 0:
            return PhaseResult(free)
        nudged = self._trajectory(batch, full[:, :, T1:T1 + T2 + 1], schedule, T2, "nudged",
                                  res["n_nudged"].astype(np.int64),
                                  prog.synaptic_traces(res, T2, schedule.dt * self.tau, repeats), learn)
        return PhaseResult(free, nudged)

    def _trajectory(self, batch, out, schedule, steps, phase, counts, traces, learn_steps, *,
                    window: tuple | None = None, extra_meta: dict | None = None) -> Trajectory:
        """The common trajectory of one phase from its samples ``out (S, P, steps + 1, N)``,
        with the spike counts of each neuron during the phase and the learning sums.

        ``window``: when ``out`` holds only the phase's first and last states (a whole-training
        program's recording), the read-out window's statistics measured by the program:
        ``(mean, mean of its first half, mean of its second half, half)``, each ``(S, P, N)``.
        """
        roles = batch.roles
        S, P, _, N = out.shape
        fr = roles.free
        if window is None:
            times = schedule.dt * np.arange(steps + 1)
            k = max(2, int(round(self.window * steps)))
            tail = out[:, :, -k:, :]
            half = k // 2
            mean, first, second = tail.mean(axis=2), tail[:, :, :half].mean(axis=2), tail[:, :, half:].mean(axis=2)
        else:
            times = np.array([0.0, schedule.dt * steps])
            mean, first, second, half = window
        # Drift of the windowed mean (1/tau): the spiking analogue of max |ds/dt| at the end.
        drift = np.abs(second[..., fr] - first[..., fr]).max(axis=-1) / (half * schedule.dt)
        settled, diverged, msg = phase_status(phase, out, drift, schedule.settle_tol, float(times[-1]),
                                              speed_name="drift of the windowed mean")
        n_spikes = int(counts.sum())
        duration = steps * schedule.dt * self.tau
        # Energy-like counts: a spike of neuron i is one synaptic event on each of its live
        # (non-zero) outgoing synapses.
        W = batch.weights
        out_deg = np.repeat((W != 0).sum(axis=-1), P, axis=0).reshape(-1)
        events = int((counts * out_deg).sum())
        meta: dict[str, Any] = {
            "integrator": f"Brian2 Poisson spiking, euler + [0, 1] projection ({self.target} target)",
            "dt": schedule.dt, "tau_seconds": self.tau, "tau_s_seconds": self.tau_s,
            "max_rate_hz": self.max_rate, "substeps": self.substeps, "brian2_target": self.target,
            "window_mean": mean, "final_speed": drift,
            "mean_rate_hz": n_spikes / (S * P * N * duration),
            "spikes": n_spikes, "spikes_per_presentation": n_spikes / (S * P),
            "synaptic_events": events, "synaptic_events_per_second": events / (S * P * duration),
            "simulated_seconds": duration}
        meta.update(extra_meta or {})
        if traces is not None:
            meta["synaptic_traces"] = traces
            meta["stdp_window_steps"] = steps if learn_steps is None else min(learn_steps, steps)
        if diverged.any():
            meta["magnitude"] = float("inf")
        return Trajectory(times, out, roles, phase, self.name, settled, schedule.settle_tol,
                          diverged, msg, meta)


def _first_repetition(traj: Trajectory | None, repeats: int) -> Trajectory | None:
    """The trajectory of a run whose presentations were ``repeats`` repetitions of the same
    patterns, reduced to the first repetition's states; the synaptic traces become the mean
    over repetitions (so the rule, which divides by the number of presentations, gets the
    repetition-averaged update) and the energy-like counts per presentation count every
    repetition."""
    if traj is None:
        return None
    S, PK = traj.states.shape[:2]
    P = PK // repeats
    meta = dict(traj.meta)
    for key in ("window_mean", "final_speed"):
        meta[key] = meta[key][:, :P]
    for key in ("spikes_per_presentation", "synaptic_events_per_second"):
        meta[key] = meta[key] * repeats
    meta["repeats"] = repeats
    traces = meta.get("synaptic_traces")
    if traces is not None:
        traces = dict(traces)
        for key in ("pre_dpost", "pre_post"):
            traces[key] = traces[key] / repeats
        meta["synaptic_traces"] = traces
    return Trajectory(traj.times, traj.states[:, :P], traj.roles, traj.phase, traj.substrate,
                      traj.settled[:, :P], traj.settle_tol, traj.diverged, traj.message, meta)
