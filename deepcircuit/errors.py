"""Exception and warning classes of deepcircuit.

Every error the package raises on purpose derives from :class:`DeepCircuitError`, so a
caller can catch them all at once. Bad input raises a subclass that is also a ``ValueError``
or ``TypeError``, so generic handlers keep working.
"""

from __future__ import annotations


class DeepCircuitError(Exception):
    """Root of every error deepcircuit raises on purpose."""


class InvalidInputError(DeepCircuitError, ValueError):
    """An argument has the right type but a value that is not allowed."""


class InvalidTypeError(DeepCircuitError, TypeError):
    """An argument has a type that is not allowed."""


class ForbiddenConnectionError(InvalidInputError):
    """A topology asks for a connection the model forbids (self-loop, into an input)."""


class LimitExceededError(InvalidInputError):
    """An input asks for more than a documented size limit (:mod:`deepcircuit.limits`)."""


class ModelFileError(DeepCircuitError, ValueError):
    """A model file is missing, corrupt, foreign, or of an unsupported version."""


class OutputWriteError(DeepCircuitError, OSError):
    """A result file could not be written (disk full, no permission); the message names it."""


class SubstrateUnavailableError(DeepCircuitError, ImportError):
    """A substrate's simulator (Brian2, PySpice/ngspice) is not installed or is broken."""


class SimulationError(DeepCircuitError, RuntimeError):
    """A simulator failed to produce a trajectory (convergence failure, crash)."""


class DivergenceError(SimulationError, ArithmeticError):
    """A simulation or a training run blew up (non-finite or runaway values).

    Attributes
    ----------
    phase : str
        ``"free"``, ``"nudged"`` or ``"update"`` (the weight update).
    epoch : int or None
        The training epoch (0-based) in which it happened, if known.
    magnitude : float
        The largest absolute value seen (``inf`` for non-finite values).
    """

    def __init__(self, message: str, *, phase: str, epoch: int | None = None,
                 magnitude: float = float("inf")) -> None:
        super().__init__(message)
        self.phase = phase
        self.epoch = epoch
        self.magnitude = magnitude


class DeepCircuitWarning(UserWarning):
    """Root of the warnings deepcircuit issues."""


class NotSettledWarning(DeepCircuitWarning):
    """A phase ended before the state reached equilibrium within the tolerance."""


class DivergenceWarning(DeepCircuitWarning):
    """A network of a training batch diverged; it is frozen and reported, the others go on."""
