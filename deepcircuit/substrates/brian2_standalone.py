"""Brian2's C++ standalone device for the rate substrate: phases and whole trainings as
compiled programs.

Two kinds of program are generated from the same Brian2 objects as the runtime path
(:mod:`deepcircuit.substrates.brian2_rate`: the same neuron equations, projected-Euler update
and synaptic accumulators):

* a **phase program**: one free phase then one nudged phase, every state recorded (what
  :meth:`Substrate.run` returns);
* a **training program**: ``epochs + 1`` such epochs in one run of the binary. At the start of
  each epoch the program itself applies DEEP's learning rule to the accumulators of the previous
  epoch (summed over presentations), prunes, and redraws nothing: the initial states of every
  epoch are drawn beforehand by the training loop's own generators and passed in. The last epoch's
  free phase is the final evaluation. It records, per epoch, the weights it used, the accumulator
  sums, and the end state and last step of each phase.

Each program is built once per structure (roles, family, topology, number of copies, ``dt``,
phase lengths, epochs, rule switches), in a folder under
:func:`~deepcircuit.substrates.brian2_build.cache_root`, and run any number of times with new
values given as Brian2 run arguments (``group.variable=file`` on the command line): weights,
states, targets, learning rate. The folder is reused across processes: Brian2 rewrites only
changed files, so a rebuild in a new process regenerates the code (seconds) and ``make``
recompiles nothing (building and running: :mod:`~deepcircuit.substrates.brian2_build`).

Time: Brian2's clock step is ``dt * tau`` seconds; epochs are ``T1 + T2`` steps; an extra
clock with one tick per epoch runs the per-epoch operations at the start of each epoch.

The pieces of DEEP's rule inside a training program (weight neurons, their links to the
synapses, :func:`update_code`, :func:`plan_matches`) are shared with the spike-based training
program (:mod:`~deepcircuit.substrates.brian2_spiking_training`).
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from ..model.network import NetworkBatch
from .brian2_build import build_standalone, cache_root, code_version, compile_args, run_standalone
from .brian2_common import (block_diagonal_synapses, euler_code, neuron_equations,
                            synapse_equations)
from .trajectory import PhaseResult


#: Per step, at the start: is this step nudged? (``E`` steps per epoch, the last ``T2`` nudged.)
PHASE_CODE = "nud = int((t_in_timesteps % E) >= T1)\nbeta = beta_nudge * nud"
#: After the step: latch the state and last step at the end of the free phase (exact select).
LATCH_CODE = ("lat = int((t_in_timesteps % E) == T1 - 1)\n"
              "s_free = lat * s + (1 - lat) * s_free\n"
              "ds_free = lat * dstep + (1 - lat) * ds_free")
#: The synaptic accumulators of the learning rule, counting only nudged steps (``nud`` is 0 or
#: 1, so the products are exactly the runtime path's ``s_pre * dstep_post``).
TRACE_CODE_GATED = ("acc_dpost += nud_post * (s_pre * dstep_post)\n"
                    "acc_coact += nud_post * (s_pre * s_post)")
#: The same without the co-activity sum (a training with ``beta0 = 0`` never reads it).
TRACE_CODE_DPOST = "acc_dpost += nud_post * (s_pre * dstep_post)"
#: Epoch start, on the connections: sum each synapse's accumulators over presentations.
REDUCE_CODE = "dsum_pre += acc_dpost_post\ndsum2_pre += acc_coact_post"
#: Epoch start: hand the new weights to every copy's synapse and clear its accumulators.
BROADCAST_CODE = "w_post = w_pre\nacc_dpost_post = 0\nacc_coact_post = 0"
#: Epoch start, on the neurons: the epoch's initial states (drawn by the training loop).
RESET_CODE = "s = S0(t, i)\nsold = s\ndstep = 0"
CLEAR_CODE = "dsum = 0\ndsum2 = 0"


def update_code(*, sign: bool, prune: str | None) -> str:
    """DEEP's rule on one connection, in :func:`deepcircuit.learning.rule.apply_update`'s arithmetic.

    ``dW = (beta1 * sum dpost + beta0 * T2/M * sum coact) / (P * T2)``,
    ``W <- mask * (W + eta * (sign(dW) if sign else dW) - l1 * sign(W))``, then magnitude
    pruning (``|W| <= tol`` removed). Nothing changes at the first tick (``g = 0``): there is no
    previous epoch. Selections ``g * a + (1 - g) * b`` with ``g`` in {0, 1} are exact.
    """
    lines = ["g = int(t_in_timesteps > 0)",
             "dw = beta1 * dsum",
             "dw = dw + beta0 * T2M * dsum2",
             "dw = dw / PT2",
             "wn = w + eta * sign(dw)" if sign else "wn = w + eta * dw",
             "wn = wn - l1 * sign(w)",
             "wn = alive * wn",
             "w = g * wn + (1 - g) * w"]
    if prune == "magnitude":
        lines += ["alive = alive * (1 - g * int(abs(w) <= tol))", "w = alive * w"]
    return "\n".join(lines)


def weight_links(tm: np.ndarray, P: int, syn_net, syn_i, syn_j) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How a training program's "weight neurons" (one per connection of each network, in
    ``np.nonzero(tm)`` order) reach the network copies, as int32 ``(link_pre, link_post,
    outflow_post)``: link k goes from the weight neuron of synapse k's connection to synapse k
    (synapses in :func:`~deepcircuit.substrates.brian2_common.block_diagonal_synapses` order), and
    ``outflow_post[k]`` is the neuron of synapse k's copy that the weight leaves (for
    ``wout = sum_j W[i, j]``)."""
    conn_net, conn_i, conn_j = np.nonzero(tm)
    index = np.full(tm.shape, -1)
    index[conn_net, conn_i, conn_j] = np.arange(conn_net.size)
    copies, N = tm.shape[0] * P, tm.shape[-1]
    copy = np.repeat(np.arange(copies), [int(tm[c // P].sum()) for c in range(copies)])
    return (index[syn_net, syn_i, syn_j].astype(np.int32), np.arange(np.size(syn_net), dtype=np.int32),
            (copy * N + np.asarray(syn_i)).astype(np.int32))


def program_values(batch: NetworkBatch, P: int, beta: float, targets, deep_like: bool) -> dict:
    """Run arguments every program of ``batch`` with ``P`` presentations takes: which neurons are
    free, the nudge and targets (none without ``targets``), and the leak (DEEP families) or the
    bias (EP families), one value per neuron of every copy."""
    roles = batch.roles
    N, copies = roles.n_neurons, len(batch) * P
    free = np.zeros(N)
    free[roles.free] = 1.0
    bn = np.zeros(N)
    y = np.zeros((P, N))
    if targets is not None:
        bn[roles.outputs] = beta
        y[:, roles.outputs] = targets
    vals = {"free": np.tile(free, copies), "beta_nudge": np.tile(bn, copies),
            "y": np.tile(y.reshape(-1), len(batch))}
    if deep_like:
        vals["leak"] = np.full(copies * N, float(batch.params.get("gamma", 0.0)))
    else:
        vals["b"] = np.repeat(batch.bias, P, axis=0).ravel()
    return vals


def rule_values(batch: NetworkBatch, conn, config) -> dict:
    """Run arguments of a training program's weight neurons (``conn = np.nonzero(topology)``):
    the initial weights and live connections, and the rule's scalars from the training config."""
    cn, ci, cj = conn
    return {"w": batch.weights[cn, ci, cj], "alive": batch.mask[cn, ci, cj].astype(float),
            "eta": config.eta, "l1": config.l1, "beta0": config.beta0, "beta1": config.beta1,
            "tol": config.prune_tol}


def weight_records(res: dict, K: int, S: int, N: int, conn) -> tuple[np.ndarray, np.ndarray, dict]:
    """A training program's per-tick weight records (``w_w``, ``w_alive``, ``w_dsum``, ``w_dsum2``
    over ``K`` epoch ticks) as ``(W (K, S, N, N), alive (K, S, N, N), sums)``; ``sums`` holds the
    rule's sums of each epoch, ``"pre_dpost"`` and ``"pre_post"`` ``(K - 1, S, N, N)`` (tick k + 1
    holds epoch k's)."""
    cn, ci, cj = conn
    wr = {k: res[f"w_{k}"].reshape(K, -1) for k in ("w", "alive", "dsum", "dsum2")}
    W = np.zeros((K, S, N, N))
    W[:, cn, ci, cj] = wr["w"]
    alive = np.zeros((K, S, N, N), dtype=bool)
    alive[:, cn, ci, cj] = wr["alive"] > 0.5
    sums = {}
    for key, var in (("pre_dpost", "dsum"), ("pre_post", "dsum2")):
        a = np.zeros((K, S, N, N))
        a[:, cn, ci, cj] = wr[var]
        sums[key] = a[1:]
    return W, alive, sums


def plan_matches(plan: dict, batch: NetworkBatch, initial, schedule, targets) -> bool:
    """Whether a call of :meth:`Substrate.run` asks for exactly the next epoch a whole-training
    program recorded: same structure and schedule, that epoch's initial states, its weights (to
    1e-12 of themselves or of the largest weight) and live connections, the training targets (none for the last epoch, the
    final evaluation). ``plan["epoch"]`` is the next epoch; ``plan["initial"] (epochs + 1, S, P,
    N)``, ``plan["W"]`` and ``plan["alive"]`` are per epoch."""
    k = plan["epoch"]
    last = plan["initial"].shape[0] - 1
    ok = (k <= last and batch.roles == plan["batch_roles"] and schedule == plan["schedule"]
          and np.array_equal(batch.topology_mask, plan["topology"])
          and np.array_equal(initial, plan["initial"][k])
          and np.array_equal(batch.mask, plan["alive"][k])
          # Rounding, not a departure: Brian2 divides by a constant as a product with its
          # reciprocal, so a weight can differ in its last bit; near zero that is no relative
          # tolerance, hence one relative to the largest weight.
          and np.allclose(batch.weights, plan["W"][k], rtol=1e-12,
                          atol=1e-12 * float(np.max(np.abs(plan["W"][k]), initial=0.0))))
    if ok and k < last:
        ok = targets is not None and np.array_equal(targets, plan["targets"])
    if ok and k == last:
        ok = targets is None
    return bool(ok)


def weight_neurons(b2, n: int, clock, namespace: dict, P: int, T2: int):
    """A training program's ``n`` weight neurons (one per connection of each network): the weight,
    whether the connection is alive, the rule's sums of the epoch, and the rule's scalars as run
    arguments, on the epoch clock."""
    return b2.NeuronGroup(n, "w : 1\nalive : 1\ndsum : 1\ndsum2 : 1\neta : 1 (shared)\nl1 : 1 (shared)\n"
                             "beta0 : 1 (shared)\nbeta1 : 1 (shared)\ntol : 1 (shared)\n",
                          method=None, clock=clock, namespace=dict(namespace, T2M=1.0, PT2=float(P * T2)),
                          name="weights*")


def schedule_rule(b2, Wg, Link, clock, *, sign: bool, prune: str | None, reduce_code: str,
                  broadcast_code: str):
    """At each epoch tick, in this order (orders -5 to -1 of ``start``): sum the synapses'
    accumulators into the weight neurons (``reduce_code`` on ``Link``), apply the rule and prune,
    record the weights, clear the sums, copy the weights back to every synapse
    (``broadcast_code``). Returns the weights' recording."""
    Link.run_regularly(reduce_code, when="start", order=-5, name="reduce*")
    Wg.run_regularly(update_code(sign=sign, prune=prune), when="start", order=-4, name="update*")
    rec_w = b2.StateMonitor(Wg, ["w", "alive", "dsum", "dsum2"], record=True, when="start", order=-3,
                            clock=clock, name="rec_weights*")
    Wg.run_regularly(CLEAR_CODE, when="start", order=-2, name="clear*")
    Link.run_regularly(broadcast_code, when="start", order=-1, name="broadcast*")
    return rec_w


class StandaloneProgram:
    """One compiled Brian2 program for a fixed structure; run with new values any number of times.

    Parameters
    ----------
    brian2 : module
    batch : NetworkBatch
        Gives the structure (roles, family, parameters, topology masks); values come per run.
    P : int
        Presentations (copies per network).
    dt, tau : float
        Step (tau) and seconds per tau.
    free_steps, nudged_steps : int
        T1 and T2.
    epochs : int or None
        ``None``: a phase program (one epoch, every state recorded). Otherwise a training
        program of ``epochs + 1`` epochs with the rule inside.
    sign, prune : rule switches of the training program (see :func:`update_code`).
    """

    def __init__(self, brian2, batch: NetworkBatch, P: int, *, dt: float, tau: float,
                 free_steps: int, nudged_steps: int, epochs: int | None = None, sign: bool = False,
                 prune: str | None = None, coact: bool = True) -> None:
        b2 = brian2
        self.b2 = b2
        roles = batch.roles
        S, N = len(batch), roles.n_neurons
        self.S, self.P, self.N = S, P, N
        self.family = batch.family
        self.deep_like = self.family in ("deep", "deep-leaky")
        self.T1, self.T2 = int(free_steps), int(nudged_steps)
        E = self.T1 + self.T2
        self.epochs = epochs
        self.training = epochs is not None
        copies = S * P
        tm = batch.topology_mask
        key = repr((b2.__version__, code_version(), roles, self.family, sorted(batch.params.items()), S, P, float(dt),
                    float(tau), self.T1, self.T2, epochs, sign, prune, coact, tm.tobytes(),
                    compile_args(b2))).encode()
        kind = "train" if self.training else "phase"
        self.directory = cache_root() / f"{kind}-{hashlib.sha256(key).hexdigest()[:20]}"
        self._pre, self._post, self.syn_net, self.syn_i, self.syn_j = block_diagonal_synapses(tm, P)
        self.conn = np.nonzero(tm)
        self.S0_shape = ((epochs or 0) + 2, S * P * N)

        def make(device):
            clock = b2.Clock(dt=dt * tau * b2.second, name="deepcircuit_clock*")
            ns = {"tau": tau * b2.second, "dt_tau": float(dt), "E": E, "T1": self.T1}
            extra = ("beta_nudge : 1 (constant)\nnud : 1\n")
            if self.training:
                extra += "s_free : 1\nds_free : 1\n"
            G = b2.NeuronGroup(copies * N, neuron_equations(self.family) + extra, method=None,
                               clock=clock, namespace=ns, name="neurons*")
            G.run_regularly(PHASE_CODE, when="start", order=0, name="phase*")
            G.run_regularly(euler_code(self.family), when="after_groups", order=0, name="step*")
            pre, post = self._pre, self._post
            syn_eqs = synapse_equations(self.family)
            if self.training:
                # Weights are fixed within an epoch: the outflow factor sum_k W[j, k] is summed
                # once per epoch by the weight neurons (same order), not every step.
                syn_eqs = syn_eqs.replace("wout_pre = w : 1 (summed)\n", "")
            Syn = b2.Synapses(G, G, syn_eqs, clock=clock, namespace=ns, name="synapses*")
            Syn.connect(i=pre, j=post)
            Syn.run_regularly(TRACE_CODE_GATED if coact else TRACE_CODE_DPOST, when="after_groups",
                              order=1, name="traces*")
            objects = [G, Syn]
            self.G, self.Syn = G, Syn
            if self.training:
                objects += self._training_objects(b2, batch, G, Syn, dt, tau, E, ns, sign, prune)
                steps = (epochs + 1) * E + 1
            else:
                self.mon = b2.StateMonitor(G, "s", record=True, when="end", clock=clock,
                                           name="monitor*")
                objects.append(self.mon)
                steps = E
            net = b2.Network(*objects)
            device.apply_run_args()
            G.sold = 0.0
            G.dstep = 0.0
            G.nud = 0.0
            net.run(steps * dt * tau * b2.second, namespace={})
            return self._result_variables(), self._run_arg_targets()

        self._files, self._arg_names, self.build_seconds = build_standalone(b2, self.directory, make)

    # -- structure ---------------------------------------------------------------------
    def _training_objects(self, b2, batch, G, Syn, dt, tau, E, ns, sign, prune):
        P = self.P
        # One "weight" neuron per connection of each network: the weight the program learns.
        conn_net = self.conn[0]
        link_pre, link_post, outflow_post = weight_links(batch.topology_mask, P, self.syn_net, self.syn_i,
                                                         self.syn_j)
        epoch_clock = b2.Clock(dt=E * dt * tau * b2.second, name="deepcircuit_epoch_clock*")
        Wg = weight_neurons(b2, conn_net.size, epoch_clock, ns, P, self.T2)
        # Link k: weight neuron of (s, i, j) -> the synapse of copy (s, p) for that connection.
        Link = b2.Synapses(Wg, Syn, "", clock=epoch_clock, name="links*")
        Link.connect(i=link_pre, j=link_post)
        extra = []
        if self.deep_like:
            # wout of neuron i in copy (s, p) = sum_j W[i, j], summed over j in increasing order
            # (the runtime path's order), once per epoch tick, after the update ('groups' comes
            # after 'start') and before the first step's integration.
            Out = b2.Synapses(Wg, G, "wout_post = w_pre : 1 (summed)", clock=epoch_clock, name="outflow*")
            Out.connect(i=link_pre, j=outflow_post)
            extra.append(Out)
        # Epoch start, in this order: record last epoch's ends, sum the accumulators over
        # presentations (synapse order, as the runtime path's np.add.at), update and prune,
        # record, clear, broadcast the weights to every copy, reset the states.
        self.rec_g = b2.StateMonitor(G, ["s_free", "ds_free", "s", "dstep"], record=True,
                                     when="start", order=-10, clock=epoch_clock, name="rec_states*")
        self.rec_w = schedule_rule(b2, Wg, Link, epoch_clock, sign=sign, prune=prune,
                                   reduce_code=REDUCE_CODE, broadcast_code=BROADCAST_CODE)
        G.namespace["S0"] = b2.TimedArray(np.zeros(self.S0_shape), dt=E * dt * tau * b2.second, name="S0")
        G.run_regularly(RESET_CODE, when="start", order=-1, clock=epoch_clock, name="reset*")
        G.run_regularly(LATCH_CODE, when="after_groups", order=2, name="latch*")
        self.Wg, self.Link = Wg, Link
        return [Wg, Link, self.rec_g, self.rec_w] + extra

    def _result_variables(self) -> dict:
        out = {}
        if self.training:
            for v in ("s_free", "ds_free", "s", "dstep"):
                out[f"g_{v}"] = self.rec_g.variables[v]
            for v in ("w", "alive", "dsum", "dsum2"):
                out[f"w_{v}"] = self.rec_w.variables[v]
        else:
            out["s"] = self.mon.variables["s"]
            out["acc_dpost"] = self.Syn.variables["acc_dpost"]
            out["acc_coact"] = self.Syn.variables["acc_coact"]
        return out

    def _run_arg_targets(self) -> dict:
        G, Syn = self.G, self.Syn
        out = {"free": (G, "free", np.float64), "beta_nudge": (G, "beta_nudge", np.float64),
               "y": (G, "y", np.float64)}
        out["leak" if self.deep_like else "b"] = (G, "leak" if self.deep_like else "b", np.float64)
        if self.training:
            for v in ("w", "alive", "eta", "l1", "beta0", "beta1", "tol"):
                out[v] = (self.Wg, v, np.float64)
        else:
            out["s"] = (G, "s", np.float64)
            out["w"] = (Syn, "w", np.float64)
        return out

    # -- running -----------------------------------------------------------------------
    def run(self, values: dict, *, S0: np.ndarray | None = None, max_seconds: float | None = None) -> dict:
        """Run the binary once with ``values`` (name -> array or scalar); return the results.

        ``S0`` (training programs): initial states of every epoch, ``(epochs + 1, S, P, N)``.
        ``max_seconds``: wall-time budget of the run (see :func:`~deepcircuit.substrates.brian2_build.run_standalone`).
        """
        extra = None
        if S0 is not None:
            rows = np.zeros(self.S0_shape)
            rows[:S0.shape[0]] = S0.reshape(S0.shape[0], -1)
            extra = {"S0.values": rows}
        return run_standalone(self.directory, self._arg_names, self._files, values, extra,
                              scalars=("eta", "l1", "beta0", "beta1", "tol"), max_seconds=max_seconds)

class StandaloneRunner:
    """The standalone side of :class:`~deepcircuit.substrates.brian2_rate.Brian2RateSubstrate`.

    ``run`` answers :meth:`Substrate.run` from a phase program, or from the recording of a
    training program when :meth:`plan_training` ran one and the call asks for exactly the epoch
    it recorded (same initial states, same weights to 1e-12, same live connections);
    any other call, or a call that departs from the plan (a network frozen after diverging, a
    changed draw), is simulated by the phase program, and the plan is dropped.
    """

    def __init__(self, brian2, tau: float, name: str = "brian2", max_seconds: float | None = None) -> None:
        self.b2 = brian2
        self.tau = tau
        self.name = name
        self.max_seconds = max_seconds
        self._phase: dict = {}
        self._train: dict = {}
        self._plan: dict | None = None
        #: Seconds spent building programs (code generation and compilation), and how many builds.
        self.build_seconds = 0.0
        self.n_builds = 0

    def _program(self, cache: dict, batch: NetworkBatch, P: int, schedule, **kw) -> StandaloneProgram:
        key = (batch.roles, batch.family, tuple(sorted(batch.params.items())), len(batch), P,
               float(schedule.dt), schedule.free_steps, schedule.nudged_steps,
               batch.topology_mask.tobytes(), tuple(sorted(kw.items())))
        prog = cache.pop(key, None)
        if prog is None:
            # A few programs stay loaded (a warm-up of another length must not evict the
            # training's program); the oldest goes first.
            while len(cache) >= 4:
                cache.pop(next(iter(cache)))
            prog = StandaloneProgram(self.b2, batch, P, dt=schedule.dt, tau=self.tau,
                                     free_steps=schedule.free_steps,
                                     nudged_steps=max(schedule.nudged_steps, 1), **kw)
            self.build_seconds += prog.build_seconds
            self.n_builds += 1
        cache[key] = prog  # most recently used last
        return prog

    # -- one presentation (free, then nudged) -------------------------------------------
    def run(self, batch: NetworkBatch, inputs, initial, schedule, targets, make_trajectory):
        replay = self._replay(batch, initial, schedule, targets, make_trajectory)
        if replay is not None:
            return replay
        S, P, N = initial.shape
        prog = self._program(self._phase, batch, P, schedule)
        vals = program_values(batch, P, schedule.beta, targets, prog.deep_like)
        vals["s"] = initial.reshape(-1)
        vals["w"] = batch.weights[prog.syn_net, prog.syn_i, prog.syn_j]
        res = prog.run(vals, max_seconds=self.max_seconds)
        T1, T2 = prog.T1, schedule.nudged_steps
        rec = res["s"].reshape(-1, S, P, N)
        free = np.empty((S, P, T1 + 1, N))
        free[:, :, 0] = initial
        free[:, :, 1:] = np.moveaxis(rec[:T1], 0, 2)
        meta = {"build_seconds": prog.build_seconds}
        ftr = make_trajectory(free, "free", schedule, None, meta)
        if targets is None or T2 == 0:
            return PhaseResult(ftr)
        nud = np.empty((S, P, T2 + 1, N))
        nud[:, :, 0] = free[:, :, -1]
        nud[:, :, 1:] = np.moveaxis(rec[T1:T1 + T2], 0, 2)
        traces = {}
        for key, var in (("pre_dpost", "acc_dpost"), ("pre_post", "acc_coact")):
            acc = np.zeros((S, N, N))
            np.add.at(acc, (prog.syn_net, prog.syn_i, prog.syn_j), res[var])
            traces[key] = acc
        traces["samples"] = T2
        return PhaseResult(ftr, make_trajectory(nud, "nudged", schedule, traces, meta))

    # -- a whole training ---------------------------------------------------------------
    def plan_training(self, batch: NetworkBatch, inputs, targets, schedule, config, initial) -> bool:
        """Run a whole training as one program; later :meth:`run` calls replay it epoch by epoch.

        ``initial (epochs + 1, S, P, N)``: the initial states the training loop will draw, in
        order (the last for its final evaluation). Returns False (and plans nothing) for settings
        the program does not implement: rules other than DEEP's STDP rule, stochastic pruning.
        """
        self._plan = None
        if (config.prune not in (None, "magnitude") or batch.family not in ("deep", "deep-leaky")
                or schedule.nudged_steps < 1 or config.epochs < 1):
            return False
        E1, S, P, N = initial.shape
        prog = self._program(self._train, batch, P, schedule, epochs=config.epochs,
                             sign=bool(config.sign), prune=config.prune, coact=config.beta0 != 0.0)
        vals = program_values(batch, P, schedule.beta, targets, prog.deep_like)
        vals.update(rule_values(batch, prog.conn, config))
        t0 = time.perf_counter()
        res = prog.run(vals, S0=initial, max_seconds=self.max_seconds)
        K = config.epochs + 2  # ticks at t = 0 .. (epochs + 1) epochs
        g = {k: res[f"g_{k}"].reshape(K, S, P, N)[1:] for k in ("s_free", "ds_free", "s", "dstep")}
        W, alive, sums = weight_records(res, K, S, N, prog.conn)
        self._plan = {"batch_roles": batch.roles, "topology": batch.topology_mask.copy(),
                      "schedule": schedule, "targets": None if targets is None else np.array(targets),
                      "initial": initial, "W": W, "alive": alive, "ends": g, "sums": sums,
                      "epoch": 0, "program_seconds": time.perf_counter() - t0,
                      "build_seconds": prog.build_seconds}
        return True

    def _replay(self, batch, initial, schedule, targets, make_trajectory):
        plan = self._plan
        if plan is None:
            return None
        if not plan_matches(plan, batch, initial, schedule, targets):
            self._plan = None  # departed from the plan: simulate from here on
            return None
        k = plan["epoch"]
        plan["epoch"] = k + 1
        ends = plan["ends"]
        dt = schedule.dt
        meta = {"recorded": "initial and final states only (compiled whole-training run)",
                "build_seconds": plan["build_seconds"], "program_seconds": plan["program_seconds"]}
        free = np.stack([initial, ends["s_free"][k]], axis=2)
        ftr = make_trajectory(free, "free", schedule, None, meta,
                              times=np.array([0.0, dt * schedule.free_steps]),
                              speed_step=ends["ds_free"][k])
        if targets is None:
            return PhaseResult(ftr)
        nud = np.stack([ends["s_free"][k], ends["s"][k]], axis=2)
        traces = {"pre_dpost": plan["sums"]["pre_dpost"][k], "pre_post": plan["sums"]["pre_post"][k],
                  "samples": schedule.nudged_steps}
        ntr = make_trajectory(nud, "nudged", schedule, traces, meta,
                              times=np.array([0.0, dt * schedule.nudged_steps]),
                              speed_step=ends["dstep"][k])
        return PhaseResult(ftr, ntr)
