"""Training: free phase, nudged phase, local update, pruning, per-epoch history.

The loop talks to a substrate only through :meth:`Substrate.run` and reads only the
trajectories it returns, so every substrate trains with the same code. Seeds are trained as one
batch; each seed has its own random generator, so a seed's result does not depend on which
other seeds share its batch.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from .._validation import check_choice, check_int
from ..errors import DivergenceError, DivergenceWarning, InvalidInputError, NotSettledWarning
from ..model.families import get_family, select_rule
from ..model.network import Network, NetworkBatch
from ..model.topology import has_sink, sink_index
from ..data.defaults import DataShape, dataset_defaults, default_model
from ..data.split import Dataset, load_dataset
from ..substrates import Substrate, get_substrate
from ..data.tasks import Task
from .config import TrainingConfig
from .evaluation import check_task_fits
from .initial_networks import make_networks, seed_rng
from .results import History, TrainingResult
from .steps import (EpochCallback, EpochTally, draw_initial, epoch_batches, evaluate_split, frozen_mask,
                    noise_shrinkage, prune_step, rule_step, run_callbacks, run_phases,
                    wants_trajectories)


def _training_substrate(substrate: "str | Substrate", *, keep_trajectories: bool) -> Substrate:
    """The substrate a training run uses. Given by name, a substrate that can keep only what the
    rule needs (a ``record`` option: phase ends plus the rule's sums, see the ODE substrate) is
    asked to, unless callbacks want whole trajectories: a digits epoch then needs 191 MB instead
    of 520 MB and runs 2.6x faster (``benchmarks/bench_scaling.py --digits-full``). The training
    code asks for a capability, never for a substrate by name."""
    from ..substrates import substrate_options

    if isinstance(substrate, str) and not keep_trajectories and "record" in substrate_options(substrate):
        return get_substrate(substrate, record="final")
    return get_substrate(substrate)


def train(task: "Task | Dataset | str | None" = None, *, model: str | None = None, topology: Any = None,
          hidden: "int | str | Sequence[int] | None" = None, seeds: "int | Sequence[int] | None" = None,
          config: TrainingConfig | None = None, substrate: "str | Substrate" = "ode",
          params: Mapping[str, float] | None = None, networks: Sequence[Network] | None = None,
          callbacks: Sequence[EpochCallback] = (), progress: bool = False,
          on_divergence: str = "report", init=None) -> TrainingResult:
    """Train one network per seed on ``task`` and return a :class:`TrainingResult`.

    Parameters
    ----------
    task : str, Task or Dataset
        A logic task (``xor``, ``and``, ``or``, ``not``, ``identity`` or a ``-onehot`` version), a
        built-in data set (``digits``, ``iris``, ``moons``, ``parity-N``) with its default split,
        or a :class:`~deepcircuit.data.split.Dataset` from :func:`load_dataset` (user files,
        other splits). The task is resolved once here; every step below uses the object.
    model : str, optional
        Model family (``deep``, ``deep-leaky``, ``ep-asym``, ``ep-sym``); default: the data set's
        (``deep``; ``deep-leaky`` with gamma = 1 for digits, see :mod:`deepcircuit.data.defaults`).
    topology : str, edge list or networkx.DiGraph
        ``complete``, ``layered`` or a user graph; default: the data set's (see
        :mod:`deepcircuit.data.defaults`; ``complete`` for logic tasks).
    hidden : int, str or sequence of int
        Hidden layer sizes; default: the data set's (5 for logic tasks).
    seeds : int or sequence of int
        A count (seeds ``0..n-1``) or the seeds themselves; each seeds its own generator.
        Default: seed 0 (with ``init``: the model files' own seeds).
    config : TrainingConfig
        Settings; default ``TrainingConfig.for_task(task, model=model)`` (the ``default`` preset
        with the data set's defaults).
    substrate : str or Substrate
        Where the phases run (``ode`` by default).
    networks : sequence of Network, optional
        Start from these networks instead of fresh ones (one per seed).
    callbacks : sequence of callables
        ``callback(epoch, networks, phase_result)`` after each epoch (with the epoch's last
        minibatch); a returned dict is stored in ``History.extra`` under its keys, one entry per epoch.
    progress : bool
        Show a progress bar on stderr (with the current test accuracy).
    on_divergence : {"report", "raise"}
        ``report``: freeze a diverged network, warn with :class:`DivergenceWarning` and record it
        in ``TrainingResult.diverged``. ``raise``: raise :class:`DivergenceError` at once.
    init : path, ModelFile or a sequence of them, optional
        Fine-tune: continue the networks of these model files (one network per file, trained as
        one batch): their family, topology, masks and weights, on the data set split and scaler
        they were trained with (``task`` None, or the same data set). ``config`` defaults to the
        first file's saved settings; ``seeds`` to the files' seeds. A task, family or shape that
        does not fit is refused (:func:`deepcircuit.learning.fine_tune.start_from`).
    """
    t_start = time.perf_counter()
    if init is not None:
        from .fine_tune import start_from

        if networks is not None:
            raise InvalidInputError("Give either init (model files) or networks, not both.")
        start = start_from(init, task, model=model, topology=topology, hidden=hidden,
                           seeds=list(range(seeds)) if isinstance(seeds, (int, np.integer)) else seeds)
        task, model, networks, seeds = start.dataset, start.family, start.networks, list(start.seeds)
        topology = start.networks[0].topology
        config = config or start.training_config()
    if task is None:
        raise InvalidInputError("train needs a task (a logic task, a data set name or a Dataset) or init model files.")
    if seeds is None:
        seeds = (0,)
    dataset = load_dataset(task)
    task = dataset.train
    if model is None:
        model = default_model(dataset.name, source=dataset.source)
    get_family(model)
    defaults = dataset_defaults(dataset.name, model, source=dataset.source, shape=DataShape.of(dataset))
    if params is None and defaults.params:
        params = dict(defaults.params)
    topology = defaults.topology if topology is None else topology
    hidden = defaults.hidden if hidden is None else hidden
    config = config or TrainingConfig.for_task(dataset, model=model)
    if config.epochs > 0 and config.nudged_steps < 1:
        raise InvalidInputError("Training needs a nudged phase: 'nudged_steps' must be >= 1; got 0.")
    check_choice("on_divergence", on_divergence, ("report", "raise"))
    if config.early_stopping is not None and dataset.validation is None:
        raise InvalidInputError("Early stopping needs a validation split; give a validation fraction "
                                "(--validation-fraction) or leave early stopping off.")
    if isinstance(seeds, (int, np.integer)):
        seeds = list(range(check_int("seeds", seeds, low=1)))
    seeds = [check_int("seed", s, low=0) for s in seeds]
    if not seeds:
        raise InvalidInputError("At least one seed is needed.")
    rngs = [seed_rng(s) for s in seeds]
    if networks is None:
        nets = make_networks(task, model=model, topology=topology, hidden=hidden, seeds=seeds,
                             config=config, params=params)
        # make_networks drew the weights from fresh generators of the same seeds; advance ours
        # past those draws so weights and states never share random numbers.
        for g, n in zip(rngs, nets):
            g.normal(size=(n.n_neurons, n.n_neurons))
    else:
        nets = list(networks)
        if len(nets) != len(seeds):
            raise InvalidInputError(f"Got {len(nets)} networks for {len(seeds)} seeds; give one per seed.")
    batch = NetworkBatch.of(nets)
    roles = batch.roles
    check_task_fits(task, roles)
    if config.learn_sink and not has_sink(batch[0].topology):
        raise InvalidInputError(
            f"learn_sink (--learn-sink) applies to a '+sink' topology; this network's topology is "
            f"{batch[0].topology!r}.")
    family = batch.family_
    rule = select_rule(family, config.rule)
    eta = config.eta
    if config.eta_input != 1.0 or config.eta_feedback != 1.0:
        if family.has_bias_vector:
            raise InvalidInputError("eta_input / eta_feedback apply to the deep families only (no bias vector).")
        # per-layer learning rates: one factor per source row
        row = np.ones(batch.roles.n_neurons)
        row[: batch.roles.n_inputs] = config.eta_input
        row[batch.roles.n_neurons - batch.roles.n_outputs:] = config.eta_feedback
        eta = config.eta * row[:, None]
    sub = _training_substrate(substrate, keep_trajectories=wants_trajectories(callbacks))
    schedule = config.schedule
    eval_schedule = config.eval_schedule
    settings = {"beta": config.beta, "beta0": config.beta0, "beta1": config.beta1,
                "nudged_steps": config.nudged_steps}
    frozen = frozen_mask(roles, config.freeze) if config.freeze else None
    if has_sink(batch[0].topology) and not config.learn_sink:
        # The connections into the sink are fixed synapses unless asked otherwise.
        n = roles.n_neurons
        fW, fb = frozen if frozen is not None else (np.zeros((n, n), bool), np.zeros(n, bool))
        fW = fW.copy()
        fW[:, sink_index(roles)] = True
        frozen = (fW, fb)
    if frozen is not None and family.symmetric:
        # A symmetric family's twin connections move together: freezing one freezes both.
        frozen = (frozen[0] | frozen[0].T, frozen[1])
    # Minibatch order: one generator for every seed (networks of a batch share presentations).
    order_rng = np.random.default_rng(config.shuffle_seed)
    # Test/validation evaluations draw initial states from their own generators, so that
    # evaluating never changes what training draws (logic tasks keep their exact figures).
    eval_rngs = [np.random.default_rng([s, _EVAL_STREAM]) for s in seeds]

    eval_every = config.eval_every
    if eval_every is None:
        eval_every = 0 if dataset.test_is_train and dataset.validation is None else 1

    S = len(seeds)
    W, b, mask = batch.weights, batch.bias, batch.mask
    topology_masks = batch.topology_mask
    histories = [History() for _ in seeds]
    diverged: list[str | None] = [None] * S
    active = np.ones(S, dtype=bool)
    stopper = _EarlyStopping(S, config.early_stopping)
    solved_run = np.zeros(S, dtype=int)  # consecutive epochs at 0 train error (stop_when_solved)
    stopped = np.zeros(S, dtype=bool)     # seeds that stop_when_solved stopped

    def note_train_error(error: np.ndarray) -> None:
        """stop_when_solved: count epochs at 0 train error; stop the seeds that reached the count."""
        solved_run[:] = np.where(error == 0, solved_run + 1, 0)
        stopped[:] |= active & (solved_run >= config.stop_when_solved)
        active[:] &= ~stopped

    def fail(k: int, msg: str, phase: str, epoch: int, magnitude: float) -> None:
        if on_divergence == "raise":
            raise DivergenceError(f"seed {seeds[k]}: {msg}", phase=phase, epoch=epoch, magnitude=magnitude)
        diverged[k] = msg
        active[k] = False
        warnings.warn(f"seed {seeds[k]}: {msg}; this network is frozen and counted as unsolved.",
                      DivergenceWarning, stacklevel=3)

    # Optional substrate capability (brian2 cpp_standalone): the whole training as one compiled
    # program, given the initial states this loop will draw; the loop below is unchanged and
    # receives each epoch's recording from sub.run (the substrate checks that it matches).
    plan = getattr(sub, "plan_training", None)
    if (plan is not None and not wants_trajectories(callbacks) and config.batch_size is None and eval_schedule == schedule
            and frozen is None and config.rule in (None, "stdp") and np.ndim(eta) == 0
            and config.stop_when_solved is None and not config.eta_noise):
        ahead = [copy.deepcopy(g) for g in rngs]
        plan(batch, task.inputs, task.targets, schedule, config,
             np.stack([draw_initial(ahead, task.inputs, roles, config.state_init_high)
                       for _ in range(config.epochs + 1)]))

    def held_out(split: Task, last: bool) -> Task:
        """The presentations of a split evaluated now: ``eval_samples`` of them, or all at the end."""
        m = config.eval_samples
        if m is None or last or m >= split.n_presentations:
            return split
        pick = np.random.default_rng([config.shuffle_seed, _EVAL_STREAM]).choice(split.n_presentations, m, replace=False)
        return split.subset(np.sort(pick))

    last_test = None
    bar = _progress(config.epochs, progress, f"{task.name}/{model}/{sub.name}")
    try:
        for epoch in range(config.epochs):
            t_epoch = time.perf_counter()
            tally = EpochTally(S)
            # 1-4: minibatches, phases, rule, pruning.
            for idx in epoch_batches(task.n_presentations, config.batch_size, order_rng):
                part = task if len(idx) == task.n_presentations and config.batch_size is None else task.subset(idx)
                result = run_phases(sub, batch, part, rngs, schedule, config.state_init_high)
                if config.stop_when_solved is not None and part is task:
                    # The whole train split, measured on these weights before their update: a seed
                    # at 0 error for stop_when_solved epochs in a row keeps these weights.
                    note_train_error(task.error(result.free.outputs))
                for ph in (result.free, result.nudged):
                    for k in np.flatnonzero(ph.diverged & active):
                        why = (ph.meta.get("diverged_why") or [""] * len(seeds))[k] or "non-finite states"
                        fail(k, f"{ph.phase} phase diverged in epoch {epoch} ({why})", ph.phase, epoch, float("inf"))
                eta_now = eta
                if config.eta_noise:
                    eta_now = np.asarray(eta, dtype=float) * noise_shrinkage(result.nudged, mask)[:, None, None]
                upd_step = rule_step(rule, result, settings, W, b, mask, eta=eta_now, l1=config.l1,
                                     sign=config.sign, max_weight=config.max_weight, frozen=frozen,
                                     topology=topology_masks)
                tally.add(part, result, np.where(stopped[:, None, None], 0.0, upd_step.step), schedule)
                for k in np.flatnonzero(upd_step.bad & active):
                    fail(k, f"weights diverged in the update of epoch {epoch} (max |W| = "
                            f"{upd_step.largest[k]:.3g}, limit {config.max_weight:g})", "update", epoch,
                         float(upd_step.largest[k]))
                upd = active[:, None, None]
                W = np.where(upd, upd_step.W, W)
                b = np.where(active[:, None], upd_step.b, b)
                if config.prune is not None:
                    keep = prune_step(config.prune, W, mask, tol=config.prune_tol,
                                      temperature=config.prune_temperature, rngs=rngs,
                                      symmetric=family.symmetric, roles=roles,
                                      frozen=frozen[0] if frozen is not None else None)
                    mask = np.where(upd, keep, mask)
                    W = np.where(mask, W, 0.0)
                batch = NetworkBatch(tuple(n.pruned(mask[k]).with_weights(W[k], b[k] if family.has_bias_vector else None)
                                           for k, n in enumerate(batch.networks)))
            # 5: callbacks, then evaluation of the held-out splits.
            extra = run_callbacks(callbacks, epoch, batch, result)
            nan = np.full(S, np.nan)
            test = valid = None
            last = epoch + 1 == config.epochs
            if eval_every and ((epoch + 1) % eval_every == 0 or last):
                test = evaluate_split(sub, batch, held_out(dataset.test, last), eval_rngs, eval_schedule,
                                      config.state_init_high)
                if dataset.validation is not None:
                    valid = evaluate_split(sub, batch, held_out(dataset.validation, last), eval_rngs, eval_schedule,
                                           config.state_init_high)
                    stopper.update(epoch, valid.accuracy, active, W, b, mask)
                if last and config.eval_samples is not None:
                    last_test = test  # the whole test split on the final weights: not evaluated twice
            seconds = time.perf_counter() - t_epoch
            tmask = topology_masks.reshape(S, -1).sum(axis=1)
            err, mse = tally.mean("wrong"), tally.mean("sq")
            if config.stop_when_solved is not None and tally.n_batches > 1:
                # Minibatches: the epoch's train error (each minibatch before its update).
                note_train_error(err)
            free_set, nudged_set = tally.mean("free_settled"), tally.mean("nudged_settled")
            free_used, nudged_used = tally.mean("free_steps"), tally.mean("nudged_steps")
            norms = tally.update_norm
            for k, h in enumerate(histories):
                h.mse.append(float(mse[k]))
                h.error.append(float(err[k]))
                h.sparsity.append(float(1.0 - mask[k].sum() / max(tmask[k], 1)))
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
            if bar is not None:
                bar.update(1)
                post = {"train": f"{100 * float(np.mean(1 - err)):.1f}%"}
                if test is not None:
                    post["test"] = f"{100 * float(np.mean(test.accuracy)):.1f}%"
                if dataset.test_is_train:
                    post["solved"] = f"{int(np.sum((err == 0) & active))}/{S}"
                post["mse"] = f"{float(np.mean(mse)):.3g}"
                bar.set_postfix(post)
            if (stopper.enabled or config.stop_when_solved is not None) and not active.any():
                break
    finally:
        if bar is not None:
            bar.close()

    if stopper.enabled:
        W, b, mask = stopper.restore(W, b, mask)
        # The saved live mask may have more connections than the last one (pruning went on).
        batch = NetworkBatch(tuple(replace(n, weights=W[k], mask=mask[k],
                                           bias=b[k] if family.has_bias_vector else None)
                                   for k, n in enumerate(batch.networks)))
    # The train-split figure of a data set: on eval_samples presentations when set (a whole-split
    # read-out of the training presentations would cost more than the epoch on a circuit).
    final = evaluate_split(sub, batch, task if dataset.test_is_train else held_out(task, False), rngs,
                           eval_schedule, config.state_init_high)
    if not (final.settled == 1.0).all():
        warnings.warn(f"Final evaluation on the train split: {100 * (1 - float(final.settled.mean())):.1f} % "
                      f"of (network, presentation) pairs not settled after {schedule.free_duration:g} tau "
                      f"(tolerance {schedule.settle_tol:g})", NotSettledWarning, stacklevel=2)
    if dataset.test_is_train:
        test = final
    elif last_test is not None and not stopper.enabled:
        test = last_test
    else:
        test = evaluate_split(sub, batch, dataset.test, eval_rngs, eval_schedule, config.state_init_high)
    valid = (evaluate_split(sub, batch, dataset.validation, eval_rngs, eval_schedule, config.state_init_high)
             if dataset.validation is not None else None)
    return TrainingResult(task=task, model=model, substrate=sub.name, config=config, seeds=seeds,
                          initial_networks=nets, networks=list(batch.networks), histories=histories,
                          train_error=final.error, mse=final.mse, diverged=diverged,
                          seconds=time.perf_counter() - t_start, dataset=dataset,
                          test_error=test.error, test_mse=test.mse,
                          validation_error=valid.error if valid is not None else None,
                          best_epoch=stopper.best_epoch if stopper.enabled else None,
                          final_settled=final.settled_each)


#: Entropy added to a seed for the generator of test/validation evaluations.
_EVAL_STREAM = 0xE7A1


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


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # disable=None: a bar on a terminal, nothing in logs and pipes (CI, redirected output).
    return tqdm(total=total, desc=desc, unit="epoch", leave=False, disable=None)
