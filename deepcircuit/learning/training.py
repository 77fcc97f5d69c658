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
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping, Sequence

import numpy as np

from .._validation import check_choice, check_int, check_real
from ..errors import (DivergenceError, DivergenceWarning, InvalidInputError, InvalidTypeError,
                      NotSettledWarning)
from ..model.families import get_family, select_rule
from .rule import RULES
from ..model.network import Network, NetworkBatch
from ..model.roles import Roles
from ..model.topology import has_sink, sink_index, with_sink_layer
from ..data.defaults import DataShape, dataset_defaults, default_model
from ..data.split import Dataset, load_dataset
from ..substrates import Schedule, Substrate, get_substrate, initial_states
from ..data.tasks import Task
from .steps import (EpochCallback, EpochTally, draw_initial, epoch_batches, evaluate_split, frozen_mask,
                    noise_shrinkage, prune_step, rule_step, run_callbacks, run_phases,
                    wants_trajectories)

PRUNE_METHODS = ("stochastic", "magnitude")


@dataclass(frozen=True)
class TrainingConfig:
    """Every setting of a training run. Times in units of tau; rates dimensionless.

    Parameters
    ----------
    epochs : int
        Number of weight updates.
    dt : float
        Euler step / sampling interval (tau).
    free_steps, nudged_steps : int
        Length of the free and nudged phases in steps (T1, T2).
    beta : float
        Nudging strength (1/tau).
    eta : float
        Learning rate (the reference's ``dt_W``).
    beta0, beta1 : float
        Coefficients of the STDP rule (post-synaptic activity and rate of change).
    sign : bool
        Use ``sign(dW)`` instead of ``dW``.
    l1 : float
        L1 regularisation ``W -= l1 * sign(W)`` per update (0 = off).
    prune : None, "stochastic" or "magnitude"
        Pruning after each update (None = off).
    prune_tol, prune_temperature : float
        Pruning threshold on ``|W|`` and temperature of the stochastic sparsification.
    init_scale : float
        Standard deviation of the initial weights (of every connection unless one of the next
        three settings says otherwise).
    init_scale_bias : float or None
        Standard deviation of the initial weights leaving the bias neuron; ``None`` (the
        reference) uses ``init_scale``. 0 starts every bias connection at zero.
    init_scale_free : float or None
        Standard deviation of the initial weights on connections leaving free (hidden and
        output) neurons; ``None`` (the reference) uses ``init_scale`` for every connection.
        Connections leaving inputs keep ``init_scale`` and mean 0.
    init_mean_free : float
        Mean of the initial weights on connections leaving free neurons (reference: 0). A
        positive mean gives every free neuron a positive total outflow ``sum_k W[j, k]`` at the
        start, i.e. a stable, leaky node with graded (unclipped) states.
    init_sink : float
        Initial weight of every connection into the sink neuron of a ``+sink`` topology (see
        :mod:`deepcircuit.model.topology`): the leak, in 1/tau, that the sink drains from each
        free neuron at the start (1 = deep-leaky's gamma on digits).
    learn_sink : bool
        Let the rule change the connections into the sink neuron (a learned leak). ``False``
        (default): they keep ``init_sink``, fixed synapses like frozen ones.
    state_init_high : float
        Initial free states are drawn from ``Uniform(0, state_init_high)`` every presentation.
    settle_tol : float
        Equilibrium tolerance on ``max |ds/dt|`` (1/tau).
    stop_at_equilibrium : bool
        End phases early once settled (saves time; off in the reference).
    max_weight : float
        A network whose largest ``|W|`` exceeds this is declared diverged.
    batch_size : int or None
        Presentations per minibatch; ``None`` (default) = the whole training split in one batch,
        in its stored order (the reference). Each minibatch settles together and gives one update,
        the mean of the rule over its presentations.
    shuffle_seed : int
        Seed of the per-epoch shuffling of minibatches (one order shared by every seed).
    freeze : tuple of str
        Connection groups that keep their initial weights, e.g. ``("input-hidden",)``; see
        :data:`deepcircuit.learning.steps.FREEZE_GROUPS`.
    early_stopping : int or None
        Stop a seed when its validation accuracy has not improved for this many evaluations and
        keep its best-validation weights (needs a validation split). ``None`` = off.
    eval_every : int or None
        Evaluate the test (and validation) split every this many epochs (0 = only at the end).
        ``None``: every epoch for data sets; only at the end for logic tasks and parity tables,
        whose test set is the training table (measured every epoch anyway as ``History.error``).
    eval_samples : int or None
        Evaluate the held-out splits (test, validation) of each epoch on this many of their
        presentations only: the same sample every epoch, drawn once without replacement with
        ``shuffle_seed``. The last epoch and the final test and validation figures use the whole
        splits; the final train-split figure (``train_error``) of a data set is measured on
        ``eval_samples`` training presentations. ``None`` (default) = always the whole splits.
        For costly substrates (SPICE in the loop), where whole-split evaluations would cost
        more than the training.
    eval_free_steps : int or None
        Free-phase budget (steps of ``dt``) of the evaluations (test, validation and the final
        one); ``None`` = ``free_steps``. A longer read-out budget than the training phases lets
        every presentation settle before its output is read.
    eta_input, eta_feedback : float
        Factors on ``eta`` for the weights leaving input neurons (bias included) and leaving
        output neurons (the feedback weights); 1 = the same rate as every other weight. Only for
        families without a bias vector (deep, deep-leaky).
    rule : None or str
        Learning rule; ``None`` (default) is the family's own. ``"stdp2"`` / ``"stdp2-mirror"``
        (deep, deep-leaky): DEEP's rule with the pre-synaptic change subtracted, and with backward
        synapses mirroring their forward twin (see ``docs/gradient.md``).
    stop_when_solved : int or None
        Stop updating a seed once its error on the train split, as measured by the training's
        own free phases on the substrate (``History.error``), has been 0 for this many
        consecutive epochs; with one full batch the last of those measurements is of the
        weights the seed keeps (its update is not applied). Decided per seed from the
        substrate's measurements only. ``None`` (default) = off. For noisy substrates
        (spiking), where late updates are mostly noise. A stopped seed's
        ``History.update_norm`` is 0 from its stopping epoch on.
    eta_noise : bool
        Scale each seed's learning rate, every update, by the share of its measured update that
        is signal rather than measurement noise (:func:`~deepcircuit.learning.steps.noise_shrinkage`),
        estimated from the substrate's repeated measurements of the rule's sums; needs a
        substrate that reports them (``brian2-spiking`` with ``repeats >= 2``). Default off.
    """

    epochs: int = 200
    dt: float = 0.05
    free_steps: int = 1000
    nudged_steps: int = 1000
    beta: float = 10.0
    eta: float = 100.0
    beta0: float = 0.0
    beta1: float = 1.0
    sign: bool = False
    l1: float = 0.0
    prune: str | None = None
    prune_tol: float = 0.01
    prune_temperature: float = 5.0
    init_scale: float = 0.05
    init_scale_bias: float | None = None
    init_scale_free: float | None = None
    init_mean_free: float = 0.0
    init_sink: float = 1.0
    learn_sink: bool = False
    state_init_high: float = 0.1
    settle_tol: float = 1e-4
    stop_at_equilibrium: bool = False
    max_weight: float = 1e6
    batch_size: int | None = None
    shuffle_seed: int = 0
    freeze: tuple = ()
    early_stopping: int | None = None
    eval_every: int | None = None
    eta_input: float = 1.0
    eta_feedback: float = 1.0
    eval_free_steps: int | None = None
    eval_samples: int | None = None
    rule: str | None = None
    stop_when_solved: int | None = None
    eta_noise: bool = False

    def __post_init__(self) -> None:
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, low=1)
        check_int("shuffle_seed", self.shuffle_seed, low=0)
        if self.early_stopping is not None:
            check_int("early_stopping", self.early_stopping, low=1)
        if self.stop_when_solved is not None:
            check_int("stop_when_solved", self.stop_when_solved, low=1)
        if self.eval_every is not None:
            check_int("eval_every", self.eval_every, low=0)
        if self.eval_free_steps is not None:
            check_int("eval_free_steps", self.eval_free_steps, low=1)
        if self.eval_samples is not None:
            check_int("eval_samples", self.eval_samples, low=1)
        if self.freeze is not None and not isinstance(self.freeze, (str, list, tuple)):
            raise InvalidTypeError(f"The 'freeze' parameter must be connection group names; got {self.freeze!r}.")
        freeze = (self.freeze,) if isinstance(self.freeze, str) else tuple(self.freeze or ())
        frozen_mask(Roles(2, (1,), 1), freeze)  # validates the group names
        object.__setattr__(self, "freeze", freeze)
        check_int("epochs", self.epochs, low=0)
        check_real("eta", self.eta, low=0.0)
        check_real("beta", self.beta, low=0.0)  # Schedule allows -beta (gradient check); training does not
        check_real("eta_input", self.eta_input, low=0.0)
        check_real("eta_feedback", self.eta_feedback, low=0.0)
        if self.rule is not None:
            check_choice("rule", self.rule, RULES)
        check_real("beta0", self.beta0)
        check_real("beta1", self.beta1)
        check_real("l1", self.l1, low=0.0)
        check_real("prune_tol", self.prune_tol, low=0.0)
        check_real("prune_temperature", self.prune_temperature, low=0.0, low_open=True)
        check_real("init_scale", self.init_scale, low=0.0)
        for name in ("init_scale_bias", "init_scale_free"):
            if getattr(self, name) is not None:
                check_real(name, getattr(self, name), low=0.0)
        check_real("init_mean_free", self.init_mean_free)
        check_real("init_sink", self.init_sink, low=0.0)
        check_real("state_init_high", self.state_init_high, low=0.0, high=1.0)
        check_real("max_weight", self.max_weight, low=0.0, low_open=True)
        if self.prune is not None:
            check_choice("prune", self.prune, PRUNE_METHODS)
        self.schedule  # validates dt, steps, beta, settle_tol

    @property
    def schedule(self) -> Schedule:
        """The :class:`Schedule` of one presentation."""
        return Schedule(dt=self.dt, free_steps=self.free_steps, nudged_steps=self.nudged_steps,
                        beta=self.beta, settle_tol=self.settle_tol,
                        stop_at_equilibrium=self.stop_at_equilibrium)

    @property
    def eval_schedule(self) -> Schedule:
        """The :class:`Schedule` of an evaluation: the free phase with ``eval_free_steps``."""
        return replace(self.schedule, free_steps=self.eval_free_steps or self.free_steps)

    def replace(self, **changes: Any) -> "TrainingConfig":
        """A copy with some settings changed; unknown names fail with the list of settings."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise InvalidInputError(
                f"Unknown training setting(s) {sorted(unknown)}; settings are "
                f"{', '.join(f.name for f in fields(self))}.")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainingConfig":
        return cls().replace(**dict(d))

    @classmethod
    def for_task(cls, task: "str | Task | Dataset", *, model: str = "deep",
                 preset: str = "default") -> "TrainingConfig":
        """The preset with the data set's own defaults (batch size, phase lengths, epochs ...)
        from :mod:`deepcircuit.data.defaults`, derived from the data's shape where no table entry
        applies; logic tasks get the preset unchanged. A name is resolved with :func:`load_dataset`."""
        dataset = load_dataset(task)
        defaults = dataset_defaults(dataset.name, model, source=dataset.source, shape=DataShape.of(dataset))
        return cls.preset(preset, model=model).replace(**defaults.settings)

    @classmethod
    def preset(cls, name: str = "default", *, model: str = "deep") -> "TrainingConfig":
        """Named settings: ``"paper"`` (the reference notebooks exactly) or ``"default"``.

        ``"paper"`` is T1 = T2 = 1000 Euler steps of 0.05, beta = 10, eta = 100 (eta = 1 for
        ``ep-asym``, whose rule is the endpoint rule), beta0 = 0, beta1 = 1. ``"default"`` is the
        project's better setting for each family; see the README for what changed and why.
        """
        check_choice("preset", name, PRESETS)
        get_family(model)
        paper = cls()
        if model in ("ep-asym", "ep-sym"):
            paper = paper.replace(eta=1.0)
        if name == "paper":
            return paper
        return paper.replace(**_DEFAULT_CHANGES.get(model, {}))


#: How the project defaults differ from the paper preset, per family (see README and
#: docs/training_defaults.md; benchmarks/bench_training_defaults.py measures both presets).
#: For ``deep`` only the initial weights change (the dynamics, the rule, eta, beta and the phase
#: lengths stay the paper's): input weights ~ Normal(0, 1); bias weights start at 0, so that
#: the hidden neurons start as varied threshold functions of the inputs instead of constants;
#: weights leaving free neurons ~ Normal(0.05, 0.05^2), small and positive on average, so that
#: every free neuron starts with a positive total outflow (a stable, leaky node, not a
#: self-exciting one stuck at a rail). ``deep-leaky`` uses the same initialisation (tested, not
#: tuned for it). ``ep-asym`` and ``ep-sym`` keep the paper settings.
_DEEP_INIT = {"init_scale": 1.0, "init_scale_bias": 0.0, "init_scale_free": 0.05, "init_mean_free": 0.05}
_DEFAULT_CHANGES: dict[str, dict[str, Any]] = {"deep": dict(_DEEP_INIT), "deep-leaky": dict(_DEEP_INIT)}
PRESETS = ("default", "paper")


@dataclass
class History:
    """Per-epoch record of one network's training (arrays have one entry per epoch).

    ``mse`` and ``error`` are measured on the free phase of each epoch, before that epoch's
    update (as in the reference). ``update_norm`` is the Frobenius norm of ``eta * dW``.
    ``free_settled`` / ``nudged_settled`` are the fractions of presentations at equilibrium.
    ``extra`` holds what epoch callbacks recorded (for example stability certificates).

    ``mse`` and ``error`` are on the **train** split: the free phases of the epoch's minibatches,
    each before its own update (one full batch: exactly the reference's measure).
    ``test_error``/``test_mse`` and ``validation_error`` are on those splits, measured after the
    epoch's updates (NaN in epochs without an evaluation, see ``eval_every``).
    ``free_steps_used``/``nudged_steps_used``: mean Euler steps per presentation each phase took
    (less than the budget when phases stop at equilibrium). ``seconds``: wall time of the epoch.
    """

    mse: list = field(default_factory=list)
    error: list = field(default_factory=list)
    sparsity: list = field(default_factory=list)
    update_norm: list = field(default_factory=list)
    free_settled: list = field(default_factory=list)
    nudged_settled: list = field(default_factory=list)
    test_error: list = field(default_factory=list)
    test_mse: list = field(default_factory=list)
    validation_error: list = field(default_factory=list)
    free_steps_used: list = field(default_factory=list)
    nudged_steps_used: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    _KEYS = ("mse", "error", "sparsity", "update_norm", "free_settled", "nudged_settled", "test_error",
             "test_mse", "validation_error", "free_steps_used", "nudged_steps_used", "seconds")

    @property
    def train_accuracy(self) -> list:
        """Per-epoch accuracy on the train split (``1 - error``)."""
        return [1.0 - e for e in self.error]

    @property
    def test_accuracy(self) -> list:
        """Per-epoch accuracy on the test split (NaN where not evaluated)."""
        return [1.0 - e for e in self.test_error]

    def to_dict(self) -> dict:
        d = {k: [float(v) for v in getattr(self, k)] for k in self._KEYS}
        d["extra"] = self.extra
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "History":
        # Older model files lack the newer keys; they load as empty lists.
        h = cls(**{k: [float(v) for v in d.get(k, [])] for k in cls._KEYS})
        h.extra = dict(d.get("extra", {}))
        return h

    def __len__(self) -> int:
        return len(self.mse)


@dataclass
class TrainingResult:
    """What :func:`train` returns: one trained network, history and final score per seed."""

    task: Task
    model: str
    substrate: str
    config: TrainingConfig
    seeds: list[int]
    initial_networks: list[Network]
    networks: list[Network]
    histories: list[History]
    train_error: np.ndarray
    mse: np.ndarray
    diverged: list[str | None]
    seconds: float
    dataset: Dataset | None = None
    test_error: np.ndarray | None = None
    test_mse: np.ndarray | None = None
    validation_error: np.ndarray | None = None
    best_epoch: list | None = None
    #: ``(S, P)``: whether each presentation of the final train-split evaluation settled; ``train_error``
    #: and ``mse`` read the outputs at the end of the phase either way.
    final_settled: np.ndarray | None = None

    @property
    def train_accuracy(self) -> np.ndarray:
        """Final accuracy on the **train** split, per seed."""
        return 1.0 - np.asarray(self.train_error)

    @property
    def test_accuracy(self) -> np.ndarray:
        """Final accuracy on the **test** split, per seed (the train split for logic tasks)."""
        return 1.0 - np.asarray(self.train_error if self.test_error is None else self.test_error)

    @property
    def solved(self) -> int:
        """Number of seeds at 0 % training error (final evaluation) that did not diverge."""
        return int(sum(e == 0 and d is None for e, d in zip(self.train_error, self.diverged)))

    @property
    def sparsity(self) -> np.ndarray:
        return np.array([n.sparsity for n in self.networks])


def parse_hidden(hidden: "int | str | Sequence[int]") -> tuple[int, ...]:
    """Hidden layer sizes from ``5``, ``"5"``, ``"5,3"`` or ``[5, 3]``."""
    if isinstance(hidden, str):
        try:
            hidden = [int(h) for h in hidden.split(",") if h.strip()]
        except ValueError:
            raise InvalidInputError(
                f"The 'hidden' parameter must be layer sizes like '5' or '5,3'; got {hidden!r}.") from None
    if isinstance(hidden, (int, np.integer)):
        hidden = [int(hidden)]
    return tuple(check_int("hidden", h, low=0) for h in hidden)


def make_networks(task: "Task | Dataset", *, model: str, topology: Any, hidden, seeds: Sequence[int],
                  config: TrainingConfig, params: Mapping[str, float] | None = None) -> list[Network]:
    """The initial network of each seed (weights drawn from that seed's generator)."""
    if isinstance(task, Dataset):
        task = task.train
    roles = Roles(task.n_inputs, with_sink_layer(parse_hidden(hidden), topology), task.n_outputs)
    if config.init_scale_bias is None and config.init_scale_free is None and config.init_mean_free == 0.0:
        nets = [Network.create(roles, family=model, topology=topology, params=params,
                               init_scale=config.init_scale, rng=_seed_rng(s)) for s in seeds]
        return _init_sink(nets, topology, config.init_sink)
    # Same standard normal draws as the reference, rescaled per source row: rows of inputs by
    # init_scale, the bias row by init_scale_bias, rows of free neurons by init_scale_free and
    # shifted by init_mean_free (both directions between free neurons are free rows, so ep-sym
    # stays symmetric).
    def _or(value, default):
        return default if value is None else value

    row_scale = np.full(roles.n_neurons, float(config.init_scale))
    row_scale[roles.bias_index] = _or(config.init_scale_bias, config.init_scale)
    row_scale[roles.n_inputs:] = _or(config.init_scale_free, config.init_scale)
    row_mean = np.zeros(roles.n_neurons)
    row_mean[roles.n_inputs:] = config.init_mean_free
    nets = [Network.create(roles, family=model, topology=topology, params=params,
                           init_scale=1.0, rng=_seed_rng(s)) for s in seeds]
    nets = [n.with_weights(np.where(n.mask, n.weights * row_scale[:, None] + row_mean[:, None], 0.0))
            for n in nets]
    return _init_sink(nets, topology, config.init_sink)


def _init_sink(nets: list[Network], topology: Any, weight: float) -> list[Network]:
    """Every connection into the sink neuron (``+sink`` topologies) starts at ``weight``."""
    if not has_sink(topology):
        return nets
    k = sink_index(nets[0].roles)
    out = []
    for n in nets:
        W = np.array(n.weights)
        W[:, k] = np.where(n.mask[:, k], weight, 0.0)
        out.append(n.with_weights(W))
    return out


def _seed_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(check_int("seed", seed, low=0))


def evaluate(networks, task: "Task | str", *, substrate: "str | Substrate" = "ode",
             schedule: Schedule | None = None, rng: "np.random.Generator | int | None" = None,
             state_init_high: float = 0.1):
    """Free-phase evaluation: returns ``(trajectory, error (S,), mse (S,))``.

    A :class:`Dataset` is evaluated on its test split; a name is resolved with :func:`load_dataset`.
    """
    task = load_dataset(task).test
    batch = NetworkBatch.of(networks)
    check_task_fits(task, batch.roles)
    sub = get_substrate(substrate)
    schedule = schedule or Schedule()
    s0 = initial_states(np.random.default_rng(rng), len(batch), task.inputs, batch.roles, state_init_high)
    traj = sub.run(batch, task.inputs, s0, schedule).free
    return traj, task.error(traj.outputs), task.mse(traj.outputs)


def predict(networks, task: "Task | Dataset | str", *, substrate: "str | Substrate" = "ode",
            schedule: Schedule | None = None, seed: int = 0, state_init_high: float = 0.1) -> np.ndarray:
    """Predicted labels ``(S, P)`` of each network on every presentation of ``task`` (free phase).

    Unlike :func:`evaluate` it keeps only the settled outputs (presentations run in
    memory-bounded chunks), so it suits a whole test split of a data set. A :class:`Dataset`
    (or a name) is predicted on its test split. Labels are class indices (argmax readout) or
    bits (threshold readout, shape ``(S, P, n_outputs)``).
    """
    task = load_dataset(task).test if not isinstance(task, Task) else task
    batch = NetworkBatch.of(networks)
    check_task_fits(task, batch.roles)
    sub = get_substrate(substrate)
    try:
        rngs = [np.random.default_rng([check_int("seed", seed, low=0), k]) for k in range(len(batch))]
        score = evaluate_split(sub, batch, task, rngs, schedule or Schedule(), state_init_high, keep_outputs=True)
    finally:
        if isinstance(substrate, str):  # ours to close; a caller's substrate stays open
            sub.close()
    return np.asarray(task.predict(score.outputs))


def check_task_fits(task: Task, roles: Roles) -> None:
    """Raise a clear error when the task's input/output widths do not match the network's."""
    if task.n_inputs != roles.n_inputs or task.n_outputs != roles.n_outputs:
        raise InvalidInputError(
            f"Task {task.name!r} has {task.n_inputs} inputs (bias included) and {task.n_outputs} "
            f"outputs, but the network has {roles.n_inputs} and {roles.n_outputs}.")


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
    rngs = [_seed_rng(s) for s in seeds]
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
