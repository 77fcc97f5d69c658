"""The chip's element laws as the ODE substrate integrates them (see :mod:`.chip`).

The ODE substrate runs a chip (:class:`~deepcircuit.substrates.chip.Chip`) with the laws the
netlist uses, so ``ode:mismatch=0.3;seed=1`` is the chip ``spice:mismatch=0.3;seed=1`` simulates:

* VCCS synapses (linear): the realised weights ``quantize(W) * M`` replace ``W`` in the family's
  linear form ``ds = s @ A + c - d * s``, so the fast Euler engines (numba, BLAS) run unchanged.
* OTA synapses (nonlinear): the current of synapse ``i -> j`` is ``w L tanh((s_i + o_ij) / L)``,
  plus the OTAs' lumped output conductance at each node; :func:`ota_chunk` is the compiled Euler
  loop over the synapses (same projection, settling test and early stop as the linear engines).
* Parasitic capacitance slows every free node by ``C / (C + C_par)`` (:attr:`Chip.rate`): every
  current, the nudge's included, is divided by the larger capacitance.

The clamp stays the exact projection onto [0, 1]; noise is refused by the substrate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.network import NetworkBatch
from .chip import CONSERVING_FAMILIES, Chip

try:  # numba is a declared dependency
    from numba import njit
except ImportError:  # pragma: no cover - broken installs only
    njit = None


@dataclass(frozen=True)
class ChipLaw:
    """A batch's dynamics on a chip, ready for the integrators.

    ``form`` (linear chips): the family's ``LinearForm`` at the realised weights, every term
    scaled by ``rate``. OTA chips: ``form`` is None and the synapses are listed per network
    (``pre``, ``post`` (S, E) int, ``weight`` (S, E) realised weights times ``rate``, 0 on
    padding, ``offset`` (S, E) in units of ``V_scale``) with ``c``, ``d`` (S, N) the non-synaptic
    terms and the output conductance, times ``rate``. ``rate`` also scales the nudge.
    """

    chip: Chip
    rate: float
    form: object = None
    pre: np.ndarray | None = None
    post: np.ndarray | None = None
    weight: np.ndarray | None = None
    offset: np.ndarray | None = None
    c: np.ndarray | None = None
    d: np.ndarray | None = None
    conserving: bool = True
    linear_range: float = 1.0

    @property
    def nonlinear(self) -> bool:
        return self.form is None

    def velocity(self, s: np.ndarray) -> np.ndarray:
        """Unbounded ``ds/dt`` (1/tau) of states ``s (S, P, N)`` without the nudge (numpy)."""
        if self.form is not None:
            f = self.form
            return np.einsum("spi,sij->spj", s, f.A) + f.c[:, None, :] - f.d[:, None, :] * s
        S, P, N = s.shape
        v = self.c[:, None, :] - self.d[:, None, :] * s
        L = self.linear_range
        for k in range(S):
            cur = self.weight[k] * L * np.tanh((s[k][:, self.pre[k]] + self.offset[k]) / L)  # (P, E)
            post = np.zeros((P, N))
            np.add.at(post, (slice(None), self.post[k]), cur)
            if self.conserving:
                np.add.at(post, (slice(None), self.pre[k]), -cur)
            v[k] += post
        return v


def chip_law(chip: Chip, batch: NetworkBatch, first: int = 0) -> ChipLaw:
    """The dynamics of ``batch`` on ``chip`` (network ``k`` is network ``first + k`` of the draw)."""
    family = batch.family_
    W_eff = chip.effective_weights(batch.weights, batch.mask, first)
    rate = chip.rate
    if not chip.nonlinear:
        f = family.linear_form(W_eff, batch.bias, batch.params)
        if rate != 1.0:
            f = type(f)(A=f.A * rate, c=f.c * rate, d=f.d * rate)
        return ChipLaw(chip, rate, form=f)
    conserving = batch.family in CONSERVING_FAMILIES
    S, N = len(batch), batch.roles.n_neurons
    rest = family.linear_form(np.zeros_like(W_eff), batch.bias, batch.params)  # bias, decay, leak
    c = np.broadcast_to(rest.c, (S, N)).astype(float)
    d = np.broadcast_to(rest.d, (S, N)) + chip.output_conductance(W_eff, batch.mask, conserving)
    offsets = chip.offsets(S, N, first)
    edges = [np.argwhere(batch.mask[k]) for k in range(S)]
    E = max(1, max(len(e) for e in edges))
    pre = np.zeros((S, E), dtype=np.int64)
    post = np.zeros((S, E), dtype=np.int64)
    weight = np.zeros((S, E))
    offset = np.zeros((S, E))
    for k, e in enumerate(edges):
        n = len(e)
        pre[k, :n], post[k, :n] = e[:, 0], e[:, 1]
        weight[k, :n] = W_eff[k, e[:, 0], e[:, 1]] * rate
        offset[k, :n] = offsets[k, e[:, 0], e[:, 1]]
    return ChipLaw(chip, rate, pre=pre, post=post, weight=weight, offset=offset,
                   c=np.ascontiguousarray(c * rate), d=np.ascontiguousarray(d * rate), conserving=conserving,
                   linear_range=chip.transconductor.linear_range)


def _project_step(xl, v, n_in, N, dt):
    """One projected Euler step ``xl[j] <- clip(xl[j] + dt * v[j], 0, 1)`` of the free neurons
    ``n_in..N-1``, in place; returns ``max |ds/dt|`` of the projected motion (1/tau; NaN wins, so
    a diverged state is never taken for settled). Shared by ``ode._euler_chunk`` and the OTA loop,
    inlined by numba."""
    sp = 0.0
    for j in range(n_in, N):
        nx = xl[j] + dt * v[j]
        if nx < 0.0:
            nx = 0.0
        elif nx > 1.0:
            nx = 1.0
        moved = abs(nx - xl[j]) / dt
        if moved > sp or moved != moved:
            sp = moved
        xl[j] = nx
    return sp


project_step = njit(cache=True, nogil=True, inline="always")(_project_step) if njit is not None else _project_step


def _ota_chunk(pre, post, weight, offset, L, conserving, c, d, beta_vec, y_full, n_in, x, t0, K, dt, tol,
               stop_early, done, speed, buf, store):
    """Up to ``K`` projected Euler steps of OTA synapses for every (network, presentation).

    Arguments and results as ``ode._euler_chunk`` (``x`` advanced in place, ``buf``, ``done``,
    ``speed``); the inflow is the sum over the synapses ``pre[s, e] -> post[s, e]`` of
    ``weight * L * tanh((s_pre + offset) / L)`` (padding has weight 0), taken out of the
    presynaptic node too when ``conserving``; ``c``, ``d`` (S, N) the other terms.
    """
    S, P, N = x.shape
    E = pre.shape[1]
    v = np.empty(N)
    xl = np.empty(N)
    for s in range(S):
        for p in range(P):
            for n in range(N):
                xl[n] = x[s, p, n]
            if store:
                for n in range(N):
                    buf[s, p, 0, n] = xl[n]
            k0 = 0
            if done[s, p] < 0:
                for t in range(K):
                    for j in range(N):
                        v[j] = c[s, j] - xl[j] * d[s, j] + beta_vec[j] * (y_full[p, j] - xl[j])
                    for e in range(E):
                        w = weight[s, e]
                        if w != 0.0:
                            i = pre[s, e]
                            cur = w * L * np.tanh((xl[i] + offset[s, e]) / L)
                            v[post[s, e]] += cur
                            if conserving:
                                v[i] -= cur
                    sp = project_step(xl, v, n_in, N, dt)
                    if store:
                        for n in range(N):
                            buf[s, p, t + 1, n] = xl[n]
                    speed[s, p] = sp
                    k0 = t + 1
                    if stop_early and sp < tol:
                        done[s, p] = t0 + t + 1
                        break
            if store:
                for t in range(k0, K):
                    for n in range(N):
                        buf[s, p, t + 1, n] = xl[n]
            for n in range(N):
                x[s, p, n] = xl[n]


ota_chunk = njit(cache=True, nogil=True)(_ota_chunk) if njit is not None else _ota_chunk
