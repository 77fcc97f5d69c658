"""Training tasks: logic functions with the bias input, as in the reference.

Inputs carry the bias neuron as their last column (XOR/AND/OR: ``[x0, x1, 1]``; NOT and
identity: ``[x, 1]``). Binary tasks have one output read by threshold (> 0.5 means 1); the
``-onehot`` versions have one output per class, read by argmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError


@dataclass(frozen=True, eq=False)
class Task:
    """A supervised task: presentations ``inputs (P, n_inputs)`` and ``targets (P, n_outputs)``.

    ``readout`` is ``"threshold"`` (output > 0.5 means 1) or ``"argmax"`` (one-hot classes).
    ``split`` says which part of a data set these presentations are (``train``, ``validation``,
    ``test``), or ``all`` for a logic task, whose one table is both train and test set.
    """

    name: str
    inputs: np.ndarray
    targets: np.ndarray
    readout: str
    split: str = "all"

    def subset(self, index) -> "Task":
        """The presentations ``index`` (indices, slice or mask) as a Task of the same split."""
        return Task(self.name, self.inputs[index], self.targets[index], self.readout, self.split)

    @property
    def n_inputs(self) -> int:
        """Number of input neurons including the bias."""
        return self.inputs.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.targets.shape[1]

    @property
    def n_presentations(self) -> int:
        return self.inputs.shape[0]

    def predict(self, outputs: np.ndarray) -> np.ndarray:
        """Class labels from output states ``(..., P, n_outputs)``: bits, or class indices."""
        outputs = np.asarray(outputs)
        if self.readout == "threshold":
            return (outputs > 0.5).astype(int)
        return np.argmax(outputs, axis=-1)

    @property
    def labels(self) -> np.ndarray:
        """Target labels in the form :meth:`predict` returns."""
        return self.predict(self.targets)

    def error(self, outputs: np.ndarray) -> np.ndarray:
        """Classification error over presentations (fraction wrong), shape ``outputs.shape[:-2]``."""
        pred = self.predict(outputs)
        wrong = pred != self.labels
        if self.readout == "threshold":
            wrong = wrong.any(axis=-1)
        return wrong.mean(axis=-1)

    def mse(self, outputs: np.ndarray) -> np.ndarray:
        """Reference MSE: ``sum over outputs of (s - y)^2 / 2``, averaged over presentations."""
        d = np.asarray(outputs) - self.targets
        return 0.5 * np.sum(d * d, axis=-1).mean(axis=-1)


def _two_input(name: str, fn) -> Task:
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([[fn(a, b)] for a, b in x.astype(int)], dtype=float)
    return Task(name, np.hstack([x, np.ones((4, 1))]), y, "threshold")


def _one_input(name: str, fn) -> Task:
    x = np.array([[0], [1]], dtype=float)
    y = np.array([[fn(a)] for a in x[:, 0].astype(int)], dtype=float)
    return Task(name, np.hstack([x, np.ones((2, 1))]), y, "threshold")


def _onehot(task: Task) -> Task:
    k = task.targets[:, 0].astype(int)
    return Task(task.name + "-onehot", task.inputs, np.eye(2)[k], "argmax")


_BINARY = {
    "and": _two_input("and", lambda a, b: a & b),
    "or": _two_input("or", lambda a, b: a | b),
    "xor": _two_input("xor", lambda a, b: a ^ b),
    "not": _one_input("not", lambda a: 1 - a),
    "identity": _one_input("identity", lambda a: a),
}
TASKS: dict[str, Task] = dict(_BINARY)
TASKS.update({k + "-onehot": _onehot(t) for k, t in _BINARY.items()})


def get_task(name: "str | Task") -> Task:
    """The task called ``name`` (``and``, ``or``, ``xor``, ``not``, ``identity``, ``<name>-onehot``)."""
    if isinstance(name, Task):
        return name
    try:
        return TASKS[str(name).lower()]
    except KeyError:
        raise InvalidInputError(
            f"Unknown task {name!r}; use one of {', '.join(map(repr, TASKS))}.") from None
