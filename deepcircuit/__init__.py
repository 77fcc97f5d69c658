"""deepcircuit: DEEP (directed equilibrium propagation) networks on physical substrates.

One network description (:class:`Network`), many substrates (``ode``, and later ``brian2``
and ``spice``), and one learning/pruning/stability code base written against the common
:class:`Trajectory` form.
"""

from .errors import (DeepCircuitError, DeepCircuitWarning, DivergenceError, DivergenceWarning,
                     ForbiddenConnectionError,
                     InvalidInputError, InvalidTypeError, ModelFileError, NotSettledWarning,
                     SimulationError, SubstrateUnavailableError)
from .model.families import FAMILIES, get_family
from .stability.gradient_check import GradientCheck, gradient_check
from .model.network import Network, NetworkBatch
from .model.roles import Roles
from .substrates import Schedule, Substrate, available_substrates, get_substrate, initial_states
from .cli.sweeps.report import load_results as load_sweep_results, wilson_interval, write_sweep_report
from .cli.sweeps.run import run_sweep
from .cli.sweeps.spec import SweepSpec, expand as expand_sweep, load_spec as load_sweep_spec
from .data.tasks import TASKS, Task, get_task
from .data.builtin import BUILTIN_DATASETS
from .data.split import Dataset, load_dataset
from .studies.comparison import compare_predictions
from .learning.training import History, TrainingConfig, TrainingResult, evaluate, predict, train
from .substrates.trajectory import PhaseResult, Trajectory

from .studies.hardware_figures import figures_of_merit

__version__ = "0.1.0"

__all__ = [
    "DeepCircuitError", "DeepCircuitWarning", "DivergenceError", "DivergenceWarning",
    "ForbiddenConnectionError", "InvalidInputError", "InvalidTypeError", "ModelFileError",
    "NotSettledWarning", "SimulationError", "SubstrateUnavailableError", "FAMILIES", "get_family",
    "GradientCheck", "gradient_check",
    "Network", "NetworkBatch", "Roles", "Schedule", "Substrate", "available_substrates",
    "get_substrate", "initial_states", "TASKS", "Task", "get_task", "History", "TrainingConfig",
    "TrainingResult", "evaluate", "train", "PhaseResult", "Trajectory", "__version__",
    "SweepSpec", "expand_sweep", "load_sweep_spec", "run_sweep", "load_sweep_results", "write_sweep_report",
    "wilson_interval",
    "BUILTIN_DATASETS", "Dataset", "load_dataset", "predict", "compare_predictions",
]

# Input safety (issue 10): the size-limit error; the limits themselves are in deepcircuit.limits.
from .errors import LimitExceededError, OutputWriteError  # noqa: E402

__all__ += ["LimitExceededError", "OutputWriteError"]
__all__ += ["figures_of_merit"]
