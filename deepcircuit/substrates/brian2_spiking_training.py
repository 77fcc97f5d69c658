"""A whole spike-based training as one compiled Brian2 program (``brian2-spiking``, cpp_standalone).

The per-epoch compiled program (:class:`~deepcircuit.substrates.brian2_spiking._SpikingProgram`)
pays a process start and a file exchange every epoch, about as long as the simulation of an
XOR epoch itself. This program runs ``epochs + 1`` epochs in one run of the binary, with the
same neurons, Poisson spikes, synapses and spike-based learning sums; at the start of every
epoch the program itself

1. records the previous epoch: each neuron's state at the end of its free and nudged phases,
   the sums of its state over each half of each phase's read-out window (the per-epoch path's
   ``window_mean`` and drift), its spikes per phase;
2. sums each synapse's learning accumulators over the presentations, scaled exactly as
   :func:`~deepcircuit.substrates.brian2_common.synaptic_sums` scales them, and applies DEEP's
   rule (:func:`~deepcircuit.substrates.brian2_standalone.update_code`, the rate training
   program's arithmetic), prunes, records the weights;
3. resets the states to that epoch's initial states (drawn beforehand by the training loop's own
   generators), and the filtered currents, STDP traces and Poisson thresholds to what the
   per-epoch program starts from (currents at their expected values for the initial states).

Clocks: the Brian2 step (``schedule.dt * tau / substeps``), a sample clock (``schedule.dt * tau``)
on which each neuron counts the samples of its epoch, accumulates its read-out windows and sets
the phase (nudge, learning window) for the steps that follow, and an epoch clock. The last
epoch's free phase is the training's final evaluation. Spike trains are drawn by the program's
own generator, seeded like every compiled spiking run (``Brian2SpikingSubstrate.run_seed``): a
training with a seed is reproducible.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from ..model.network import NetworkBatch
from .brian2_build import build_standalone, cache_root, code_version, compile_args, run_standalone
from .brian2_common import (FIRST_THRESHOLD, POISSON_RESET, SPIKE_THRESHOLD, STDP_RESET,
                            block_diagonal_synapses, spiking_equations, spiking_on_pre, stdp_on_pre)
from .brian2_standalone import (program_values, rule_values, schedule_rule, weight_links,
                                weight_neurons, weight_records)
from .trajectory import PhaseResult


def window_bounds(steps: int, window: float) -> tuple[int, int]:
    """``(k, half)``: a phase of ``steps`` samples is read out over its last ``k`` states
    (``steps + 1`` states in all), whose first ``half`` and last ``k - half`` give the drift."""
    k = min(max(2, int(round(window * steps))), steps + 1)
    return k, k // 2


def sample_code(T1: int, T2: int, L: int, window: float) -> str:
    """Per sample (once every ``substeps`` steps), at the start: accumulate this sample ``c`` of the
    epoch into the read-out windows, latch the end of the free phase, set the phase of the
    following steps (gates are 0 or 1, so the products select exactly)."""
    E = T1 + T2
    k1, h1 = window_bounds(T1, window)
    k2, h2 = window_bounds(T2, window)
    f0, n0 = T1 + 1 - k1, E + 1 - k2
    return "\n".join([
        f"fa += s * int(c >= {f0}) * int(c < {f0 + h1})",
        f"fb += s * int(c >= {f0 + h1}) * int(c <= {T1})",
        f"na += s * int(c >= {n0}) * int(c < {n0 + h2})",
        f"nb += s * int(c >= {n0 + h2})",
        f"lat = int(c == {T1})",
        "s_free = lat * s + (1 - lat) * s_free",
        f"nud = int(c >= {T1})",
        "beta = beta_nudge * nud",
        f"learn = nud * int(c < {T1 + L})",
        "c += 1"])


#: Epoch start, on the neurons: the epoch's initial states and the per-epoch program's starting
#: values (traces at their expectations, a fresh Poisson threshold); sample 0 is done.
RESET_CODE = ("s = S0(t, i)\nc = 1\nnud = 0\nbeta = 0\nlearn = 0\n"
              "fa = 0\nfb = 0\nna = 0\nnb = 0\nn_free = 0\nn_nudged = 0\n"
              f"hz = 0\ntheta = {FIRST_THRESHOLD}\nxf = s * max_rate * tau_f\nxl = s * max_rate * tau_l")
#: Epoch start, after the summed inflow and outflow factors of the new states and weights.
CURRENTS_CODE = "I = Iss\nO = s * wout"
#: Epoch start, on the links weight -> synapse: sum the accumulators over presentations, scaled.
REDUCE_CODE = "dsum_pre += acc_d_post * kd\ndsum2_pre += acc_c_post * kc"
#: Epoch start: the new weight to every copy's synapse (and its initial-current twin).
BROADCAST_CODE = "w_post = w_pre\nacc_d_post = 0 / second\nacc_c_post = 0 / second"


class SpikingTrainingProgram:
    """The compiled program of a whole spike-based training (see the module docstring).

    Built once per structure (roles, family, topology, copies, schedule, spiking parameters,
    epochs, rule switches) under :func:`~deepcircuit.substrates.brian2_build.cache_root`
    in ``spiketrain-<hash>``; :meth:`run` runs it with new values.
    """

    def __init__(self, b2, batch: NetworkBatch, P: int, schedule, *, tau: float, tau_s: float,
                 max_rate: float, substeps: int, tau_f: float, tau_l: float, learn_samples: int,
                 window: float, epochs: int, sign: bool, prune: str | None) -> None:
        roles = batch.roles
        S, N = len(batch), roles.n_neurons
        self.S, self.P, self.N = S, P, N
        self.T1, self.T2 = schedule.free_steps, schedule.nudged_steps
        E = self.T1 + self.T2
        copies = S * P
        tm = batch.topology_mask
        key = repr((b2.__version__, code_version(), "spiking-training", roles, batch.family,
                    sorted(batch.params.items()), S, P, float(schedule.dt), self.T1, self.T2, tau,
                    tau_s, max_rate, substeps, tau_f, tau_l, learn_samples, window, epochs, sign,
                    prune, tm.tobytes(), compile_args(b2))).encode()
        self.directory = cache_root() / f"spiketrain-{hashlib.sha256(key).hexdigest()[:20]}"
        pre, post, self.syn_net, self.syn_i, self.syn_j = block_diagonal_synapses(tm, P)
        self.conn = np.nonzero(tm)
        self.S0_shape = (epochs + 2, copies * N)
        link_pre, link_post, outflow_post = weight_links(tm, P, self.syn_net, self.syn_i, self.syn_j)
        dt_s = schedule.dt * tau
        r2 = max_rate ** 2

        def make(device):
            sec = b2.second
            fast = b2.Clock(dt=dt_s / substeps * sec, name="deepcircuit_spk_clock*")
            sample = b2.Clock(dt=dt_s * sec, name="deepcircuit_sample_clock*")
            epoch = b2.Clock(dt=E * dt_s * sec, name="deepcircuit_epoch_clock*")
            ns = {"tau": tau * sec, "tau_s": tau_s * sec, "max_rate": max_rate * b2.Hz,
                  "q": 1.0 / (max_rate * tau_s), "tau_f": tau_f * sec, "tau_l": tau_l * sec}
            G = b2.NeuronGroup(
                copies * N, spiking_equations(batch.family) +
                "beta_nudge : 1 (constant)\nnud : 1\nn_free : 1\nn_nudged : 1\nc : 1\n"
                "fa : 1\nfb : 1\nna : 1\nnb : 1\ns_free : 1\nlat : 1\n"
                "Iss : 1 (linked)\nwout : 1 (linked)\n",
                method="euler", threshold=SPIKE_THRESHOLD,
                reset=STDP_RESET + "\n" + POISSON_RESET + "\nn_free += 1 - nud\nn_nudged += nud",
                clock=fast, namespace=ns, name="spiking*")
            # The epoch's summed inflow and outflow factors, on the epoch clock (a summed
            # variable is updated on its target's clock: here once per epoch, not every step).
            Gi = b2.NeuronGroup(copies * N, "Iss : 1\nwout : 1", method=None, clock=epoch,
                                order=-10, name="initial_currents*")
            G.Iss = b2.linked_var(Gi, "Iss")
            G.wout = b2.linked_var(Gi, "wout")
            G.run_regularly(sample_code(self.T1, self.T2, learn_samples, window), when="start",
                            order=-40, clock=sample, name="sample*")
            G.run_regularly("s = clip(s, 0, 1)", when="after_groups", name="projection*")
            Syn = b2.Synapses(G, G, "w : 1\nacc_d : 1/second\nacc_c : 1/second",
                              on_pre=spiking_on_pre(batch.family) + "\n" + stdp_on_pre(),
                              clock=fast, namespace=ns, name="spk_synapses*")
            Syn.connect(i=pre, j=post)
            Init = b2.Synapses(G, Gi, "w : 1\nIss_post = w * s_pre : 1 (summed)", clock=epoch,
                               name="initial_inflow*")
            Init.connect(i=pre, j=post)
            # One "weight" neuron per connection of each network: the weight the program learns.
            Wg = weight_neurons(b2, self.conn[0].size, epoch, {}, P, self.T2)
            Link = b2.Synapses(Wg, Syn, "", clock=epoch, name="links*",
                               namespace={"kd": 1.0 / (r2 * (tau_l - tau_f)) * sec,
                                          "kc": 1.0 / (r2 * dt_s) * sec})
            Link.connect(i=link_pre, j=link_post)
            Link2 = b2.Synapses(Wg, Init, "", clock=epoch, name="links_initial*")
            Link2.connect(i=link_pre, j=link_post)
            Out = b2.Synapses(Wg, Gi, "wout_post = w_pre : 1 (summed)", clock=epoch, name="outflow*")
            Out.connect(i=link_pre, j=outflow_post)
            # Epoch start, in this order: the last sample of the previous epoch (above), record it,
            # reduce, update and prune, record the weights, clear, broadcast, reset the states;
            # then ('groups') the summed factors of the new states, and the currents from them,
            # before the first step's integration.
            self.rec_g = b2.StateMonitor(G, ["s_free", "s", "fa", "fb", "na", "nb", "n_free", "n_nudged"],
                                         record=True, when="start", order=-30, clock=epoch,
                                         name="rec_states*")
            self.rec_w = schedule_rule(b2, Wg, Link, epoch, sign=sign, prune=prune,
                                       reduce_code=REDUCE_CODE, broadcast_code=BROADCAST_CODE)
            Link2.run_regularly("w_post = w_pre", when="start", order=-1, name="broadcast_initial*")
            G.namespace["S0"] = b2.TimedArray(np.zeros(self.S0_shape), dt=E * dt_s * sec, name="S0")
            G.run_regularly(RESET_CODE, when="start", order=1, clock=epoch, name="reset*")
            G.run_regularly(CURRENTS_CODE, when="groups", order=-5, clock=epoch, name="currents*")
            net = b2.Network(G, Gi, Syn, Init, Wg, Link, Link2, Out, self.rec_g, self.rec_w)
            device.apply_run_args()
            G.theta = FIRST_THRESHOLD
            net.run(((epochs + 1) * E + 1) * dt_s * sec, namespace={})
            results = {f"g_{v}": self.rec_g.variables[v] for v in
                       ("s_free", "s", "fa", "fb", "na", "nb", "n_free", "n_nudged")}
            results.update({f"w_{v}": self.rec_w.variables[v] for v in ("w", "alive", "dsum", "dsum2")})
            targets = {k: (G, k, np.float64) for k in ("free", "beta_nudge", "y", "leak")}
            targets.update({k: (Wg, k, np.float64) for k in ("w", "alive", "eta", "l1", "beta0", "beta1", "tol")})
            return results, targets

        self._files, self._args, self.build_seconds = build_standalone(b2, self.directory, make)

    def run(self, values: dict, S0: np.ndarray, max_seconds: float | None = None,
            seed: int | None = None) -> dict:
        """Run the binary once: ``values`` (run arguments), ``S0 (epochs + 1, S, P, N)`` the initial
        states of every epoch, ``max_seconds`` the wall-time budget, ``seed`` of the spike trains
        (None: unseeded). Returns the result arrays."""
        rows = np.zeros(self.S0_shape)
        rows[:S0.shape[0]] = S0.reshape(S0.shape[0], -1)
        return run_standalone(self.directory, self._args, self._files, values, {"S0.values": rows},
                              scalars=("eta", "l1", "beta0", "beta1", "tol"), max_seconds=max_seconds,
                              seed=seed)


def plan_spiking_training(sub, batch: NetworkBatch, targets, schedule, config, initial: np.ndarray,
                          cache: dict) -> dict | None:
    """Run a whole spike-based training of ``batch`` on substrate ``sub`` (a
    :class:`~deepcircuit.substrates.brian2_spiking.Brian2SpikingSubstrate`) as one program; return
    the plan its :meth:`run` replays (see
    :func:`~deepcircuit.substrates.brian2_standalone.plan_matches`), or None for settings the
    program does not implement (then every epoch is simulated as before)."""
    if (config.prune not in (None, "magnitude") or batch.family not in ("deep", "deep-leaky")
            or schedule.free_steps < 2 or schedule.nudged_steps < 2 or config.epochs < 1
            or schedule.stop_at_equilibrium or sub.repeats != 1):
        return None
    S, P, N = initial.shape[1:]
    learn = sub._learn_steps(schedule)
    L = schedule.nudged_steps if learn is None else min(learn, schedule.nudged_steps)
    key = (batch.roles, batch.family, tuple(sorted(batch.params.items())), S, P, float(schedule.dt),
           schedule.free_steps, schedule.nudged_steps, L, config.epochs, bool(config.sign),
           config.prune, batch.topology_mask.tobytes())
    prog = cache.get(key)
    if prog is None:
        cache.clear()  # one training program loaded at a time
        prog = cache[key] = SpikingTrainingProgram(
            sub._brian2, batch, P, schedule, tau=sub.tau, tau_s=sub.tau_s, max_rate=sub.max_rate,
            substeps=sub.substeps, tau_f=sub.stdp_tau_fast, tau_l=sub.stdp_tau_slow, learn_samples=L,
            window=sub.window, epochs=config.epochs, sign=bool(config.sign), prune=config.prune)
        sub.build_seconds += prog.build_seconds
    vals = program_values(batch, P, schedule.beta, targets, deep_like=True)
    vals.update(rule_values(batch, prog.conn, config))
    t0 = time.perf_counter()
    res = prog.run(vals, initial, sub.max_seconds, seed=sub.run_seed(initial, batch.weights))
    K = config.epochs + 2  # ticks at t = 0 .. (epochs + 1) epochs; tick k + 1 holds epoch k
    g = {k: res[f"g_{k}"].reshape(K, S, P, N)[1:] for k in
         ("s_free", "s", "fa", "fb", "na", "nb", "n_free", "n_nudged")}
    W, alive, sums = weight_records(res, K, S, N, prog.conn)
    return {"batch_roles": batch.roles, "topology": batch.topology_mask.copy(), "schedule": schedule,
            "targets": np.array(targets), "initial": initial, "W": W, "alive": alive, "ends": g,
            "sums": sums, "learn_steps": learn, "epoch": 0,
            "program_seconds": time.perf_counter() - t0, "build_seconds": prog.build_seconds}


def replay_epoch(sub, plan: dict, k: int, batch: NetworkBatch, initial: np.ndarray, schedule, targets):
    """The :class:`PhaseResult` of epoch ``k`` of a plan (its checks passed): trajectories of the
    initial and final states of each phase, with the per-epoch path's read-out, spike counts and
    learning sums."""
    e = plan["ends"]
    T1, T2, dt = schedule.free_steps, schedule.nudged_steps, schedule.dt
    meta = {"recorded": "initial and final states only (compiled whole-training run)",
            "build_seconds": plan["build_seconds"], "program_seconds": plan["program_seconds"]}

    def window(first, second, steps):
        n, half = window_bounds(steps, sub.window)
        return (first[k] + second[k]) / n, first[k] / half, second[k] / (n - half), half

    free = sub._trajectory(batch, np.stack([initial, e["s_free"][k]], axis=2), schedule, T1, "free",
                           e["n_free"][k].reshape(-1).astype(np.int64), None, None,
                           window=window(e["fa"], e["fb"], T1), extra_meta=meta)
    if targets is None:
        return PhaseResult(free)
    traces = {"pre_dpost": plan["sums"]["pre_dpost"][k], "pre_post": plan["sums"]["pre_post"][k],
              "samples": T2}
    nudged = sub._trajectory(batch, np.stack([e["s_free"][k], e["s"][k]], axis=2), schedule, T2, "nudged",
                             e["n_nudged"][k].reshape(-1).astype(np.int64), traces, plan["learn_steps"],
                             window=window(e["na"], e["nb"], T2), extra_meta=meta)
    return PhaseResult(free, nudged)
