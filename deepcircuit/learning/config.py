"""Training settings: :class:`TrainingConfig` and its presets (``paper``, ``default``).

Every setting of a training run lives here, with its units and its check; the data sets' own
defaults come from :mod:`deepcircuit.data.defaults`. ``docs/config.md`` is generated from
:class:`TrainingConfig`'s docstring (``python -m deepcircuit.learning.config_file``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from .._validation import check_choice, check_int, check_real
from ..errors import InvalidInputError, InvalidTypeError
from ..model.families import get_family
from .rule import RULES
from ..model.roles import Roles
from ..data.defaults import DataShape, dataset_defaults
from ..data.split import Dataset, load_dataset
from ..substrates import Schedule
from ..data.tasks import Task
from .steps import frozen_mask

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
