"""Evaluating trained networks: :func:`evaluate` (free-phase trajectories and scores),
:func:`predict` (labels of a whole split) and :func:`check_task_fits` (a task's widths against
a network's), shared by training, model files and the commands.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int
from ..errors import InvalidInputError
from ..model.network import NetworkBatch
from ..model.roles import Roles
from ..data.split import Dataset, load_dataset
from ..substrates import Schedule, Substrate, get_substrate, initial_states
from ..data.tasks import Task
from .steps import evaluate_split

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

