"""Neuron roles: which neurons are inputs (with the bias), hidden, and outputs.

The state vector is ordered ``[inputs..., bias, hidden..., outputs...]``: the first
``n_inputs`` neurons are clamped inputs, the last of them being the bias neuron fixed at 1.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from .._validation import check_int
from ..errors import InvalidInputError


@dataclass(frozen=True)
class Roles:
    """Sizes of the neuron groups of one network.

    Parameters
    ----------
    n_inputs : int
        Number of clamped input neurons *including* the bias neuron (XOR: 3 = x0, x1, bias).
    hidden : tuple of int
        Sizes of the hidden layers. A complete graph ignores the split into layers; a layered
        topology connects adjacent layers only.
    n_outputs : int
        Number of output neurons (the nudged ones).
    """

    n_inputs: int
    hidden: tuple[int, ...]
    n_outputs: int

    def __post_init__(self) -> None:
        check_int("n_inputs", self.n_inputs, low=2)
        check_int("n_outputs", self.n_outputs, low=1)
        hidden = tuple(self.hidden) if not isinstance(self.hidden, int) else (self.hidden,)
        for h in hidden:
            check_int("hidden", h, low=0)
        if any(h == 0 for h in hidden) and len(hidden) > 1:
            raise InvalidInputError(f"The 'hidden' parameter must not contain empty layers; got {hidden}.")
        hidden = tuple(h for h in hidden if h > 0)
        object.__setattr__(self, "hidden", hidden)

    @property
    def n_hidden(self) -> int:
        """Total number of hidden neurons."""
        return sum(self.hidden)

    @property
    def n_neurons(self) -> int:
        """Total number of neurons N (inputs with bias, hidden, outputs)."""
        return self.n_inputs + self.n_hidden + self.n_outputs

    @property
    def bias_index(self) -> int:
        """Index of the bias neuron (the last input)."""
        return self.n_inputs - 1

    @property
    def inputs(self) -> slice:
        """Slice of the clamped neurons (inputs and bias)."""
        return slice(0, self.n_inputs)

    @property
    def free(self) -> slice:
        """Slice of the neurons that move (hidden and outputs)."""
        return slice(self.n_inputs, self.n_neurons)

    @property
    def outputs(self) -> slice:
        """Slice of the output neurons."""
        return slice(self.n_neurons - self.n_outputs, self.n_neurons)

    @property
    def layers(self) -> list[range]:
        """Neuron indices per layer: inputs (with bias), each hidden layer, outputs."""
        bounds = [0, self.n_inputs]
        for h in self.hidden:
            bounds.append(bounds[-1] + h)
        bounds.append(self.n_neurons)
        return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]

    @property
    def names(self) -> list[str]:
        """Readable neuron names: ``x0.., bias, h0.., y0..``; used in netlists and plots."""
        names = [f"x{i}" for i in range(self.n_inputs - 1)] + ["bias"]
        names += [f"h{i}" for i in range(self.n_hidden)]
        names += [f"y{i}" for i in range(self.n_outputs)]
        return names

    def index_of(self, name: str | int) -> int:
        """Index of a neuron given by index or by its name from :attr:`names`."""
        if isinstance(name, numbers.Integral) and not isinstance(name, bool):
            if not 0 <= name < self.n_neurons:
                raise InvalidInputError(
                    f"Neuron index {name} is out of range; this network has neurons 0..{self.n_neurons - 1}.")
            return int(name)
        names = self.names
        if name not in names:
            raise InvalidInputError(f"Unknown neuron {name!r}; neurons are {', '.join(names)}.")
        return names.index(name)

    def to_dict(self) -> dict:
        """Plain-JSON form, for model files."""
        return {"n_inputs": self.n_inputs, "hidden": list(self.hidden), "n_outputs": self.n_outputs}

    @classmethod
    def from_dict(cls, d: dict) -> "Roles":
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["n_inputs"]), tuple(int(h) for h in d["hidden"]), int(d["n_outputs"]))
