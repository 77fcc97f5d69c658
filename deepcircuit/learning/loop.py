"""The training loop's state and the steps :func:`~deepcircuit.learning.training.train` runs on it.

:class:`TrainingRun` holds what a run keeps fixed (data, substrate, rule, schedules, generators)
and what its epochs change, per seed (weights, live masks, histories, which seeds still learn).
Each step of an epoch is one function here, built on the array steps of :mod:`.steps`:

- :func:`train_minibatch` - phases, divergence checks, the rule and pruning of one minibatch;
- :func:`evaluate_held_out` - the test and validation splits (with early stopping);
- :func:`record_epoch` and :func:`show_progress` - the history and the progress bar;
- :func:`finish` - the final networks scored on every split: the :class:`TrainingResult`.

:func:`plan_whole_training` first hands the whole run to a substrate that can compile it ahead.
Like :mod:`.steps`, nothing here knows which substrate runs the phases.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from ..errors import DivergenceError, DivergenceWarning, NotSettledWarning
from ..model.families import Family
from ..model.network import Network, NetworkBatch
from ..model.roles import Roles
from ..data.split import Dataset
from ..substrates import Schedule, Substrate
from ..data.tasks import Task
from ..substrates.trajectory import PhaseResult
from .config import TrainingConfig
from .results import History, TrainingResult
from .steps import (EpochCallback, EpochTally, RuleStep, SplitScore, draw_initial, evaluate_split,
                    noise_shrinkage, prune_step, rule_step, run_phases, wants_trajectories)


@dataclass(eq=False)
class TrainingRun:
    """One training of a batch of networks (one per seed): its fixed parts and its state.

    The fields given are fixed for the run; the others are the state the epochs change, per seed:
    weights ``W (S, N, N)``, bias ``b (S, N)``, live ``mask (S, N, N)``, the networks built from
    them (``batch``), the histories, and which seeds still learn (``active``: not diverged, not
    stopped early, not stopped solved).
    """

    dataset: Dataset
    model: str
    seeds: list[int]
    initial_networks: list[Network]
    config: TrainingConfig
    sub: Substrate
    rule: str
    #: Learning rate: a number, or one factor per source row ``(N, 1)`` (eta_input, eta_feedback).
    eta: Any
    #: ``(W_frozen (N, N), b_frozen (N,))``: connections and bias entries that keep their weights.
    frozen: tuple[np.ndarray, np.ndarray] | None
    #: Evaluate the held-out splits every this many epochs (0 = only at the end).
    eval_every: int
    #: ``"report"`` or ``"raise"`` (see :func:`~deepcircuit.learning.training.train`).
    on_divergence: str
    #: Each seed's generator of initial states and pruning draws.
    rngs: list[np.random.Generator]
    #: Each seed's generator of the test/validation evaluations' initial states.
    eval_rngs: list[np.random.Generator]
    #: Minibatch order: one generator for every seed (networks of a batch share presentations).
    order_rng: np.random.Generator
    #: Split name (``train``, ``test``, ``validation``) -> the presentations evaluated before the
    #: last epoch: ``eval_samples`` of them, the same every epoch, or the whole split.
    held_out: dict[str, Task | None]
    batch: NetworkBatch
    family: Family = field(init=False)
    roles: Roles = field(init=False)
    schedule: Schedule = field(init=False)
    eval_schedule: Schedule = field(init=False)
    settings: dict = field(init=False)
    W: np.ndarray = field(init=False)
    b: np.ndarray = field(init=False)
    mask: np.ndarray = field(init=False)
    topology_masks: np.ndarray = field(init=False)
    histories: list[History] = field(init=False)
    diverged: list[str | None] = field(init=False)
    active: np.ndarray = field(init=False)
    stopper: "_EarlyStopping" = field(init=False)
    solved_run: np.ndarray = field(init=False)  # consecutive epochs at 0 train error (stop_when_solved)
    stopped: np.ndarray = field(init=False)     # seeds that stop_when_solved stopped
    last_test: SplitScore | None = field(init=False)  # the last epoch's whole-split test score

    def __post_init__(self) -> None:
        S, cfg = len(self.seeds), self.config
        self.family, self.roles = self.batch.family_, self.batch.roles
        self.schedule, self.eval_schedule = cfg.schedule, cfg.eval_schedule
        self.settings = {"beta": cfg.beta, "beta0": cfg.beta0, "beta1": cfg.beta1,
                         "nudged_steps": cfg.nudged_steps}
        self.W, self.b, self.mask = self.batch.weights, self.batch.bias, self.batch.mask
        self.topology_masks = self.batch.topology_mask
        self.histories = [History() for _ in self.seeds]
        self.diverged = [None] * S
        self.active = np.ones(S, dtype=bool)
        self.stopper = _EarlyStopping(S, cfg.early_stopping)
        self.solved_run = np.zeros(S, dtype=int)
        self.stopped = np.zeros(S, dtype=bool)
        self.last_test = None

    @property
    def task(self) -> Task:
        """The train split."""
        return self.dataset.train

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def all_stopped(self) -> bool:
        """Every seed stopped by early stopping or stop_when_solved: the epochs can end."""
        return (self.stopper.enabled or self.config.stop_when_solved is not None) and not self.active.any()

    def note_train_error(self, error: np.ndarray) -> None:
        """stop_when_solved: count epochs at 0 train error; stop the seeds that reached the count."""
        self.solved_run[:] = np.where(error == 0, self.solved_run + 1, 0)
        self.stopped[:] |= self.active & (self.solved_run >= self.config.stop_when_solved)
        self.active[:] &= ~self.stopped

    def fail(self, k: int, msg: str, phase: str, epoch: int, magnitude: float) -> None:
        """Seed ``k`` diverged: raise :class:`DivergenceError`, or freeze it, record why and warn."""
        if self.on_divergence == "raise":
            raise DivergenceError(f"seed {self.seeds[k]}: {msg}", phase=phase, epoch=epoch, magnitude=magnitude)
        self.diverged[k] = msg
        self.active[k] = False
        # stacklevel 4: fail <- train_minibatch <- train <- the caller of train.
        warnings.warn(f"seed {self.seeds[k]}: {msg}; this network is frozen and counted as unsolved.",
                      DivergenceWarning, stacklevel=4)

    def apply(self, step: RuleStep) -> None:
        """The update of the seeds still learning, then pruning (if on); rebuilds the networks."""
        cfg = self.config
        upd = self.active[:, None, None]
        W = np.where(upd, step.W, self.W)
        b = np.where(self.active[:, None], step.b, self.b)
        mask = self.mask
        if cfg.prune is not None:
            keep = prune_step(cfg.prune, W, mask, tol=cfg.prune_tol, temperature=cfg.prune_temperature,
                              rngs=self.rngs, symmetric=self.family.symmetric, roles=self.roles,
                              frozen=self.frozen[0] if self.frozen is not None else None)
            mask = np.where(upd, keep, mask)
            W = np.where(mask, W, 0.0)
        self.W, self.b, self.mask = W, b, mask
        self.batch = NetworkBatch(tuple(
            n.pruned(mask[k]).with_weights(W[k], b[k] if self.family.has_bias_vector else None)
            for k, n in enumerate(self.batch.networks)))


def plan_whole_training(run: TrainingRun, callbacks: Sequence[EpochCallback]) -> None:
    """Optional substrate capability (brian2 cpp_standalone): the whole training as one compiled
    program, given the initial states the loop will draw; the loop is unchanged and receives each
    epoch's recording from ``sub.run`` (the substrate checks that it matches)."""
    plan = getattr(run.sub, "plan_training", None)
    cfg, task = run.config, run.task
    if (plan is not None and not wants_trajectories(callbacks) and cfg.batch_size is None
            and run.eval_schedule == run.schedule and run.frozen is None and cfg.rule in (None, "stdp")
            and np.ndim(run.eta) == 0 and cfg.stop_when_solved is None and not cfg.eta_noise):
        ahead = [copy.deepcopy(g) for g in run.rngs]
        plan(run.batch, task.inputs, task.targets, run.schedule, cfg,
             np.stack([draw_initial(ahead, task.inputs, run.roles, cfg.state_init_high)
                       for _ in range(cfg.epochs + 1)]))


def train_minibatch(run: TrainingRun, idx: np.ndarray, epoch: int, tally: EpochTally) -> PhaseResult:
    """Steps 2-4 on the presentations ``idx``: phases, divergence checks, rule, pruning.

    Records the minibatch in ``tally`` and returns its phases."""
    cfg, task = run.config, run.task
    part = task if len(idx) == task.n_presentations and cfg.batch_size is None else task.subset(idx)
    result = run_phases(run.sub, run.batch, part, run.rngs, run.schedule, cfg.state_init_high)
    if cfg.stop_when_solved is not None and part is task:
        # The whole train split, measured on these weights before their update: a seed
        # at 0 error for stop_when_solved epochs in a row keeps these weights.
        run.note_train_error(task.error(result.free.outputs))
    for ph in (result.free, result.nudged):
        for k in np.flatnonzero(ph.diverged & run.active):
            why = (ph.meta.get("diverged_why") or [""] * run.n_seeds)[k] or "non-finite states"
            run.fail(k, f"{ph.phase} phase diverged in epoch {epoch} ({why})", ph.phase, epoch, float("inf"))
    eta_now = run.eta
    if cfg.eta_noise:
        eta_now = np.asarray(run.eta, dtype=float) * noise_shrinkage(result.nudged, run.mask)[:, None, None]
    upd_step = rule_step(run.rule, result, run.settings, run.W, run.b, run.mask, eta=eta_now, l1=cfg.l1,
                         sign=cfg.sign, max_weight=cfg.max_weight, frozen=run.frozen,
                         topology=run.topology_masks)
    tally.add(part, result, np.where(run.stopped[:, None, None], 0.0, upd_step.step), run.schedule)
    for k in np.flatnonzero(upd_step.bad & run.active):
        run.fail(k, f"weights diverged in the update of epoch {epoch} (max |W| = "
                    f"{upd_step.largest[k]:.3g}, limit {cfg.max_weight:g})", "update", epoch,
                 float(upd_step.largest[k]))
    run.apply(upd_step)
    return result


def evaluate_held_out(run: TrainingRun, epoch: int) -> tuple[SplitScore | None, SplitScore | None]:
    """Step 5: ``(test, validation)`` scores after this epoch's updates, or None where not due.

    Due every ``eval_every`` epochs and in the last one (whole splits in the last, else the
    ``held_out`` samples); a validation score feeds early stopping."""
    cfg, dataset = run.config, run.dataset
    last = epoch + 1 == cfg.epochs
    if not (run.eval_every and ((epoch + 1) % run.eval_every == 0 or last)):
        return None, None
    test = evaluate_split(run.sub, run.batch, dataset.test if last else run.held_out["test"], run.eval_rngs,
                          run.eval_schedule, cfg.state_init_high)
    valid = None
    if dataset.validation is not None:
        valid = evaluate_split(run.sub, run.batch, dataset.validation if last else run.held_out["validation"],
                               run.eval_rngs, run.eval_schedule, cfg.state_init_high)
        run.stopper.update(epoch, valid.accuracy, run.active, run.W, run.b, run.mask)
    if last and cfg.eval_samples is not None:
        run.last_test = test  # the whole test split on the final weights: not evaluated twice
    return test, valid


def record_epoch(run: TrainingRun, tally: EpochTally, test: SplitScore | None, valid: SplitScore | None,
                 extra: list[dict], seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Step 6: append the epoch to each seed's :class:`History` (NaN for splits not evaluated).

    Returns the epoch's train-split ``(error, mse)`` per seed."""
    S = run.n_seeds
    nan = np.full(S, np.nan)
    tmask = run.topology_masks.reshape(S, -1).sum(axis=1)
    err, mse = tally.mean("wrong"), tally.mean("sq")
    free_set, nudged_set = tally.mean("free_settled"), tally.mean("nudged_settled")
    free_used, nudged_used = tally.mean("free_steps"), tally.mean("nudged_steps")
    norms = tally.update_norm
    for k, h in enumerate(run.histories):
        h.mse.append(float(mse[k]))
        h.error.append(float(err[k]))
        h.sparsity.append(float(1.0 - run.mask[k].sum() / max(tmask[k], 1)))
        h.update_norm.append(float(norms[k]))
        h.free_settled.append(float(free_set[k]))
        h.nudged_settled.append(float(nudged_set[k]))
        h.test_error.append(float((test.error if test else nan)[k]))
        h.test_mse.append(float((test.mse if test else nan)[k]))
        h.validation_error.append(float((valid.error if valid else nan)[k]))
        h.free_steps_used.append(float(free_used[k]))
        h.nudged_steps_used.append(float(nudged_used[k]))
        h.seconds.append(seconds)
        for key, val in extra[k].items():
            h.extra.setdefault(key, []).append(val)
    return err, mse


def progress_bar(total: int, enabled: bool, desc: str):
    """A tqdm bar of ``total`` epochs, or None when not ``enabled``."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # disable=None: a bar on a terminal, nothing in logs and pipes (CI, redirected output).
    return tqdm(total=total, desc=desc, unit="epoch", leave=False, disable=None)


def show_progress(bar, run: TrainingRun, err: np.ndarray, mse: np.ndarray, test: SplitScore | None) -> None:
    """One epoch on the progress bar (if any): train and test accuracy, seeds solved, MSE."""
    if bar is None:
        return
    bar.update(1)
    post = {"train": f"{100 * float(np.mean(1 - err)):.1f}%"}
    if test is not None:
        post["test"] = f"{100 * float(np.mean(test.accuracy)):.1f}%"
    if run.dataset.test_is_train:
        post["solved"] = f"{int(np.sum((err == 0) & run.active))}/{run.n_seeds}"
    post["mse"] = f"{float(np.mean(mse)):.3g}"
    bar.set_postfix(post)


def finish(run: TrainingRun, t_start: float) -> TrainingResult:
    """The final networks (each seed's best-validation weights under early stopping) scored on
    every split, as the :class:`TrainingResult`; ``t_start`` is ``time.perf_counter()`` at the start."""
    cfg, dataset, task, stopper = run.config, run.dataset, run.task, run.stopper
    if stopper.enabled:
        W, b, mask = stopper.restore(run.W, run.b, run.mask)
        # The saved live mask may have more connections than the last one (pruning went on).
        run.batch = NetworkBatch(tuple(replace(n, weights=W[k], mask=mask[k],
                                               bias=b[k] if run.family.has_bias_vector else None)
                                       for k, n in enumerate(run.batch.networks)))
    # The train-split figure of a data set: on eval_samples presentations when set (a whole-split
    # read-out of the training presentations would cost more than the epoch on a circuit).
    final = evaluate_split(run.sub, run.batch, task if dataset.test_is_train else run.held_out["train"], run.rngs,
                           run.eval_schedule, cfg.state_init_high)
    if not (final.settled == 1.0).all():
        # stacklevel 3: finish <- train <- the caller of train.
        warnings.warn(f"Final evaluation on the train split: {100 * (1 - float(final.settled.mean())):.1f} % "
                      f"of (network, presentation) pairs not settled after {run.schedule.free_duration:g} tau "
                      f"(tolerance {run.schedule.settle_tol:g})", NotSettledWarning, stacklevel=3)
    if dataset.test_is_train:
        test = final
    elif run.last_test is not None and not stopper.enabled:
        test = run.last_test
    else:
        test = evaluate_split(run.sub, run.batch, dataset.test, run.eval_rngs, run.eval_schedule, cfg.state_init_high)
    valid = (evaluate_split(run.sub, run.batch, dataset.validation, run.eval_rngs, run.eval_schedule,
                            cfg.state_init_high)
             if dataset.validation is not None else None)
    return TrainingResult(task=task, model=run.model, substrate=run.sub.name, config=cfg, seeds=run.seeds,
                          initial_networks=run.initial_networks, networks=list(run.batch.networks),
                          histories=run.histories, train_error=final.error, mse=final.mse,
                          diverged=run.diverged, seconds=time.perf_counter() - t_start, dataset=dataset,
                          test_error=test.error, test_mse=test.mse,
                          validation_error=valid.error if valid is not None else None,
                          best_epoch=stopper.best_epoch if stopper.enabled else None,
                          final_settled=final.settled_each)


class _EarlyStopping:
    """Per-seed early stopping on validation accuracy, keeping each seed's best weights."""

    def __init__(self, S: int, patience: int | None) -> None:
        self.enabled = patience is not None
        self.patience = patience
        self.best = np.full(S, -np.inf)
        self.waited = np.zeros(S, dtype=int)
        self.best_epoch: list = [None] * S
        self.saved: list = [None] * S

    def update(self, epoch: int, accuracy: np.ndarray, active: np.ndarray, W, b, mask) -> None:
        if not self.enabled:
            return
        for k in np.flatnonzero(active):
            if accuracy[k] > self.best[k]:
                self.best[k], self.waited[k], self.best_epoch[k] = accuracy[k], 0, epoch
                self.saved[k] = (W[k].copy(), b[k].copy(), mask[k].copy())
            else:
                self.waited[k] += 1
                if self.waited[k] > self.patience:
                    active[k] = False  # stopped: its weights stay frozen from here on

    def restore(self, W, b, mask):
        W, b, mask = W.copy(), b.copy(), mask.copy()
        for k, saved in enumerate(self.saved):
            if saved is not None:
                W[k], b[k], mask[k] = saved
        return W, b, mask
