"""deepcircuit: DEEP (directed equilibrium propagation) networks on physical substrates.

One network description (:class:`Network`), many substrates (``ode``, and later ``brian2``
and ``spice``), and one learning/pruning/stability code base written against the common
:class:`Trajectory` form.

The public names below are imported on first use (PEP 562), not when the package is: the
command line (``deepcircuit``, ``python -m deepcircuit``) imports this package before its
``main`` can catch anything, and importing numpy, scipy and numba takes a second or more, so
a Ctrl-C in that second ended in a traceback and exit status -2 instead of the one
"interrupted" line and 130. ``from deepcircuit import Network`` and ``deepcircuit.Network``
work as before.
"""

from __future__ import annotations

import importlib

from .errors import (DeepCircuitError, DeepCircuitWarning, DivergenceError, DivergenceWarning,
                     ForbiddenConnectionError,
                     InvalidInputError, InvalidTypeError, ModelFileError, NotSettledWarning,
                     SimulationError, SubstrateUnavailableError)
# Input safety (issue 10): the size-limit error; the limits themselves are in deepcircuit.limits.
from .errors import LimitExceededError, OutputWriteError

__version__ = "0.1.0"

#: Public name -> (module relative to this package, attribute in it), imported on first use.
_LAZY = {
    "FAMILIES": (".model.families", "FAMILIES"),
    "get_family": (".model.families", "get_family"),
    "GradientCheck": (".stability.gradient_check", "GradientCheck"),
    "gradient_check": (".stability.gradient_check", "gradient_check"),
    "Network": (".model.network", "Network"),
    "NetworkBatch": (".model.network", "NetworkBatch"),
    "Roles": (".model.roles", "Roles"),
    "Schedule": (".substrates", "Schedule"),
    "Substrate": (".substrates", "Substrate"),
    "available_substrates": (".substrates", "available_substrates"),
    "get_substrate": (".substrates", "get_substrate"),
    "initial_states": (".substrates", "initial_states"),
    "load_sweep_results": (".studies.sweep.report", "load_results"),
    "wilson_interval": (".studies.sweep.report", "wilson_interval"),
    "write_sweep_report": (".studies.sweep.report", "write_sweep_report"),
    "run_sweep": (".studies.sweep.run", "run_sweep"),
    "SweepSpec": (".studies.sweep.spec", "SweepSpec"),
    "expand_sweep": (".studies.sweep.spec", "expand"),
    "load_sweep_spec": (".studies.sweep.spec", "load_spec"),
    "TASKS": (".data.tasks", "TASKS"),
    "Task": (".data.tasks", "Task"),
    "get_task": (".data.tasks", "get_task"),
    "BUILTIN_DATASETS": (".data.builtin", "BUILTIN_DATASETS"),
    "Dataset": (".data.split", "Dataset"),
    "load_dataset": (".data.split", "load_dataset"),
    "compare_predictions": (".studies.comparison", "compare_predictions"),
    "History": (".learning.results", "History"),
    "TrainingConfig": (".learning.config", "TrainingConfig"),
    "TrainingResult": (".learning.results", "TrainingResult"),
    "evaluate": (".learning.evaluation", "evaluate"),
    "predict": (".learning.evaluation", "predict"),
    "train": (".learning.training", "train"),
    "DEEPClassifier": (".learning.estimator", "DEEPClassifier"),
    "tune": (".studies.tune", "tune"),
    "TuneResult": (".studies.tune", "TuneResult"),
    "PhaseResult": (".substrates.trajectory", "PhaseResult"),
    "Trajectory": (".substrates.trajectory", "Trajectory"),
    "figures_of_merit": (".studies.hardware_figures", "figures_of_merit"),
}

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
    "LimitExceededError", "OutputWriteError", "figures_of_merit", "DEEPClassifier",
    "tune", "TuneResult",
]


#: Subpackages, which ``deepcircuit.<name>`` reached after a plain ``import deepcircuit``.
_SUBPACKAGES = ("model", "data", "substrates", "learning", "stability", "studies", "cli", "limits",
                "atomic_files")


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))
