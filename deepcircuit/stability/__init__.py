"""Stability analysis: one import point for the certificates and the trajectory checks.

* :mod:`deepcircuit.stability.certificates`: from the network alone (Gershgorin conditions,
  contraction in a weighted 1-norm).
* :mod:`deepcircuit.stability.equilibrium`: at an equilibrium (restricted Jacobian, Hurwitz /
  marginal / unstable).
* :mod:`deepcircuit.stability.lyapunov_functions`: the Lyapunov functions those certify.
* :mod:`deepcircuit.stability.lyapunov`: V evaluated along any substrate's trajectory, and the epoch
  callback that records certificates during training.

See ``docs/stability.md`` for what each certificate means, with a worked example.

Layer: stability. Lives here: the modules above, :mod:`.gradient_check` (the ideal gradient
reference and each rule's alignment), :mod:`.as_built` (the circuit-as-built reference),
:mod:`.active_set` (the equilibrium polish both share) and :mod:`.finite_differences`. May import:
bottom, model, data, substrates and learning. Never studies or cli (tests/test_layers.py checks
this).
"""

from .certificates import (CONDITIONS, Condition, Contraction, Gershgorin, contraction, free_jacobian, gershgorin,
                           gershgorin_margins)
from .equilibrium import EquilibriumAnalysis, analyse_equilibria, analyse_equilibrium, batch_abscissae, held_neurons
from .lyapunov_functions import LyapunovFunction, lyapunov_function, quadratic_form
from .lyapunov import (RECORDED, PresentationCheck, TrajectoryCheck, certificate_recorder, check_phases,
                       check_trajectory, evaluate_series, StabilityVerdict, stability_verdict)

__all__ = ["CONDITIONS", "Condition", "Contraction", "contraction", "EquilibriumAnalysis", "Gershgorin", "LyapunovFunction",
           "analyse_equilibria", "analyse_equilibrium", "batch_abscissae", "free_jacobian",
           "gershgorin", "gershgorin_margins", "held_neurons", "lyapunov_function", "quadratic_form",
           "RECORDED", "PresentationCheck", "TrajectoryCheck", "certificate_recorder", "check_phases",
           "check_trajectory", "evaluate_series", "StabilityVerdict", "stability_verdict"]
