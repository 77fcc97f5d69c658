"""What every substrate provides, and the schedule of a presentation.

A substrate compiles a :class:`~deepcircuit.model.network.NetworkBatch` into its own simulator and
returns :class:`~deepcircuit.substrates.trajectory.Trajectory` objects. The learning rule, metrics and
stability checks only ever see those trajectories.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .._validation import check_array, check_int, check_real
from ..errors import InvalidInputError
from ..limits import check_limit, check_state_size
from ..model.network import NetworkBatch
from ..model.roles import Roles
from .trajectory import PhaseResult


@dataclass(frozen=True)
class Schedule:
    """Time plan of one presentation, in units of tau.

    Parameters
    ----------
    dt : float
        Euler step (projected Euler substrates) or sampling interval of the returned trajectory
        (tau). The reference uses 0.05.
    free_steps, nudged_steps : int
        Length of each phase in steps of ``dt`` (T1 and T2 of the reference).
    beta : float
        Nudging strength (1/tau): outputs get ``+beta * (y - s)`` in the nudged phase (negative:
        pushed away from the target, for the symmetric-nudge estimate).
    settle_tol : float
        A state is settled when ``max |ds/dt|`` (1/tau) over the free neurons is below this.
    stop_at_equilibrium : bool
        End a phase early once every (network, presentation) is settled. Off in the reference.
    """

    dt: float = 0.05
    free_steps: int = 1000
    nudged_steps: int = 1000
    beta: float = 10.0
    settle_tol: float = 1e-4
    stop_at_equilibrium: bool = False

    def __post_init__(self) -> None:
        check_real("dt", self.dt, low=0.0, low_open=True)
        check_int("free_steps", self.free_steps, low=1)
        check_int("nudged_steps", self.nudged_steps, low=0)
        check_limit("free_steps", self.free_steps, "MAX_PHASE_STEPS")
        check_limit("nudged_steps", self.nudged_steps, "MAX_PHASE_STEPS")
        # A negative beta (outputs pushed away from the target) is allowed: the symmetric-nudge
        # estimate of the gradient check runs phases at +beta and -beta.
        check_real("beta", self.beta)
        check_real("settle_tol", self.settle_tol, low=0.0, low_open=True)

    @property
    def free_duration(self) -> float:
        """Length of the free phase (tau)."""
        return self.dt * self.free_steps

    @property
    def nudged_duration(self) -> float:
        """Length of the nudged phase (tau)."""
        return self.dt * self.nudged_steps


def initial_states(rng: np.random.Generator, n_networks: int, inputs: np.ndarray, roles: Roles,
                   high: float = 0.1) -> np.ndarray:
    """Initial states ``(S, P, N)``: inputs clamped, every other neuron ``~ Uniform(0, high)``."""
    inputs = np.asarray(inputs, dtype=float)
    P = inputs.shape[0]
    s = np.empty((n_networks, P, roles.n_neurons))
    s[..., roles.free] = rng.uniform(0.0, high, size=(n_networks, P, roles.n_neurons - roles.n_inputs))
    s[..., roles.inputs] = inputs
    return s


def check_run_arguments(batch: NetworkBatch, inputs, initial, targets, schedule: "Schedule | None" = None):
    """Validate the arguments of :meth:`Substrate.run`; return them as float arrays.

    With ``schedule``, also check that the trajectories fit in ``limits.MAX_STATE_BYTES``
    before anything is allocated. Returns ``(inputs (P, n_inputs), initial (S, P, N) with inputs clamped, targets or None)``.
    """
    roles = batch.roles
    inputs = check_array("inputs", inputs, shape=(None, None))
    if inputs.shape[1] != roles.n_inputs:
        raise InvalidInputError(
            f"The 'inputs' have {inputs.shape[1]} columns but the network has {roles.n_inputs} input "
            f"neurons (bias included); give one column per input and a last column of ones for the bias.")
    if not np.allclose(inputs[:, -1], 1.0):
        raise InvalidInputError("The last input column is the bias neuron and must be 1 for every presentation.")
    if np.any((inputs < 0) | (inputs > 1)):
        raise InvalidInputError("Inputs must lie in [0, 1] (states are bounded to [0, 1]).")
    P = inputs.shape[0]
    if P == 0:  # every substrate would otherwise fail deep inside (ngspice: no parts to join)
        raise InvalidInputError("The 'inputs' have no rows: a run needs at least one presentation.")
    if schedule is not None:
        check_state_size(len(batch), P, max(schedule.free_steps, schedule.nudged_steps), roles.n_neurons)
    initial = check_array("initial", initial, shape=(len(batch), P, roles.n_neurons))
    initial = initial.copy()
    initial[..., roles.inputs] = inputs
    if targets is not None:
        targets = check_array("targets", targets, shape=(P, roles.n_outputs))
    return inputs, initial, targets


class Substrate(ABC):
    """A simulator that runs a batch of networks and returns common trajectories.

    Subclasses set :attr:`name` and implement :meth:`run`. Options go to ``__init__`` as
    keyword arguments and are only stored there; compilation happens in :meth:`run` (and is
    cached across calls when the network structure is unchanged).
    """

    name: ClassVar[str]

    @abstractmethod
    def run(self, networks: NetworkBatch, inputs: np.ndarray, initial: np.ndarray,
            schedule: Schedule, *, targets: np.ndarray | None = None) -> PhaseResult:
        """Run the free phase, then (if ``targets`` is given) the nudged phase from its end.

        Parameters
        ----------
        networks : NetworkBatch
            S networks sharing roles and family.
        inputs : array (P, n_inputs)
            Clamped input values per presentation, bias column last (dimensionless).
        initial : array (S, P, N)
            Initial states; the input columns are overwritten by ``inputs``.
        schedule : Schedule
            Step, phase lengths, nudging strength, settling tolerance.
        targets : array (P, n_outputs), optional
            Targets of the nudged phase; without them only the free phase runs.
        """

    def close(self) -> None:
        """Release simulator resources (processes, shared libraries). Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
