"""The gradient of the loss of a circuit as built, with respect to its programmed weights.

In-situ learning programs weights ``W`` into a chip that realises ``w = quantize(W) * M`` (its
mismatch draw) through its synapses' element law (:mod:`deepcircuit.substrates.chip`), and the
rule updates ``W`` from the chip's own trajectories. The reference a rule's update should follow
is then the gradient of the chip's settled loss with respect to ``W``, not the ideal model's.

The chip's free dynamics for one network and presentation (state units, one free node ``j``):

``F_j(s) = sum_i w_ij f(s_i + o_ij) - [DEEP] sum_k w_jk f(s_j + o_jk) + c_j - (d_j + g_j(w)) s_j``

with ``f(u) = u`` (VCCS) or ``L tanh(u / L)`` (OTA, input offsets ``o``), ``c, d`` the family's
non-synaptic terms and ``g_j = sum |w| / gain`` the OTAs' output conductance at ``j`` (see
``Chip.output_conductance``). The equilibrium is polished by a projected Newton iteration (the
projection holds neurons at a bound; :mod:`.active_set`, the iteration the ideal check uses too),
and the gradient comes from implicit differentiation on the interior set, exactly as the ideal
check (:mod:`.gradient_check`): ``J_II^T lambda = dL/ds_I``,
``dL/dw = -lambda^T dF/dw``, then ``dL/dW = dL/dw * M`` (quantization is passed straight through
inside its range: its true derivative is 0 almost everywhere). A parasitic capacitance scales
``F`` and leaves the equilibrium and the gradient unchanged; noise is not part of the reference.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..model.network import Network, NetworkBatch
from ..substrates import get_substrate
from ..substrates.chip import CONSERVING_FAMILIES, Chip
from .active_set import Equilibria, active_set_equilibria, is_singular
from .finite_differences import central_differences, output_loss, perturbed_networks, settle_schedule


class AsBuilt:
    """The free dynamics of ``network`` on ``chip`` (network index ``first`` of the chip's draw):
    the field, its Jacobian and the gradient with respect to the programmed weights."""

    def __init__(self, network: Network, chip: Chip, first: int = 0) -> None:
        self.network, self.chip = network, chip
        batch = NetworkBatch.of(network)
        N = network.roles.n_neurons
        self.mask = np.asarray(network.mask)
        W = np.asarray(network.weights, dtype=float)
        self.w = chip.effective_weights(W[None], self.mask[None], first)[0]
        ni = chip.nonideal
        inside = np.ones_like(W, dtype=bool) if ni.bits is None else np.abs(W) <= ni.weight_range
        # d w / d W: the mismatch factor, quantization passed straight through inside its range.
        self.dw_dW = np.where(self.mask & inside, ni.mismatch_factors(1, N, first)[0], 0.0)
        self.off = chip.offsets(1, N, first)[0]
        rest = network.family_.linear_form(np.zeros((N, N)), np.asarray(network.bias, dtype=float), network.params)
        self.c, self.d0 = np.asarray(rest.c, dtype=float), np.asarray(rest.d, dtype=float)
        self.cons = 1.0 if network.family in CONSERVING_FAMILIES else 0.0
        self.inv_gain = 1.0 / chip.transconductor.gain if chip.nonlinear else 0.0
        self.g_out = chip.output_conductance(self.w[None], self.mask[None], bool(self.cons))[0]
        self.nx = network.roles.n_inputs
        del batch

    def _law(self, s):
        f, fp = self.chip.synapse_law(s[:, None] + self.off)  # (N_pre, N_post)
        return np.where(self.mask, f, 0.0), np.where(self.mask, fp, 0.0)

    def field(self, s: np.ndarray) -> np.ndarray:
        """``F(s)`` (1/tau, up to the parasitic rate) for one state ``s (N,)``."""
        f, _ = self._law(s)
        cur = self.w * f
        return cur.sum(axis=0) - self.cons * cur.sum(axis=1) + self.c - (self.d0 + self.g_out) * s

    def jacobian(self, s: np.ndarray) -> np.ndarray:
        """``J[j, i] = dF_j / ds_i`` at ``s (N,)``."""
        _, fp = self._law(s)
        g = self.w * fp  # g[i, j] = w_ij f'(s_i + o_ij)
        J = g.T.copy()
        J[np.diag_indices_from(J)] += -self.cons * g.sum(axis=1) - (self.d0 + self.g_out)
        return J

    def weight_gradient(self, s: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """``-lambda^T dF/dW`` (N, N): the gradient with respect to the programmed weights."""
        f, _ = self._law(s)
        sgn = np.sign(self.w) * self.inv_gain
        # w_ij feeds F_j (+f, and -|w| s_j / gain) and, for DEEP, F_i (-f, and -|w| s_i / gain).
        dF_j = f - sgn * s[None, :]
        dF_i = -self.cons * (f + sgn * s[:, None])
        gw = -(lam[None, :] * dF_j + lam[:, None] * dF_i)
        return np.where(self.mask, gw * self.dw_dW, 0.0)


def polish(dyn: AsBuilt, states, *, tol: float = 1e-9, rcond: float = 1e-10, max_iter: int = 60) -> Equilibria:
    """Equilibria of the chip near ``states (P, N)``: projected Newton (see the module docstring)."""
    scale = max(1.0, float(np.abs(dyn.w).max(initial=0.0)))

    def solve_interior(s: np.ndarray, I: np.ndarray) -> bool:
        for _newton in range(50):  # one step for a linear chip
            if not I.size:
                break
            J = dyn.jacobian(s)[np.ix_(I, I)]
            if is_singular(J, rcond):
                return True
            F = dyn.field(s)[I]
            s[I] -= np.linalg.solve(J, F)
            if np.abs(F).max() <= 1e-3 * tol * scale:
                break
        return False

    return active_set_equilibria(states, dyn.nx, dyn.field, solve_interior, tol=tol, scale=scale,
                                 max_iter=max_iter)


def loss_gradient(dyn: AsBuilt, eq, targets) -> tuple[np.ndarray, np.ndarray]:
    """``(dL/dW, dL/db)`` of the chip's settled loss over the usable presentations (as
    :func:`deepcircuit.stability.gradient_check.loss_gradient` for the ideal model)."""
    net = dyn.network
    r = net.roles
    targets = np.asarray(targets, dtype=float)
    P, N = eq.states.shape
    out = np.zeros(N, dtype=bool)
    out[r.outputs] = True
    gW, gc = np.zeros((N, N)), np.zeros(N)
    for p in np.flatnonzero(eq.usable):
        s, I = eq.states[p], np.flatnonzero(eq.interior[p])
        if not I.size:
            continue
        g = np.zeros(N)
        g[out] = s[out] - targets[p]
        lam = np.zeros(N)
        lam[I] = np.linalg.solve(dyn.jacobian(s)[np.ix_(I, I)].T, g[I])
        gW += dyn.weight_gradient(s, lam)
        gc -= lam  # F depends on c = b (EP families) with derivative 1
    gW, gb = gW / P, gc / P
    fam = net.family_
    if fam.symmetric:  # W[i, j] and W[j, i] between free neurons are one parameter
        fr = r.free
        blk = gW[fr, fr]
        gW[fr, fr] = np.where(dyn.mask[fr, fr], blk + blk.T, 0.0)
    gb[: r.n_inputs] = 0.0
    if not fam.has_bias_vector:
        gb[:] = 0.0
    return gW, gb


def ode_twin(chip: Chip):
    """The ODE substrate running ``chip`` without its noise (the deterministic chip)."""
    nonideal = replace(chip.nonideal, noise=0.0, noise_interval=None)
    return get_substrate("ode", units=chip.units, nonideal=nonideal, transconductor=chip.transconductor)


def finite_difference_gradient(network: Network, chip: Chip, eq, targets, entries, *, h: float = 1e-6,
                               settle_steps: int = 4000, dt: float = 0.05) -> np.ndarray:
    """Central finite differences of the chip's settled loss for the programmed weights
    ``entries [(i, j), ...]``: each perturbed network is settled on the chip's ODE twin from
    the unperturbed equilibrium, then polished with the chip's dynamics."""
    r = network.roles
    nets = perturbed_networks(network, entries, h)
    use = eq.usable
    x = eq.states[use][:, : r.n_inputs]
    sched = settle_schedule(dt, settle_steps)
    y = np.asarray(targets, dtype=float)[use]
    losses = []
    # One network at a time: each is network 0 of the chip's draw, as the checked network is.
    for net in nets:
        s0 = eq.states[use][None].copy()
        free = ode_twin(chip).run(NetworkBatch.of(net), x, s0, sched).free.final[0]
        losses.append(output_loss(polish(AsBuilt(net, chip), free).states, r.outputs, y, len(targets)))
    return central_differences(losses, h)
