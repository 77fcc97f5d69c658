"""The named steps of one training epoch on arrays, in the order :func:`deepcircuit.learning.training.train`
calls them (through :mod:`.loop`, which holds the run's state).

1. :func:`epoch_batches` - split the training presentations into minibatches (shuffled per
   epoch with a seeded generator shared by all seeds, so a seed's result does not depend on
   which seeds share its batch; a full batch is never shuffled, which keeps the reference's
   presentation order and random draws).
2. :func:`run_phases` - the free and nudged phases of one minibatch on the substrate (every
   presentation of the minibatch settles together).
3. :func:`rule_step` - the local rule, averaged over the minibatch, scaled by eta; frozen
   connections keep their weights.
4. :func:`prune_step` - optional pruning of weak, unfrozen connections.
5. :func:`evaluate_split` - free-phase accuracy and MSE of a whole split, in memory-bounded chunks.
6. :func:`run_callbacks` - user callbacks once per epoch.
:class:`EpochTally` accumulates what the history records over an epoch's minibatches.

Nothing here knows which substrate runs the phases: it reads trajectories only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import InvalidInputError
from .rule import apply_update, weight_update
from ..model.network import NetworkBatch
from .pruning import magnitude_prune, stochastic_sparsify, symmetric_keep
from ..model.roles import Roles
from ..substrates import Schedule, Substrate, initial_states
from ..data.tasks import Task
from ..substrates.trajectory import PhaseResult, Trajectory

#: Connection groups that ``freeze`` accepts: ``source-destination`` by neuron role. "input"
#: includes the bias neuron (and, for the EP families, the learned bias vector of the
#: destination neurons, which is the same connection in another form).
FREEZE_GROUPS = ("input-hidden", "input-output", "hidden-hidden", "hidden-output", "output-hidden",
                 "output-output")
#: Largest trajectory an evaluation chunk may hold (bytes); bounds memory on large splits.
EVAL_BYTES = 64 * 2**20


def frozen_mask(roles: Roles, groups: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(W_frozen (N, N), b_frozen (N,))``: the connections (and bias entries) that never change."""
    N = roles.n_neurons
    idx = {"input": np.arange(0, roles.n_inputs),
           "hidden": np.arange(roles.n_inputs, roles.n_inputs + roles.n_hidden),
           "output": np.arange(N - roles.n_outputs, N)}
    W = np.zeros((N, N), dtype=bool)
    b = np.zeros(N, dtype=bool)
    for g in groups:
        if g not in FREEZE_GROUPS:
            raise InvalidInputError(f"Unknown connection group {g!r} to freeze; use {', '.join(FREEZE_GROUPS)}.")
        src, dst = g.split("-")
        W[np.ix_(idx[src], idx[dst])] = True
        if src == "input":
            b[idx[dst]] = True
    return W, b


def epoch_batches(n: int, batch_size: int | None, rng: np.random.Generator) -> list[np.ndarray]:
    """Index arrays of the minibatches of one epoch (a full batch keeps the given order).

    The shuffled split is cut into ``ceil(n / batch_size)`` batches of as equal a size as possible
    (each at most ``batch_size``): the update of a batch is a mean taken at the full learning rate,
    so a short remainder (1 presentation of 129 with batch 64) would take a full step on the
    noise of a single sample.
    """
    if batch_size is None or batch_size >= n:
        return [np.arange(n)]
    order = rng.permutation(n)
    return list(np.array_split(order, -(-n // batch_size)))


def draw_initial(rngs: Sequence[np.random.Generator], inputs: np.ndarray, roles: Roles, high: float) -> np.ndarray:
    """Initial states ``(S, P, N)``, each network's drawn from its own generator."""
    return np.concatenate([initial_states(g, 1, inputs, roles, high) for g in rngs])


def run_phases(sub: Substrate, batch: NetworkBatch, task: Task, rngs, schedule: Schedule,
               state_init_high: float) -> PhaseResult:
    """The free phase, then the nudged phase, of one minibatch (all its presentations at once)."""
    s0 = draw_initial(rngs, task.inputs, batch.roles, state_init_high)
    return sub.run(batch, task.inputs, s0, schedule, targets=task.targets)


def steps_used(traj: Trajectory, budget: int) -> np.ndarray:
    """Mean steps per presentation ``(S,)`` a phase took (the budget when the substrate ran it all)."""
    done = traj.meta.get("steps_done")
    if done is None:
        return np.full(traj.n_networks, float(budget))
    return np.asarray(done, dtype=float).reshape(traj.n_networks, -1).mean(axis=1)


def noise_shrinkage(nudged: Trajectory, mask: np.ndarray) -> np.ndarray:
    """Per network ``(S,)``: how much of the measured update is signal, ``max(0, 1 - (v/K) / |m|^2)``.

    From the substrate's repeated measurements of the rule's sums
    (``nudged.meta["synaptic_traces"]["pre_dpost_each"]``, ``(K, S, N, N)``, K >= 2 independent
    repetitions): ``m`` their mean over the live connections ``mask``, ``v`` the summed sample
    variance across repetitions, so ``v / K`` estimates the noise power in ``|m|^2`` and
    ``|m|^2 - v/K`` the signal's. The factor is the signal's share (James-Stein shrinkage): near 1
    when the update is far above its noise, 0 when it is not above it.
    """
    traces = nudged.meta.get("synaptic_traces") or {}
    each = traces.get("pre_dpost_each")
    if each is None or np.shape(each)[0] < 2:
        raise InvalidInputError(
            "eta_noise needs a substrate that measures the rule's sums in repeated presentations "
            "(synaptic_traces['pre_dpost_each'] with 2 or more repetitions), e.g. brian2-spiking "
            "with repeats >= 2.")
    each = np.asarray(each, dtype=float)
    K = each.shape[0]
    m = each.mean(axis=0)
    v = each.var(axis=0, ddof=1)
    live = np.asarray(mask, dtype=bool)
    m2 = np.where(live, m * m, 0.0).reshape(len(m), -1).sum(axis=1)
    noise = np.where(live, v, 0.0).reshape(len(m), -1).sum(axis=1) / K
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(m2 > 0, 1.0 - noise / m2, 0.0)
    return np.clip(share, 0.0, 1.0)


@dataclass
class RuleStep:
    """The weights after one update, and what the divergence check and history need."""

    W: np.ndarray
    b: np.ndarray
    step: np.ndarray          # eta * dW (or eta * sign(dW)) inside the live mask, (S, N, N)
    largest: np.ndarray       # max |W| per network after the update, (S,)
    bad: np.ndarray           # networks whose weights are not finite or above the limit, (S,)


def rule_step(rule: str, result: PhaseResult, settings: Mapping[str, float], W, b, mask, *,
              eta: float, l1: float, sign: bool, max_weight: float,
              frozen: tuple[np.ndarray, np.ndarray] | None = None,
              topology: np.ndarray | None = None) -> RuleStep:
    """The local rule (mean over the minibatch's presentations) applied once; frozen entries kept.

    ``topology`` (the networks' topology masks) goes to the rule (see :func:`weight_update`)."""
    dW, db = weight_update(rule, result, settings, topology=topology)
    step = np.where(mask, eta * (np.sign(dW) if sign else dW), 0.0)
    W_new, b_new = apply_update(W, b, dW, db, mask, eta=eta, l1=l1, sign=sign)
    if frozen is not None:
        fW, fb = frozen
        if fW.any():
            W_new = np.where(fW, W, W_new)
            step = np.where(fW, 0.0, step)
        if fb.any():
            b_new = np.where(fb, b, b_new)
    S = W.shape[0]
    largest = np.abs(W_new).reshape(S, -1).max(axis=1)
    bad = ~np.isfinite(largest) | (largest > max_weight) | ~np.isfinite(b_new).all(axis=1)
    return RuleStep(W_new, b_new, step, largest, bad)


def prune_step(method: str, W, mask, *, tol: float, temperature: float, rngs, symmetric: bool,
               roles: Roles, frozen: np.ndarray | None = None) -> np.ndarray:
    """The new live mask after pruning (``stochastic`` or ``magnitude``); frozen connections stay."""
    if method == "stochastic":
        keep = stochastic_sparsify(W, mask, tol=tol, temperature=temperature, rng=rngs)
    else:
        keep = magnitude_prune(W, mask, tol=tol)
    if symmetric:
        keep = symmetric_keep(keep, roles.free)
    if frozen is not None and frozen.any():
        keep = keep | (mask & frozen)
    return keep


@dataclass
class SplitScore:
    """Free-phase evaluation of a split: per network ``(S,)`` arrays."""

    error: np.ndarray
    mse: np.ndarray
    settled: np.ndarray                 # fraction of presentations settled, (S,)
    outputs: np.ndarray | None = None   # (S, P, n_outputs) when kept
    settled_each: np.ndarray | None = None  # (S, P) bool: which presentations settled

    @property
    def accuracy(self) -> np.ndarray:
        return 1.0 - self.error


def evaluate_split(sub: Substrate, batch: NetworkBatch, task: Task, rngs, schedule: Schedule,
                   state_init_high: float, *, keep_outputs: bool = False) -> SplitScore:
    """Accuracy and MSE of ``batch`` on every presentation of ``task`` (free phase only).

    Presentations run in chunks whose trajectories fit :data:`EVAL_BYTES`; one chunk (small
    tasks) draws the initial states exactly as one call over the whole task would.
    """
    S, N, P = len(batch), batch.roles.n_neurons, task.n_presentations
    per = S * (schedule.free_steps + 1) * N * 8
    chunk = max(1, min(P, EVAL_BYTES // max(per, 1)))
    outs, settled = [], []
    for a in range(0, P, chunk):
        part = task.subset(slice(a, a + chunk))
        s0 = draw_initial(rngs, part.inputs, batch.roles, state_init_high)
        free = sub.run(batch, part.inputs, s0, schedule).free
        outs.append(free.outputs)
        settled.append(free.settled)
    out = np.concatenate(outs, axis=1)
    each = np.concatenate(settled, axis=1).astype(bool)
    return SplitScore(np.asarray(task.error(out), dtype=float), np.asarray(task.mse(out), dtype=float),
                      each.mean(axis=1), out if keep_outputs else None, each)


@dataclass
class EpochTally:
    """Sums over an epoch's minibatches, weighted by presentations, for the history."""

    S: int
    presentations: int = 0
    wrong: np.ndarray | None = None
    sq: np.ndarray | None = None
    free_settled: np.ndarray | None = None
    nudged_settled: np.ndarray | None = None
    free_steps: np.ndarray | None = None
    nudged_steps: np.ndarray | None = None
    step_sum: np.ndarray | None = None
    n_batches: int = 0
    first: dict = field(default_factory=dict)

    def add(self, task: Task, result: PhaseResult, step: np.ndarray, schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
        """Record one minibatch; returns its ``(error, mse)`` per network."""
        P = task.n_presentations
        err, mse = task.error(result.free.outputs), task.mse(result.free.outputs)
        parts = {"wrong": err * P, "sq": mse * P, "free_settled": result.free.settled.mean(axis=1) * P,
                 "nudged_settled": (result.nudged.settled.mean(axis=1) * P if result.nudged is not None
                                    else np.full(self.S, np.nan)),
                 "free_steps": steps_used(result.free, schedule.free_steps) * P,
                 "nudged_steps": (steps_used(result.nudged, schedule.nudged_steps) * P
                                  if result.nudged is not None else np.zeros(self.S)),
                 "step_sum": step}
        for k, v in parts.items():
            cur = getattr(self, k)
            setattr(self, k, v if cur is None else cur + v)
        if not self.n_batches:
            # One full batch: the history holds these values exactly as computed (no re-weighting).
            self.first = {"wrong": err, "sq": mse, "free_settled": result.free.settled.mean(axis=1),
                          "nudged_settled": parts["nudged_settled"] / P}
        self.n_batches += 1
        self.presentations += P
        return err, mse

    def mean(self, name: str) -> np.ndarray:
        """Presentation-weighted mean over the epoch's minibatches of ``wrong``, ``sq``, ..."""
        if self.n_batches == 1 and name in self.first:
            return self.first[name]
        return getattr(self, name) / max(self.presentations, 1)

    @property
    def update_norm(self) -> np.ndarray:
        """Frobenius norm of the epoch's summed weight steps, per network."""
        return np.linalg.norm(self.step_sum.reshape(self.S, -1), axis=1)


EpochCallback = Callable[[int, NetworkBatch, PhaseResult], "Mapping[str, Any] | None"]


def epoch_observer(callback: EpochCallback) -> EpochCallback:
    """Mark ``callback`` as reading only the epoch number (a progress or Ctrl-C stage note).

    Such a callback does not make the training keep whole trajectories, nor keep a substrate
    from running the whole training as one compiled program (it then receives each epoch's
    replayed recording): see :func:`wants_trajectories`.
    """
    callback.needs_trajectories = False
    return callback


def wants_trajectories(callbacks: Sequence[EpochCallback]) -> bool:
    """Whether any of ``callbacks`` may read the phases' trajectories (not marked :func:`epoch_observer`)."""
    return any(getattr(cb, "needs_trajectories", True) for cb in callbacks)


def run_callbacks(callbacks: Sequence[EpochCallback], epoch: int, batch: NetworkBatch,
                  result: PhaseResult) -> list[dict]:
    """Each callback's returned values, split per network: one dict per network."""
    S = len(batch)
    extra: list[dict] = [dict() for _ in range(S)]
    for cb in callbacks:
        out = cb(epoch, batch, result)
        if out:
            for key, val in out.items():
                for k in range(S):
                    extra[k][key] = val[k] if isinstance(val, (list, tuple, np.ndarray)) and len(val) == S else val
    return extra
