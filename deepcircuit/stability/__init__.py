"""Stability analysis: one import point for the certificates and the trajectory checks.

* :mod:`deepcircuit.stability.certificates`: from the network alone (Gershgorin conditions), at an
  equilibrium (restricted Jacobian, Hurwitz / marginal / unstable) and the Lyapunov functions
  they certify.
* :mod:`deepcircuit.stability.lyapunov`: V evaluated along any substrate's trajectory, and the epoch
  callback that records certificates during training.

See ``docs/stability.md`` for what each certificate means, with a worked example.

Layer: stability. Lives here: :mod:`.certificates`, :mod:`.lyapunov`,
:mod:`.gradient_check`. May import: bottom, model, data, substrates and learning. Never
studies or cli (tests/test_layers.py checks this).
"""

from .certificates import (CONDITIONS, Condition, Contraction, EquilibriumAnalysis, Gershgorin, LyapunovFunction,
                           analyse_equilibria, analyse_equilibrium, batch_abscissae, contraction, free_jacobian,
                           gershgorin, gershgorin_margins, held_neurons, lyapunov_function,
                           quadratic_form)
from .lyapunov import (RECORDED, PresentationCheck, TrajectoryCheck, certificate_recorder, check_phases,
                       check_trajectory, evaluate_series, StabilityVerdict, stability_verdict)

__all__ = ["CONDITIONS", "Condition", "Contraction", "contraction", "EquilibriumAnalysis", "Gershgorin", "LyapunovFunction",
           "analyse_equilibria", "analyse_equilibrium", "batch_abscissae", "free_jacobian",
           "gershgorin", "gershgorin_margins", "held_neurons", "lyapunov_function", "quadratic_form",
           "RECORDED", "PresentationCheck", "TrajectoryCheck", "certificate_recorder", "check_phases",
           "check_trajectory", "evaluate_series", "StabilityVerdict", "stability_verdict"]
