"""Learning rules, written once against the common trajectory form.

Nothing here runs a simulation or knows which substrate produced a trajectory: the rules read
states from :class:`~deepcircuit.substrates.trajectory.Trajectory` objects and return weight changes.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import InvalidInputError
from ..substrates.trajectory import PhaseResult, Trajectory


def stdp_update(nudged: Trajectory, *, beta0: float = 0.0, beta1: float = 1.0,
                nominal_steps: int | None = None) -> np.ndarray:
    """DEEP's local rule over a nudged trajectory: pre-synaptic activity times post-synaptic change.

    ``dW[i, j] = 1/(P*T2) * sum_p sum_t s_i(t) * (beta0 * s_j(t) + beta1 * (s_j(t) - s_j(t-1)))``
    for samples ``t = 1..M`` of the trajectory. ``T2`` is ``nominal_steps`` (the reference's
    number of Euler steps; default: ``M``). On a grid of ``M != T2`` samples the ``beta1`` sum
    approximates the substrate-independent integral ``int s_i ds_j``, and the ``beta0`` term is
    rescaled by ``T2 / M`` so that it stays a time average.

    A substrate whose synapses measure these sums themselves (a physical accumulator per
    synapse) puts them in ``nudged.meta["synaptic_traces"]`` as a dict with ``"pre_dpost"``
    (``sum_p sum_t s_i(t) (s_j(t) - s_j(t-1))``, shape ``(S, N, N)``), ``"pre_post"``
    (``sum_p sum_t s_i(t) s_j(t)``) and ``"samples"`` (M); the rule then uses those sums
    instead of recomputing them from the states.

    Returns ``dW (S, N, N)`` (dimensionless; the caller multiplies by the learning rate).
    """
    s = nudged.states
    S, P, T, N = s.shape
    if T < 2:
        raise InvalidInputError("The nudged trajectory needs at least two samples for the STDP rule.")
    M = T - 1
    T2 = M if nominal_steps is None else int(nominal_steps)
    traces = nudged.meta.get("synaptic_traces")
    if traces is not None:
        M = int(traces["samples"])
        dW = beta1 * np.asarray(traces["pre_dpost"], dtype=float)
        if beta0 != 0.0:
            dW = dW + beta0 * (T2 / M) * np.asarray(traces["pre_post"], dtype=float)
        return dW / (P * T2)
    pre = s[:, :, 1:, :]
    post = beta1 * (s[:, :, 1:, :] - s[:, :, :-1, :])
    if beta0 != 0.0:
        post = beta0 * (T2 / M) * pre + post
    pre = pre.reshape(S, P * M, N)
    post = post.reshape(S, P * M, N)
    return np.matmul(np.swapaxes(pre, 1, 2), post) / (P * T2)


def stdp2_update(nudged: Trajectory, *, beta0: float = 0.0, beta1: float = 1.0,
                 nominal_steps: int | None = None) -> np.ndarray:
    """DEEP's rule with both endpoints: post-synaptic change minus pre-synaptic change.

    ``dW[i, j] = stdp[i, j] - beta1 * own[i]``, ``own[i]`` the pre-synaptic neuron's
    ``stdp[i, i]`` computed from the states: the ``beta1`` term becomes
    ``sum_t s_i(t) ((s_j(t) - s_j(t-1)) - (s_i(t) - s_i(t-1)))`` (a clamped input's own change
    is 0, so its synapses keep DEEP's update). Still local: synapse i -> j reads only s_i and
    s_j. Why: at a DEEP equilibrium ``-dL/dW[i, j] = s_i (lambda_j - lambda_i)``, since
    W[i, j] is both j's inflow and i's outflow; DEEP's rule has the first term only (see
    ``docs/gradient.md``). Same arguments and units as :func:`stdp_update`.
    """
    dW = stdp_update(nudged, beta0=beta0, beta1=beta1, nominal_steps=nominal_steps)
    # The pre-synaptic neuron's own term sum_t s_i(t) (s_i(t) - s_i(t-1)) (on hardware: one
    # accumulator per neuron): from the substrate's per-neuron sums ("own_dpost") when it keeps
    # them, else from the states. Synaptic traces have no i -> i synapse, so the diagonal of
    # "pre_dpost" is never read; a trajectory thinned to its phase ends cannot give the sum, so
    # that case is refused rather than computed wrong.
    s = nudged.states
    S, P, T, N = s.shape
    traces = nudged.meta.get("synaptic_traces")
    if nominal_steps is not None:
        T2 = int(nominal_steps)
    else:
        T2 = int(traces["samples"]) if traces is not None else T - 1
    if traces is not None and "own_dpost" in traces:
        own = np.asarray(traces["own_dpost"], dtype=float) / (P * T2)
    else:
        if traces is not None and T - 1 != int(traces["samples"]):
            raise InvalidInputError(
                "The stdp2 rule needs every sample of the nudged phase or the substrate's per-neuron "
                "sums ('own_dpost'); this trajectory keeps fewer samples than the rule's sums.")
        own = np.sum(s[:, :, 1:, :] * (s[:, :, 1:, :] - s[:, :, :-1, :]), axis=(1, 2)) / (P * T2)
    return dW - beta1 * own[..., :, None]


def mirror_backward(dW: np.ndarray, n_inputs: int, topology: np.ndarray | None = None) -> np.ndarray:
    """Backward synapses take the update of their forward twin: ``dW[i, j] <- dW[j, i]`` for free
    ``i > j`` (in state order: inputs, hidden, outputs, so output -> hidden is backward).

    ``topology`` (bool, ``(N, N)`` or ``(S, N, N)``), when given, limits this to backward synapses
    whose twin ``j -> i`` the topology has; the others keep their own update (an output's
    connection into the sink neuron of a ``+sink`` topology has no forward twin).

    With the two-endpoint rule this keeps the feedback weights following the forward weights
    (as in Kolen-Pollack learning), so the error that flows back through them keeps pointing the
    right way. Still local: ``dW[j, i]`` reads only s_i and s_j, the two ends of synapse i -> j.
    """
    N = dW.shape[-1]
    idx = np.arange(N)
    back = (idx[:, None] > idx[None, :]) & (idx[None, :] >= n_inputs)
    if topology is not None:
        back = back & np.swapaxes(np.asarray(topology, dtype=bool), -1, -2)
    return np.where(back, np.swapaxes(dW, -1, -2), dW)


def endpoint_update(result: PhaseResult, *, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric EP's rule from the two settled states.

    ``dW = 1/(beta P) sum_p outer(s_free, s_nudged - s_free)``,
    ``db = 1/(beta P) sum_p (s_nudged - s_free)``. Returns ``(dW (S, N, N), db (S, N))``.
    """
    if beta <= 0:
        raise InvalidInputError("The endpoint rule needs beta > 0.")
    s0, sb = result.free.final, _nudged(result).final
    P = s0.shape[1]
    diff = sb - s0
    dW = np.einsum("spi,spj->sij", s0, diff) / (beta * P)
    return dW, diff.sum(axis=1) / (beta * P)


def contrastive_update(result: PhaseResult, *, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric EP's rule: ``dW = 1/(beta P) sum_p (rho_b rho_b^T - rho_0 rho_0^T)``, likewise ``db``."""
    if beta <= 0:
        raise InvalidInputError("The contrastive rule needs beta > 0.")
    r0 = np.clip(result.free.final, 0.0, 1.0)
    rb = np.clip(_nudged(result).final, 0.0, 1.0)
    P = r0.shape[1]
    dW = (np.einsum("spi,spj->sij", rb, rb) - np.einsum("spi,spj->sij", r0, r0)) / (beta * P)
    return dW, (rb - r0).sum(axis=1) / (beta * P)


def _nudged(result: PhaseResult) -> Trajectory:
    if result.nudged is None:
        raise InvalidInputError("This learning rule needs the nudged phase; run with targets.")
    return result.nudged


#: The learning rules by name (the families choose theirs in ``families.py``).
RULES = ("stdp", "stdp2", "stdp2-mirror", "endpoint", "contrastive")


def weight_update(rule: str, result: PhaseResult, settings: Mapping[str, float], *,
                  topology: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The update ``(dW, db)`` of ``rule`` (one of :data:`RULES`).

    ``settings`` provides ``beta`` (nudging), ``beta0``, ``beta1`` and ``nudged_steps``;
    ``topology`` (the networks' topology masks) tells ``stdp2-mirror`` which synapses have a twin.
    """
    if rule == "stdp":
        dW = stdp_update(_nudged(result), beta0=settings["beta0"], beta1=settings["beta1"],
                         nominal_steps=settings["nudged_steps"])
        return dW, np.zeros(dW.shape[:-1])
    if rule in ("stdp2", "stdp2-mirror"):
        nudged = _nudged(result)
        dW = stdp2_update(nudged, beta0=settings["beta0"], beta1=settings["beta1"],
                          nominal_steps=settings["nudged_steps"])
        if rule == "stdp2-mirror":
            dW = mirror_backward(dW, nudged.roles.n_inputs, topology)
        return dW, np.zeros(dW.shape[:-1])
    if rule == "endpoint":
        return endpoint_update(result, beta=settings["beta"])
    if rule == "contrastive":
        return contrastive_update(result, beta=settings["beta"])
    raise InvalidInputError(f"Unknown learning rule {rule!r}; use one of {', '.join(map(repr, RULES))}.")


def apply_update(W: np.ndarray, b: np.ndarray, dW: np.ndarray, db: np.ndarray, mask: np.ndarray, *,
                 eta: "float | np.ndarray", l1: float = 0.0, sign: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """New weights and bias after one update, in the reference's order.

    ``W <- W + eta * (sign(dW) if sign else dW) - l1 * sign(W)``, then the live ``mask`` is
    re-applied so forbidden and pruned connections stay 0. Bias: ``b <- b + eta * db``.
    ``eta`` is a number or one rate per source neuron, shape ``(N, 1)`` (per-layer rates); the
    bias of neuron j then uses neuron j's rate. A leading network axis, ``(S, N, 1)`` or
    ``(S, 1, 1)``, gives each network its own rates.
    """
    step = np.sign(dW) if sign else dW
    reg = -l1 * np.sign(W) if l1 else 0.0
    W_new = np.where(mask, W + eta * step + reg, 0.0)
    eta_b = np.asarray(eta)[..., 0] if np.ndim(eta) else eta  # (N, 1) rows -> (N,) per neuron
    b_new = b + eta_b * (np.sign(db) if sign else db)
    return W_new, b_new
