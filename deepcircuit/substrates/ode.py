"""The ideal ODE substrate: the model's equations integrated directly.

Two integrators:

* ``"euler"``: the reference scheme, projected explicit Euler
  ``s <- clip(s + dt * ds/dt, 0, 1)`` on the free neurons, with a per-presentation settling test
  (``max |ds/dt| < settle_tol``) and, when the schedule asks for it, an early stop per
  presentation (a settled presentation is frozen; the phase ends when all are). Three engines
  compute the same scheme:

  - ``"numba"``: one compiled loop per (network, presentation); wins on small networks and
    batches, where a BLAS call costs more than the arithmetic. Same summation order as the
    reference's ``s @ W`` on one row, so it agrees with it to about 1e-15.
  - ``"blas"``: one batched matrix product ``(S, P, F) @ (S, F, F)`` per step over the free
    neurons (the clamped inputs' drive is computed once per phase), then one compiled pass that
    fuses the update, the projection, the settling test and the early stop.
  - ``"numpy"``: the reference notebook's numpy expressions step by step (bit-for-bit the
    reference arithmetic; slow; for checks).

  ``engine="auto"`` (default) picks numba or blas by :func:`choose_engine` (crossover measured
  in ``benchmarks/bench_scaling.py``; see ``docs/architecture.md``).
* ``"adaptive"``: an accurate reference for judging the physical substrates: scipy's
  tolerance-controlled Runge-Kutta on the projected vector field (a neuron at a bound whose
  velocity points outward does not move), sampled on the same uniform grid.

What is kept (``record``): ``"full"`` returns every Euler step (memory ``S*P*(T+1)*N`` floats per
phase); ``"final"`` only the first and last state of each phase; an integer ``k`` every k-th step
(and the last). With ``"final"`` or ``k`` the nudged phase also returns the DEEP rule's sums,
accumulated while integrating, as ``meta["synaptic_traces"]`` (the contract of
:func:`deepcircuit.learning.rule.stdp_update`), so the rule gets the same ``dW`` as from the full
trajectory without it being stored.
"""

from __future__ import annotations

import time

import numpy as np

from .._validation import check_choice, check_int, check_real
from ..errors import DivergenceError, InvalidInputError, SimulationError
from ..model.network import NetworkBatch
from .trajectory import PhaseResult, Trajectory, phase_status
from .base import Substrate, check_run_arguments
from .chip import Chip, CircuitUnits, NonIdealities, TransconductorModel
from .ode_chip import ChipLaw, chip_law, ota_chunk, project_step
from .ode_record import Recorder as _Recorder, check_record

try:  # numba is a declared dependency; the numpy engine still works without it.
    from numba import njit
except ImportError:  # pragma: no cover - exercised only on broken installs
    njit = None

#: Accepted values of ``engine``.
ENGINES = ("auto", "numba", "blas", "numpy")

#: ``engine="auto"`` uses the per-presentation compiled loop for batches of at most this many
#: free neurons and (network, presentation) pairs: the logic-gate sizes, where it is as fast as
#: the BLAS engine and sums in the reference's order (results bit-for-bit those of earlier
#: releases). Everything larger goes to the BLAS engine, which was faster or equal at every
#: other size measured (benchmarks/bench_scaling.py; docs/architecture.md).
NUMBA_MAX_FREE = 16
NUMBA_MAX_PAIRS = 64

#: Bytes of one chunk of steps held at a time when not every step is kept.
_CHUNK_BYTES = 8 * 2**20


def choose_engine(n_networks: int, n_presentations: int, n_free: int) -> str:
    """The Euler engine ``engine="auto"`` uses for a batch of this shape: ``"numba"`` or ``"blas"``
    (``"numpy"`` if numba is missing)."""
    if _compiled is None:  # pragma: no cover - broken installs only
        return "numpy"
    if n_free <= NUMBA_MAX_FREE and n_networks * n_presentations <= NUMBA_MAX_PAIRS:
        return "numba"
    return "blas"


def _input_drive(A, x0, n_in):
    """``acc0[s, p, j] = sum_{i < n_in} x0[s, p, i] * A[s, i, n_in + j]``, summed in index order.

    The clamped inputs' contribution to every free neuron's inflow, fixed for a phase.
    """
    S, P, N = x0.shape
    F = N - n_in
    acc0 = np.zeros((S, P, F))
    for s in range(S):
        for p in range(P):
            for i in range(n_in):
                xi = x0[s, p, i]
                for jj in range(F):
                    acc0[s, p, jj] += xi * A[s, i, n_in + jj]
    return acc0


def _euler_chunk(A, c, d, beta_vec, y_full, n_in, x, t0, K, dt, tol, stop_early, done, speed, buf, store):
    """Up to ``K`` projected Euler steps for every (network, presentation), one scalar loop each.

    ``x (S, P, N)`` is the state at step ``t0`` and is advanced in place; ``buf[:, :, k]`` gets
    the state at step ``t0 + k`` (``k = 0..K``) unless ``store`` is False. ``done[s, p]`` is -1
    while running and the step at which the presentation settled once it has (then it stays
    frozen); ``speed[s, p]`` is ``max |ds/dt|`` of the projected motion in its last step (1/tau).
    Plain scalar loops on purpose: this engine serves the logic-gate sizes, where setting up
    vector loops costs more than it saves; the inflow is summed in the reference's order
    (``s @ W`` on one row).
    """
    S, P, N = x.shape
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
                    for j in range(n_in, N):
                        acc = 0.0
                        for i in range(N):
                            acc += xl[i] * A[s, i, j]
                        v[j] = acc + c[s, j] - xl[j] * d[s, j] + beta_vec[j] * (y_full[p, j] - xl[j])
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


def _advance(xf, v, vbits, c, d, beta, y, dt):
    """One projected Euler update of the free states ``xf`` from the inflow ``v`` (both (F,)).

    ``ds = v + c - x d + beta (y - x)``, ``x <- clip(x + dt ds, 0, 1)``; returns ``max |dx| / dt``
    (NaN if any state is NaN). ``vbits`` is ``v`` viewed as int64: the bit patterns of
    non-negative doubles order like their values (a NaN above +inf), so the maximum is an
    integer reduction the compiler vectorises. The values are those of the reference's ``clip``
    and ``max(|dx| / dt)`` (division by dt > 0 is monotonic).
    """
    F = xf.shape[0]
    for jj in range(F):
        xj = xf[jj]
        nx = xj + dt * (v[jj] + c[jj] - xj * d[jj] + beta[jj] * (y[jj] - xj))
        nx = 0.0 if nx < 0.0 else nx
        nx = 1.0 if nx > 1.0 else nx
        v[jj] = abs(nx - xj)
        xf[jj] = nx
    m = np.int64(0)
    for jj in range(F):
        b = vbits[jj]
        m = b if b > m else m
    vbits[0] = m  # v is scratch: read the maximum's bits back as a double
    return v[0] / dt


def _blas_chunk(Aff, acc0, c_f, d_f, beta_f, y_f, x, t0, K, dt, tol, stop_early, done, speed, buf, store):
    """As :func:`_euler_chunk` (same arguments and results), but the inflow of all presentations
    of a network is one matrix product ``x_free (P, F) @ Aff (F, F)`` per step (BLAS ``dgemm``,
    called from the compiled code), followed by the fused update of each moving presentation.
    """
    S, P, N = x.shape
    F = Aff.shape[1]
    n_in = N - F
    xf = np.empty((P, F))
    V = np.empty((P, F))
    Vbits = V.view(np.int64)
    xc = np.empty((P, F))
    rows = np.empty(P, dtype=np.int64)
    for s in range(S):
        for p in range(P):
            if store:
                for n in range(N):
                    buf[s, p, 0, n] = x[s, p, n]
            for jj in range(F):
                xf[p, jj] = x[s, p, n_in + jj]
        A = Aff[s]
        for t in range(K):
            m = 0
            for p in range(P):
                if done[s, p] < 0:
                    rows[m] = p
                    m += 1
            if m == 0 and not store:
                break
            if m == 1:
                # One moving presentation: a vector-matrix product (BLAS dgemv).
                np.dot(xf[rows[0]], A, V[0])
            elif m == P:
                np.dot(xf, A, V)
            elif m > 0:
                # Settled presentations are frozen: multiply only the moving ones (compacted).
                for q in range(m):
                    src = xf[rows[q]]
                    dst = xc[q]
                    for jj in range(F):
                        dst[jj] = src[jj]
                np.dot(xc[:m], A, V[:m])
            for q in range(m):
                p = rows[q]
                v = V[q]
                a0 = acc0[s, p]
                for jj in range(F):
                    v[jj] += a0[jj]
                xp = xf[p]
                sp = _advance(xp, v, Vbits[q], c_f[s], d_f[s], beta_f, y_f[p], dt)
                speed[s, p] = sp
                if stop_early and sp < tol:
                    done[s, p] = t0 + t + 1
            if store:
                for p in range(P):
                    row = buf[s, p, t + 1]
                    xs = x[s, p]
                    xp = xf[p]
                    for n in range(n_in):
                        row[n] = xs[n]
                    for jj in range(F):
                        row[n_in + jj] = xp[jj]
        for p in range(P):
            for jj in range(F):
                x[s, p, n_in + jj] = xf[p, jj]


class _BudgetExceeded(Exception):
    """Internal: the adaptive integrator used up its evaluation or time budget."""


def _reraise_interrupt(exc: BaseException) -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C is what caused ``exc``.

    A Ctrl-C that arrives while numba's compiled loop calls back into Python (its runtime
    unpickles constants when it boxes the result) surfaces as ``SystemError: ... returned a
    result with an exception set`` chained to the ``KeyboardInterrupt``.
    """
    seen = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        seen = seen.__cause__ or seen.__context__


if njit is not None:
    _advance = njit(cache=True, nogil=True, inline="always")(_advance)
    _compiled = {
        "drive": njit(cache=True, nogil=True)(_input_drive),
        "chunk": njit(cache=True, nogil=True)(_euler_chunk),
        "blas": njit(cache=True, nogil=True)(_blas_chunk),
    }
else:  # pragma: no cover - broken installs only
    _compiled = None


class OdeSubstrate(Substrate):
    """The model's ODE, integrated by projected Euler or an adaptive reference integrator.

    Parameters
    ----------
    method : {"euler", "adaptive"}
        Projected explicit Euler with step ``schedule.dt`` (the reference scheme), or scipy's
        adaptive Runge-Kutta sampled every ``schedule.dt``.
    engine : {"auto", "numba", "blas", "numpy"}
        Euler only: pick by batch shape (default; :func:`choose_engine`), the compiled loop, a
        BLAS product per step with a compiled fused update, or the reference's numpy
        expressions (bit-for-bit).
    record : "full", "final" or int
        Euler only: keep every step (default), only each phase's first and last state, or every
        k-th step and the last. Other than "full", the nudged phase carries the STDP sums in
        ``meta["synaptic_traces"]``, so the DEEP rule is exact without the trajectory.
    rtol, atol : float
        Adaptive only: relative and absolute tolerances of the integrator.
    solver : str
        Adaptive only: a ``scipy.integrate.solve_ivp`` method name.
    max_evaluations : int or None
        Adaptive only: budget of right-hand-side evaluations per phase (default 500 000: about 70x
        what a trained XOR network needs at rtol 1e-10 and 2x what an oscillating one needs over 50 tau; None = unbounded). A stiff network makes the explicit solvers take ever smaller steps; past the
        budget the run stops with a :class:`~deepcircuit.errors.SimulationError` saying how far
        it got.
    max_seconds : float or None
        Adaptive only: wall-time budget per phase (seconds; default 120; None = unbounded).
    mismatch, seed, bits, weight_range, parasitic_capacitance : optional
        The chip (:mod:`deepcircuit.substrates.chip`, as the SPICE substrate reads it): relative
        transconductance mismatch and the seed of its draw (the same draw per network index and
        connection as the netlist), weight quantization, parasitic capacitance (farads; slows every
        node by ``C / (C + C_par)``). Default: the ideal model.
    transconductor, ota_linear_range, ota_gain, ota_offset : optional
        The synapse law: ``"vccs"`` (default, linear) or ``"ota"`` (tanh transfer, per-synapse
        input offsets, output conductance ``|w| / gain``), as in the netlist. OTA chips run on a
        compiled loop over the synapses (slower than the BLAS engine at task scale).
    units, nonideal : CircuitUnits, NonIdealities, optional
        The same as objects (Python API); the flat options above override their fields. ``units``
        matters for the OTA offsets (volts over ``V_scale``) and the parasitic capacitance.
        Noise has no ODE counterpart (the ODE is deterministic) and is refused; the clamp is the
        exact projection onto [0, 1].
    """

    name = "ode"
    #: Chip options with no ODE counterpart, refused by name with the reason (substrates.spec).
    cannot_model = {
        "noise": "the ODE is deterministic; simulate a noisy chip on spice",
        "noise_interval": "the ODE is deterministic; simulate a noisy chip on spice",
        "clamp": "the ODE's bound is the exact projection onto [0, 1]; the circuit's clamps are spice's",
        "opamp_gain": "the precision clamp's op-amps are spice's; the ODE's bound is the exact projection",
    }

    def __init__(self, *, method: str = "euler", engine: str = "auto", record: "str | int" = "full",
                 rtol: float = 1e-8, atol: float = 1e-10, solver: str = "RK45",
                 max_evaluations: int | None = 500_000, max_seconds: float | None = 120.0,
                 mismatch: float | None = None, seed: int | None = None, bits: int | None = None,
                 weight_range: float | None = None, parasitic_capacitance: float | None = None,
                 transconductor: "str | TransconductorModel | None" = None,
                 ota_linear_range: float | None = None, ota_gain: float | None = None,
                 ota_offset: float | None = None, units: CircuitUnits | None = None,
                 nonideal: NonIdealities | None = None) -> None:
        self.method = check_choice("method", method, ("euler", "adaptive"))
        self.engine = check_choice("engine", engine, ENGINES)
        if self.engine in ("numba", "blas") and _compiled is None:
            raise InvalidInputError(f"engine={self.engine!r} needs the numba package; install it or use engine='numpy'.")
        self.record = check_record(record)
        if self.record != "full" and self.method != "euler":
            raise InvalidInputError("The 'record' option applies to method='euler' only; the adaptive "
                                    "integrator always returns every sample.")
        self.rtol = check_real("rtol", rtol, low=0.0, low_open=True)
        self.atol = check_real("atol", atol, low=0.0, low_open=True)
        self.solver = check_choice("solver", solver, ("RK45", "DOP853", "RK23", "LSODA", "Radau", "BDF"))
        self.max_evaluations = None if max_evaluations is None else check_int("max_evaluations", max_evaluations, low=1)
        self.max_seconds = None if max_seconds is None else check_real("max_seconds", max_seconds, low=0.0,
                                                                       low_open=True)
        self.chip = Chip.from_options(
            units=units, nonideal=nonideal, transconductor=transconductor, mismatch=mismatch, seed=seed, bits=bits,
            weight_range=weight_range, parasitic_capacitance=parasitic_capacitance,
            ota_linear_range=ota_linear_range, ota_gain=ota_gain, ota_offset=ota_offset)
        if self.chip.nonideal.noise > 0:
            raise InvalidInputError("The ode substrate cannot model noise (it is deterministic); simulate a "
                                    "noisy chip on spice (noise=..., ngspice TRNOISE).")

    def __repr__(self) -> str:
        chip = "" if self.chip.ideal else f", chip={self.chip.describe()}"
        return f"OdeSubstrate(method={self.method!r}, engine={self.engine!r}, record={self.record!r}{chip})"

    # -- public ------------------------------------------------------------------------
    def run(self, networks, inputs, initial, schedule, *, targets=None) -> PhaseResult:
        batch = NetworkBatch.of(networks)
        inputs, initial, targets = check_run_arguments(batch, inputs, initial, targets, schedule)
        W, b = batch.weights, batch.bias
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
            raise DivergenceError("The weights contain non-finite values; the network has diverged.",
                                  phase="free", magnitude=float("inf"))
        if self.chip.ideal:
            form = batch.family_.linear_form(W, b, batch.params)
        else:  # the chip as built: realised weights, element laws (deepcircuit.substrates.ode_chip)
            law = chip_law(self.chip, batch)
            form = law if law.nonlinear else law.form  # a linear chip runs on the fast engines
        free = self._phase(batch, form, initial, None, schedule, schedule.free_steps, 0.0, "free")
        if targets is None or schedule.nudged_steps == 0:
            return PhaseResult(free)
        nudged = self._phase(batch, form, free.final, targets, schedule, schedule.nudged_steps,
                             schedule.beta * self.chip.rate, "nudged")
        return PhaseResult(free, nudged)

    # -- internals -----------------------------------------------------------------------
    def _phase(self, batch, form, x0, targets, schedule, steps, beta, phase) -> Trajectory:
        roles = batch.roles
        S, P, N = x0.shape
        beta_vec = np.zeros(N)
        y_full = np.zeros((P, N))
        if targets is not None:
            beta_vec[roles.outputs] = beta
            y_full[:, roles.outputs] = targets
        if self.method == "euler":
            engine = self.engine
            if isinstance(form, ChipLaw):
                engine = "ota"  # nonlinear synapses: the compiled loop over the synapses
            elif engine == "auto":
                engine = choose_engine(S, P, N - roles.n_inputs)
            sample_steps, out, speed, n_done, traces = self._euler(
                engine, roles, form, x0, beta_vec, y_full, schedule, steps, learn=targets is not None)
            times = schedule.dt * sample_steps
            meta = {"integrator": f"projected Euler ({engine})", "engine": engine, "dt": schedule.dt,
                    "steps_done": n_done, "record": self.record}
            if traces is not None:
                meta["synaptic_traces"] = traces
        else:
            out, speed, meta = self._adaptive(roles, form, x0, beta_vec, y_full, schedule, steps)
            times = schedule.dt * np.arange(steps + 1)
        settled, diverged, msg = phase_status(phase, out, speed, schedule.settle_tol, float(schedule.dt * steps))
        if diverged.any():
            meta["magnitude"] = float("inf")
        meta["final_speed"] = speed
        return Trajectory(times, out, roles, phase, self.name, settled, schedule.settle_tol,
                          diverged, msg, meta)

    def _euler(self, engine, roles, form, x0, beta_vec, y_full, schedule, steps, *, learn):
        """Returns ``(sample steps (T,), states (S, P, T, N), speed (S, P), steps done (S, P), traces)``."""
        S, P, N = x0.shape
        n_in = roles.n_inputs
        full = self.record == "full"
        every = 1 if full else (0 if self.record == "final" else int(self.record))
        stop = bool(schedule.stop_at_equilibrium)
        if engine == "numpy":
            out, speed, n_done = self._euler_numpy(roles, form, x0, beta_vec, y_full, schedule, steps)
            M = out.shape[2] - 1
            if full:
                return np.arange(M + 1), out, speed, n_done, None
            rec = _Recorder(x0, n_in, every, learn)
            rec.add(out, 0, M)
            sample_steps, states, traces = rec.finish(out[:, :, -1], M)
            return sample_steps, states, speed, n_done, traces

        fn = _compiled
        x = np.ascontiguousarray(x0, dtype=float).copy()
        if engine != "ota":
            A = np.ascontiguousarray(form.A, dtype=float)
            c_all = np.ascontiguousarray(np.broadcast_to(form.c, (S, N)), dtype=float)
            d_all = np.ascontiguousarray(np.broadcast_to(form.d, (S, N)), dtype=float)
        if engine == "blas":
            Aff = np.ascontiguousarray(A[:, n_in:, n_in:])
            acc0 = fn["drive"](A, x, n_in)
            c_f = np.ascontiguousarray(c_all[:, n_in:])
            d_f = np.ascontiguousarray(d_all[:, n_in:])
            beta_f = np.ascontiguousarray(beta_vec[n_in:])
            y_f = np.ascontiguousarray(y_full[:, n_in:])
        dt, tol = float(schedule.dt), float(schedule.settle_tol)
        done = np.full((S, P), -1, dtype=np.int64)
        speed = np.full((S, P), np.inf)
        if full:
            K = steps
        else:
            K = int(max(1, min(steps, _CHUNK_BYTES // max(1, S * P * N * 8))))
            rec = _Recorder(x0, n_in, every, learn)
        store = full or learn or every > 0
        buf = np.empty((S, P, K + 1, N) if store else (S, P, 1, N))
        t0 = 0
        M = steps
        while t0 < steps:
            k = min(K, steps - t0)
            try:
                if engine == "ota":
                    ota_chunk(form.pre, form.post, form.weight, form.offset, form.linear_range, form.conserving,
                              form.c, form.d, beta_vec, y_full, n_in, x, t0, k, dt, tol, stop, done, speed,
                              buf, store)
                elif engine == "numba":
                    fn["chunk"](A, c_all, d_all, beta_vec, y_full, n_in, x, t0, k, dt, tol, stop, done, speed,
                                buf, store)
                else:
                    fn["blas"](Aff, acc0, c_f, d_f, beta_f, y_f, x, t0, k, dt, tol, stop, done, speed, buf, store)
            except SystemError as exc:
                _reraise_interrupt(exc)
                raise
            if stop and (done >= 0).all():
                M = int(done.max())
            valid = min(k, M - t0)
            if full:
                out = buf
            elif store:
                rec.add(buf, t0, valid)
            t0 += k
            if M < steps:
                break
        n_done = np.where(done >= 0, done, steps)
        if full:
            return np.arange(M + 1), out[:, :, :M + 1], speed, n_done, None
        sample_steps, states, traces = rec.finish(x, M)
        return sample_steps, states, speed, n_done, traces

    def _euler_numpy(self, roles, form, x0, beta_vec, y_full, schedule, steps):
        # The reference notebook's expressions, one network at a time so every matmul has the
        # reference's (P, N) @ (N, N) shape and therefore its exact arithmetic. With an early
        # stop, a settled presentation is frozen (as in the compiled engines) while the others
        # go on; the step arithmetic of the moving rows is unchanged.
        S, P, N = x0.shape
        nx, dt = roles.n_inputs, schedule.dt
        outs = slice(N - roles.n_outputs, N)
        nudged = beta_vec[outs].any()
        beta = beta_vec[outs][0] if nudged else 0.0
        Y = y_full[:, outs]
        has_c = bool(np.any(form.c))
        out = np.empty((S, P, steps + 1, N))
        speed = np.full((S, P), np.inf)
        n_done = np.full((S, P), steps)
        stop = schedule.stop_at_equilibrium
        for s in range(S):
            A, c, d = form.A[s], form.c[s], form.d[s]
            x = x0[s].copy()
            out[s, :, 0] = x
            moving = np.ones(P, dtype=bool)
            for t in range(steps):
                dS = x @ A - x * d
                if has_c:
                    dS = dS + c
                if nudged:
                    dS[:, -roles.n_outputs:] += beta * (Y - x[:, -roles.n_outputs:])
                prev = x[:, nx:].copy()
                if moving.all():
                    x[:, nx:] += dt * dS[:, nx:]
                    x[:, nx:] = np.clip(x[:, nx:], 0, 1)
                else:
                    rows = np.flatnonzero(moving)
                    x[rows, nx:] = np.clip(x[rows, nx:] + dt * dS[rows, nx:], 0, 1)
                out[s, :, t + 1] = x
                sp = np.abs(x[:, nx:] - prev).max(axis=1) / dt
                speed[s, moving] = sp[moving]
                if stop:
                    now = moving & (sp < schedule.settle_tol)
                    n_done[s, now] = t + 1
                    moving &= ~now
                    if not moving.any():
                        out[s, :, t + 2:] = x[:, None, :]
                        break
        if stop and (n_done < steps).all():
            out = out[:, :, : int(n_done.max()) + 1]
        return out, speed, n_done

    def _adaptive(self, roles, form, x0, beta_vec, y_full, schedule, steps):
        from scipy.integrate import solve_ivp

        S, P, N = x0.shape
        fr = roles.free
        law = form if isinstance(form, ChipLaw) else None
        if law is None:
            A, c, d = form.A, form.c, form.d
        clamp = x0[..., roles.inputs]
        shape = (S, P, N - roles.n_inputs)

        def full_state(y):
            s = np.empty((S, P, N))
            s[..., roles.inputs] = clamp
            s[..., fr] = np.clip(y.reshape(shape), 0.0, 1.0)
            return s

        budget = {"evaluations": 0, "t": 0.0, "start": time.monotonic()}

        def field(_t, y):
            # The budget: a stiff network makes an explicit solver take ever smaller steps.
            budget["evaluations"] += 1
            budget["t"] = max(budget["t"], _t)
            if self.max_evaluations is not None and budget["evaluations"] > self.max_evaluations:
                raise _BudgetExceeded(f"{self.max_evaluations} right-hand-side evaluations")
            if self.max_seconds is not None and budget["evaluations"] % 64 == 0 \
                    and time.monotonic() - budget["start"] > self.max_seconds:
                raise _BudgetExceeded(f"{self.max_seconds:g} s of wall time "
                                      f"({budget['evaluations']} right-hand-side evaluations)")
            s = full_state(y)
            if law is not None:  # nonlinear (OTA) synapses
                v = law.velocity(s)
            else:
                v = np.einsum("spi,sij->spj", s, A) + c[:, None, :] - d[:, None, :] * s
            v = v + beta_vec * (y_full[None] - s)
            v = v[..., fr]
            sf = s[..., fr]
            # The projection: a neuron on a bound whose velocity points out of [0, 1] stays.
            v = np.where(((sf <= 0.0) & (v < 0.0)) | ((sf >= 1.0) & (v > 0.0)), 0.0, v)
            return v.ravel()

        t_end = schedule.dt * steps
        t_eval = schedule.dt * np.arange(steps + 1)
        t_eval[-1] = t_end
        try:
            sol = solve_ivp(field, (0.0, t_end), x0[..., fr].ravel(), method=self.solver,
                            t_eval=t_eval, rtol=self.rtol, atol=self.atol)
        except _BudgetExceeded as exc:
            alt = "'LSODA' or 'Radau' (stiff solvers)" if self.solver not in ("LSODA", "Radau", "BDF") \
                else "looser rtol/atol"
            raise SimulationError(
                f"stiff: {exc} of the adaptive reference ({self.solver}, rtol={self.rtol:g}, "
                f"atol={self.atol:g}) did not reach t = {t_end:g} tau (stopped at t = {budget['t']:.4g} "
                f"tau); the network is too stiff for it (very large weights?). Try solver={alt}, "
                f"or raise max_evaluations / max_seconds (compare: --reference-max-evaluations / "
                f"--reference-max-seconds).") from None
        if sol.status < 0 or sol.y.shape[1] != steps + 1:
            raise DivergenceError(f"The adaptive integrator failed: {sol.message}", phase="free")
        ys = np.clip(sol.y.T.reshape((steps + 1,) + shape), 0.0, 1.0)
        out = np.empty((S, P, steps + 1, N))
        out[..., roles.inputs] = clamp[:, :, None, :]
        out[..., fr] = np.moveaxis(ys, 0, 2)
        speed = np.abs(field(t_end, out[:, :, -1, fr].ravel())).reshape(shape).max(axis=-1)
        meta = {"integrator": f"scipy {self.solver} rtol={self.rtol:g} atol={self.atol:g}",
                "max_evaluations": self.max_evaluations,
                "n_function_evaluations": int(sol.nfev)}
        return out, speed, meta
