"""``DEEPClassifier``: a DEEP (or EP) network as a scikit-learn classifier.

The estimator wraps :func:`deepcircuit.learning.training.train`; it adds no training of its own.
``fit(X, y)`` turns the arrays into a :class:`~deepcircuit.data.split.Dataset` the way
:func:`~deepcircuit.data.split.load_dataset` does for a data file (features min-max scaled to
[0, 1] by a scaler fitted on ``X``, a bias column appended, one output per class), and trains
one network with the defaults ``train`` applies to a user's data file (the default derived
from the data's shape, :func:`deepcircuit.data.defaults.dataset_defaults` with ``source="file"``),
unless a parameter says otherwise. ``predict_proba`` runs the free phase of the trained network on the substrate
and normalises the settled output states.

Layer: learning (it uses ``train``; nothing below imports it). scikit-learn's conventions:
``__init__`` only stores parameters; ``random_state`` becomes the training seed in ``fit``;
learned attributes end in ``_``.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..data.split import Dataset, Scaler
from ..data.tasks import Task
from ..errors import DivergenceError, InvalidInputError, NotSettledWarning
from ..model.network import NetworkBatch
from ..substrates import Substrate, get_substrate, substrate_options
from .config import TrainingConfig
from .training import train

#: Name of the data set a ``fit`` builds (it gets the defaults of a user's data file).
ARRAY_DATASET = "arrays"


class DEEPClassifier(ClassifierMixin, BaseEstimator):
    """A DEEP network trained by its local rule, with scikit-learn's classifier API.

    Parameters
    ----------
    model : str, default "deep"
        Model family: ``deep``, ``deep-leaky``, ``ep-asym`` or ``ep-sym``.
    substrate : str or Substrate, default "ode"
        Where the phases run: a substrate name (``ode``, ``brian2``, ``brian2-spiking``,
        ``spice``), a spec string ``NAME:opt=v;opt=v`` (``"spice:mismatch=0.1"``) where the
        installed :func:`deepcircuit.get_substrate` parses one, or a substrate instance. ``fit``
        and ``predict`` each build the substrate from the spec: a chip with mismatch is the
        same chip in both (its draw follows the spec's ``seed``, default 0).
    hidden : int, str or tuple of int, optional
        Hidden layer sizes; default: the data-file default (:mod:`deepcircuit.data.defaults`).
    topology : str, optional
        ``complete``, ``layered``, either with ``+sink``; default: the data-file default.
    epochs, eta, beta, batch_size : optional
        Shortcuts for the :class:`~deepcircuit.learning.config.TrainingConfig` fields of the
        same names (``eta``, ``beta`` dimensionless / in 1/tau); default: the data-file default.
    config : dict, optional
        Any other ``TrainingConfig`` fields, e.g. ``{"free_steps": 200, "rule": "stdp2"}``;
        unknown names fail with the list of fields. The shortcuts above win over it.
    random_state : int, RandomState or None
        Seeds the training (initial weights, initial states, pruning draws): ``fit`` draws one
        integer seed from it and passes it to ``train``. ``None``: a fresh seed each fit.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted; output neuron ``k`` stands for ``classes_[k]``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    scaler_ : Scaler
        Min-max scaler fitted on ``X`` in ``fit``. The network's inputs are states bounded to
        [0, 1], so every feature is mapped to [0, 1] by its training range; values outside that
        range (new data) are clipped to 0 or 1, and a feature constant in ``X`` maps to 0.
    network_ : Network
        The trained network. ``config_`` : the TrainingConfig used. ``history_`` : its History.
    seed_ : int
        The training seed drawn from ``random_state``.

    Notes
    -----
    A prediction starts every presentation's free phase from the same state (inputs clamped,
    every other neuron at ``state_init_high / 2``, the middle of the range training draws
    initial states from), so it is a function of the sample alone (sklearn requires that
    predictions do not depend on which other rows share the call). Presentations whose free
    phase did not settle within ``eval_free_steps`` are reported with a
    :class:`~deepcircuit.errors.NotSettledWarning`; a diverged phase raises
    :class:`~deepcircuit.errors.DivergenceError`, as does a diverged training.
    """

    def __init__(self, model: str = "deep", substrate: "str | Substrate" = "ode", hidden: Any = None,
                 topology: Any = None, epochs: int | None = None, eta: float | None = None,
                 beta: float | None = None, batch_size: int | None = None,
                 config: Mapping[str, Any] | None = None, random_state: Any = None) -> None:
        self.model = model
        self.substrate = substrate
        self.hidden = hidden
        self.topology = topology
        self.epochs = epochs
        self.eta = eta
        self.beta = beta
        self.batch_size = batch_size
        self.config = config
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The network's states are bounded reals: no sparse or string input, no NaN.
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags

    # -- fit ------------------------------------------------------------------------------------
    def _training_config(self, dataset: Dataset) -> TrainingConfig:
        if self.config is not None and not isinstance(self.config, Mapping):
            raise InvalidInputError(
                f"The 'config' parameter of DEEPClassifier must be a dict of TrainingConfig fields; "
                f"got {type(self.config).__name__}.")
        config = TrainingConfig.for_task(dataset, model=self.model).replace(eval_every=0)
        shortcuts = {"epochs": self.epochs, "eta": self.eta, "beta": self.beta, "batch_size": self.batch_size}
        changes = {**dict(self.config or {}), **{k: v for k, v in shortcuts.items() if v is not None}}
        return config.replace(**changes)

    def fit(self, X, y) -> "DEEPClassifier":
        """Train one network on ``X (n_samples, n_features)``, ``y (n_samples,)``; returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"DEEPClassifier needs samples of at least 2 classes; got 1 class "
                             f"({self.classes_[0]!r}).")
        self.scaler_ = Scaler.fit(X)
        task = Task(ARRAY_DATASET, self._inputs(X), np.eye(len(self.classes_))[labels], "argmax", split="train")
        # The whole of X trains. Nothing is held out (evaluate with cross_val_score or a split of
        # your own): the "test" split is a copy of the training rows (a distinct object, so the
        # data set is not taken for a truth table and gets the default derived from its shape),
        # and no split is evaluated during training (eval_every 0).
        dataset = Dataset(ARRAY_DATASET, "file", task, task.subset(slice(None)), None, self.scaler_,
                          class_names=tuple(str(c) for c in self.classes_))
        self.config_ = self._training_config(dataset)
        self.seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        with warnings.catch_warnings():
            # The final evaluation's NotSettledWarning is about the train split; predict warns
            # about the data it is given.
            warnings.simplefilter("ignore", NotSettledWarning)
            result = train(dataset, model=self.model, topology=self.topology, hidden=self.hidden,
                           seeds=[self.seed_], config=self.config_, substrate=self.substrate,
                           on_divergence="raise")
        self.network_ = result.networks[0]
        self.history_ = result.histories[0]
        return self

    # -- predict --------------------------------------------------------------------------------
    def _inputs(self, X: np.ndarray) -> np.ndarray:
        return np.hstack([self.scaler_.transform(X), np.ones((X.shape[0], 1))])

    def _outputs(self, X) -> np.ndarray:
        """Settled output states ``(n_samples, n_classes)`` of the free phase, in [0, 1]."""
        from .steps import EVAL_BYTES

        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        inputs = self._inputs(X)
        batch = NetworkBatch.of(self.network_)
        roles = batch.roles
        schedule = self.config_.eval_schedule
        chunk = max(1, EVAL_BYTES // ((schedule.free_steps + 1) * roles.n_neurons * 8))
        sub, own = _substrate(self.substrate)
        outs, unsettled = [], 0
        try:
            for a in range(0, inputs.shape[0], chunk):
                part = inputs[a:a + chunk]
                s0 = np.full((1, part.shape[0], roles.n_neurons), self.config_.state_init_high / 2)
                s0[..., roles.inputs] = part
                free = sub.run(batch, part, s0, schedule).free
                if np.any(free.diverged):
                    raise DivergenceError(f"DEEPClassifier: the free phase diverged ({free.message})",
                                          phase="free")
                unsettled += int((~np.asarray(free.settled, bool)).sum())
                outs.append(np.asarray(free.outputs)[0])
        finally:
            if own:
                sub.close()
        if unsettled:
            warnings.warn(f"DEEPClassifier: {unsettled} of {inputs.shape[0]} samples had not settled after "
                          f"{schedule.free_duration:g} tau (tolerance {schedule.settle_tol:g}); their "
                          "outputs are read where the free phase ended", NotSettledWarning, stacklevel=3)
        return np.concatenate(outs, axis=0)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(n_samples, n_classes)``: the output states, normalised to sum 1
        (a sample whose outputs are all 0 gets equal probabilities). Columns follow ``classes_``."""
        out = np.clip(self._outputs(X), 0.0, None)
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / out.shape[1])

    def predict(self, X) -> np.ndarray:
        """Class labels: the class of the largest output state (DEEP's argmax readout)."""
        out = self._outputs(X)  # checks that the estimator is fitted first
        return self.classes_[np.argmax(out, axis=1)]


def _substrate(spec: "str | Substrate") -> tuple[Substrate, bool]:
    """The substrate to predict on and whether it is ours to close. A substrate given by name
    that can keep only the phase ends (the ODE's ``record``) is asked to: predict reads only
    the final states."""
    if isinstance(spec, str):
        if ":" not in spec and "record" in substrate_options(spec):
            return get_substrate(spec, record="final"), True
        return get_substrate(spec), True
    return get_substrate(spec), False
