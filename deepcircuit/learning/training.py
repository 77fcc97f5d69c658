"""Training: :func:`train` resolves what a run starts from (data set, family, settings, seeds,
initial networks), then runs the named steps of each epoch.

The loop talks to a substrate only through :meth:`Substrate.run` and reads only the
trajectories it returns, so every substrate trains with the same code. Seeds are trained as one
batch; each seed has its own random generator, so a seed's result does not depend on which
other seeds share its batch. The settings are :mod:`.config`'s, the initial networks
:mod:`.initial_networks`', the run's state and epoch steps :mod:`.loop`'s (built on the array
steps of :mod:`.steps`), the result :mod:`.results`'.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from .._validation import check_choice, check_int
from ..errors import InvalidInputError
from ..model.families import Family, get_family, select_rule
from ..model.network import Network, NetworkBatch
from ..model.roles import Roles
from ..model.topology import has_sink, sink_index
from ..data.defaults import DataShape, dataset_defaults, default_model
from ..data.split import Dataset, load_dataset
from ..substrates import Substrate, get_substrate
from ..data.tasks import Task
from .config import TrainingConfig
from .evaluation import check_task_fits
from .initial_networks import make_networks, seed_rng
from .loop import (TrainingRun, evaluate_held_out, finish, plan_whole_training, progress_bar, record_epoch,
                   show_progress, train_minibatch)
from .results import TrainingResult
from .steps import EpochCallback, EpochTally, epoch_batches, frozen_mask, run_callbacks, wants_trajectories

#: Entropy added to a seed for the generator of test/validation evaluations.
_EVAL_STREAM = 0xE7A1


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
        task, model, topology, networks, seeds, config = _fine_tune_start(
            init, task, model=model, topology=topology, hidden=hidden, seeds=seeds, networks=networks,
            config=config)
    if task is None:
        raise InvalidInputError("train needs a task (a logic task, a data set name or a Dataset) or init model files.")
    dataset = load_dataset(task)
    model, topology, hidden, params, config = _resolve_settings(dataset, model, topology, hidden, params, config)
    _check_settings(dataset, config, on_divergence)
    seeds = _seed_list(seeds)
    rngs = [seed_rng(s) for s in seeds]
    nets = _initial_networks(dataset.train, networks, rngs, model=model, topology=topology, hidden=hidden,
                             seeds=seeds, config=config, params=params)
    run = _begin(dataset, model, seeds, nets, rngs, config, substrate=substrate, callbacks=callbacks,
                 on_divergence=on_divergence)
    plan_whole_training(run, callbacks)
    bar = progress_bar(config.epochs, progress, f"{run.task.name}/{model}/{run.sub.name}")
    try:
        for epoch in range(config.epochs):
            t_epoch = time.perf_counter()
            tally = EpochTally(len(seeds))
            # 1-4: minibatches, phases, rule, pruning.
            for idx in epoch_batches(run.task.n_presentations, config.batch_size, run.order_rng):
                result = train_minibatch(run, idx, epoch, tally)
            # 5: callbacks, then evaluation of the held-out splits.
            extra = run_callbacks(callbacks, epoch, run.batch, result)
            test, valid = evaluate_held_out(run, epoch)
            # 6: the history, stop_when_solved, the progress bar.
            err, mse = record_epoch(run, tally, test, valid, extra, time.perf_counter() - t_epoch)
            if config.stop_when_solved is not None and tally.n_batches > 1:
                # Minibatches: the epoch's train error (each minibatch before its update).
                run.note_train_error(err)
            show_progress(bar, run, err, mse, test)
            if run.all_stopped:
                break
    finally:
        if bar is not None:
            bar.close()
    return finish(run, t_start)


def _fine_tune_start(init, task, *, model, topology, hidden, seeds, networks, config):
    """``train(init=...)``: ``(data set, family, topology, networks, seeds, settings)`` of the model
    files to continue (:func:`deepcircuit.learning.fine_tune.start_from`)."""
    from .fine_tune import start_from

    if networks is not None:
        raise InvalidInputError("Give either init (model files) or networks, not both.")
    start = start_from(init, task, model=model, topology=topology, hidden=hidden,
                       seeds=list(range(seeds)) if isinstance(seeds, (int, np.integer)) else seeds)
    return (start.dataset, start.family, start.networks[0].topology, start.networks, list(start.seeds),
            config or start.training_config())


def _resolve_settings(dataset: Dataset, model: str | None, topology: Any, hidden, params: Mapping[str, float] | None,
                      config: TrainingConfig | None):
    """``(model, topology, hidden, params, config)``: those given, the data set's defaults for the rest."""
    if model is None:
        model = default_model(dataset.name, source=dataset.source)
    get_family(model)
    defaults = dataset_defaults(dataset.name, model, source=dataset.source, shape=DataShape.of(dataset))
    if params is None and defaults.params:
        params = dict(defaults.params)
    topology = defaults.topology if topology is None else topology
    hidden = defaults.hidden if hidden is None else hidden
    config = config or TrainingConfig.for_task(dataset, model=model)
    return model, topology, hidden, params, config


def _check_settings(dataset: Dataset, config: TrainingConfig, on_divergence: str) -> None:
    """Refuse settings that cannot train on ``dataset``."""
    if config.epochs > 0 and config.nudged_steps < 1:
        raise InvalidInputError("Training needs a nudged phase: 'nudged_steps' must be >= 1; got 0.")
    check_choice("on_divergence", on_divergence, ("report", "raise"))
    if config.early_stopping is not None and dataset.validation is None:
        raise InvalidInputError("Early stopping needs a validation split; give a validation fraction "
                                "(--validation-fraction) or leave early stopping off.")


def _seed_list(seeds: "int | Sequence[int] | None") -> list[int]:
    """The seeds of a run: a count ``n`` is ``0..n-1``; None is seed 0."""
    if seeds is None:
        seeds = (0,)
    if isinstance(seeds, (int, np.integer)):
        seeds = list(range(check_int("seeds", seeds, low=1)))
    seeds = [check_int("seed", s, low=0) for s in seeds]
    if not seeds:
        raise InvalidInputError("At least one seed is needed.")
    return seeds


def _initial_networks(task: Task, networks: Sequence[Network] | None, rngs: list[np.random.Generator], *,
                      model: str, topology: Any, hidden, seeds: list[int], config: TrainingConfig,
                      params: Mapping[str, float] | None) -> list[Network]:
    """The given networks (one per seed), or fresh ones drawn from the seeds (``rngs`` advanced past them)."""
    if networks is None:
        nets = make_networks(task, model=model, topology=topology, hidden=hidden, seeds=seeds,
                             config=config, params=params)
        # make_networks drew the weights from fresh generators of the same seeds; advance ours
        # past those draws so weights and states never share random numbers.
        for g, n in zip(rngs, nets):
            g.normal(size=(n.n_neurons, n.n_neurons))
        return nets
    nets = list(networks)
    if len(nets) != len(seeds):
        raise InvalidInputError(f"Got {len(nets)} networks for {len(seeds)} seeds; give one per seed.")
    return nets


def _begin(dataset: Dataset, model: str, seeds: list[int], nets: list[Network], rngs: list[np.random.Generator],
           config: TrainingConfig, *, substrate: "str | Substrate", callbacks: Sequence[EpochCallback],
           on_divergence: str) -> TrainingRun:
    """The run's fixed parts (rule, rates, substrate, frozen connections, generators, held-out
    samples) around its initial networks; refuses networks that do not fit the task or settings."""
    batch = NetworkBatch.of(nets)
    check_task_fits(dataset.train, batch.roles)
    if config.learn_sink and not has_sink(batch[0].topology):
        raise InvalidInputError(
            f"learn_sink (--learn-sink) applies to a '+sink' topology; this network's topology is "
            f"{batch[0].topology!r}.")
    family = batch.family_
    rule = select_rule(family, config.rule)
    eta = _learning_rates(config, family, batch.roles)
    sub = _training_substrate(substrate, keep_trajectories=wants_trajectories(callbacks))
    eval_every = config.eval_every
    if eval_every is None:
        eval_every = 0 if dataset.test_is_train and dataset.validation is None else 1
    splits = {"train": dataset.train, "test": dataset.test, "validation": dataset.validation}
    return TrainingRun(
        dataset=dataset, model=model, seeds=seeds, initial_networks=nets, config=config, sub=sub, rule=rule,
        eta=eta, frozen=_frozen_connections(config, batch), eval_every=eval_every,
        on_divergence=on_divergence, rngs=rngs,
        # Test/validation evaluations draw initial states from their own generators, so that
        # evaluating never changes what training draws (logic tasks keep their exact figures).
        eval_rngs=[np.random.default_rng([s, _EVAL_STREAM]) for s in seeds],
        order_rng=np.random.default_rng(config.shuffle_seed),
        held_out={name: _held_out_sample(split, config) for name, split in splits.items()}, batch=batch)


def _learning_rates(config: TrainingConfig, family: Family, roles: Roles):
    """``eta``, or with eta_input / eta_feedback one rate per source row ``(N, 1)``."""
    if config.eta_input == 1.0 and config.eta_feedback == 1.0:
        return config.eta
    if family.has_bias_vector:
        raise InvalidInputError("eta_input / eta_feedback apply to the deep families only (no bias vector).")
    # per-layer learning rates: one factor per source row
    row = np.ones(roles.n_neurons)
    row[: roles.n_inputs] = config.eta_input
    row[roles.n_neurons - roles.n_outputs:] = config.eta_feedback
    return config.eta * row[:, None]


def _frozen_connections(config: TrainingConfig, batch: NetworkBatch) -> tuple[np.ndarray, np.ndarray] | None:
    """``(W_frozen (N, N), b_frozen (N,))`` that the rule leaves alone, or None: the ``freeze``
    groups, the connections into a sink (unless ``learn_sink``), both twins of a symmetric pair."""
    roles = batch.roles
    frozen = frozen_mask(roles, config.freeze) if config.freeze else None
    if has_sink(batch[0].topology) and not config.learn_sink:
        # The connections into the sink are fixed synapses unless asked otherwise.
        n = roles.n_neurons
        fW, fb = frozen if frozen is not None else (np.zeros((n, n), bool), np.zeros(n, bool))
        fW = fW.copy()
        fW[:, sink_index(roles)] = True
        frozen = (fW, fb)
    if frozen is not None and batch.family_.symmetric:
        # A symmetric family's twin connections move together: freezing one freezes both.
        frozen = (frozen[0] | frozen[0].T, frozen[1])
    return frozen


def _held_out_sample(split: Task | None, config: TrainingConfig) -> Task | None:
    """The presentations of a split evaluated before the last epoch: ``eval_samples`` of them (the
    same every epoch, drawn with ``shuffle_seed``), or the whole split."""
    m = config.eval_samples
    if split is None or m is None or m >= split.n_presentations:
        return split
    pick = np.random.default_rng([config.shuffle_seed, _EVAL_STREAM]).choice(split.n_presentations, m, replace=False)
    return split.subset(np.sort(pick))


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

