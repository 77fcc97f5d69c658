"""What a training returns: :class:`TrainingResult` (per seed: network, score) and the
per-epoch :class:`History` of each network (saved in model files as its dict form).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..model.network import Network
from ..data.split import Dataset
from ..data.tasks import Task
from .config import TrainingConfig

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
    """What :func:`~deepcircuit.learning.training.train` returns: one trained network, history and
    final score per seed."""

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
