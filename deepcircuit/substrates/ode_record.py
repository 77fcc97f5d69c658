"""What the ODE substrate keeps of a phase (``record``): samples, and the DEEP rule's sums.

``record="full"`` keeps every Euler step; ``"final"`` the first and last state of each phase; an
integer ``k`` every k-th step and the last. Other than ``"full"``, the nudged phase carries the
rule's sums, accumulated chunk by chunk while integrating (:class:`Recorder`), so the rule is
exact without the trajectory (the contract of :func:`deepcircuit.learning.rule.stdp_update`).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_choice
from ..errors import InvalidInputError


def check_record(record) -> "str | int":
    """Validate ``record``: ``"full"``, ``"final"`` or a positive integer (keep every k-th step)."""
    if isinstance(record, str):
        return check_choice("record", record, ("full", "final"))
    if isinstance(record, (int, np.integer)) and not isinstance(record, bool) and record >= 1:
        return int(record)
    raise InvalidInputError(
        f"The 'record' option must be 'full', 'final' or a positive integer k (keep every k-th step); got {record!r}.")


class Recorder:
    """Consumes consecutive chunks of Euler steps; keeps the samples asked for and the STDP sums.

    A chunk is ``buf (S, P, k+1, N)`` with ``buf[:, :, 0]`` the state at step ``t0`` (already seen)
    and ``buf[:, :, m]`` the state at ``t0 + m``. ``every`` is 0 for "first and last only".
    The sums restricted to free neurons are matrix products over the whole chunk (one BLAS call
    per chunk, not per step); the rows and columns of the clamped inputs follow in closed form.
    """

    def __init__(self, x0, n_in, every, traces):
        self.x0 = x0.copy()
        self.n_in = n_in
        self.every = every
        self.samples = [(0, self.x0)]
        self.traces = traces
        S, P, N = x0.shape
        F = N - n_in
        if traces:
            self.pre_dpost = np.zeros((S, F, F))
            self.pre_post = np.zeros((S, F, F))
            self.total = np.zeros((S, P, F))  # sum over steps of the free states

    def add(self, buf, t0, k):
        if k <= 0:
            return
        if self.every:
            first = -(-max(t0 + 1, 1) // self.every) * self.every
            for t in range(first, t0 + k + 1, self.every):
                self.samples.append((t, buf[:, :, t - t0].copy()))
        if self.traces:
            S, P, _, N = buf.shape
            F = N - self.n_in
            pre = np.ascontiguousarray(buf[:, :, 1:k + 1, self.n_in:]).reshape(S, P * k, F)
            prev = buf[:, :, 0:k, self.n_in:].reshape(S, P * k, F)
            preT = np.swapaxes(pre, 1, 2)
            self.pre_dpost += np.matmul(preT, pre - prev)
            self.pre_post += np.matmul(preT, pre)
            self.total += pre.reshape(S, P, k, F).sum(axis=2)

    def finish(self, x_end, M):
        """``(steps (T,), states (S, P, T, N), traces or None)`` for a phase that ended at step M."""
        if self.samples[-1][0] != M:
            self.samples.append((M, x_end.copy()))
        steps = np.array([t for t, _ in self.samples])
        states = np.stack([x for _, x in self.samples], axis=2)
        if not self.traces:
            return steps, states, None
        n = self.n_in
        S, P, N = self.x0.shape
        xin = self.x0[:, :, :n]
        pre_dpost = np.zeros((S, N, N))
        pre_post = np.zeros((S, N, N))
        pre_dpost[:, n:, n:] = self.pre_dpost
        # s_i(t) of an input is constant, so sum_t s_i (s_j(t) - s_j(t-1)) telescopes.
        pre_dpost[:, :n, n:] = np.einsum("spi,spj->sij", xin, x_end[:, :, n:] - self.x0[:, :, n:])
        pre_post[:, n:, n:] = self.pre_post
        pre_post[:, :n, n:] = np.einsum("spi,spj->sij", xin, self.total)
        pre_post[:, n:, :n] = np.einsum("spi,spj->sij", self.total, xin)
        pre_post[:, :n, :n] = M * np.einsum("spi,spj->sij", xin, xin)
        # Each neuron's own sum_t s_i(t) (s_i(t) - s_i(t-1)) (the diagonal; inputs: 0), for rules
        # that use the pre-synaptic neuron's change too (stdp2 in deepcircuit.learning.rule).
        own = np.einsum("sii->si", pre_dpost).copy()
        return steps, states, {"pre_dpost": pre_dpost, "pre_post": pre_post, "own_dpost": own,
                               "samples": int(M)}
