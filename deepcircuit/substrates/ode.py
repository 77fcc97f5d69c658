"""The ideal ODE substrate: the model's equations integrated directly.

Two integrators:

* ``"euler"``: the reference scheme, projected explicit Euler
  ``s <- clip(s + dt * ds/dt, 0, 1)`` on the free neurons. ``engine="numba"`` (default) is a
  compiled loop; ``engine="numpy"`` evaluates the reference notebook's numpy expressions step by
  step (bit-for-bit the reference arithmetic; slower).
* ``"adaptive"``: an accurate reference for judging the physical substrates: scipy's
  tolerance-controlled Runge-Kutta on the projected vector field (a neuron at a bound whose
  velocity points outward does not move), sampled on the same uniform grid.
"""

from __future__ import annotations

import time

import numpy as np

from .._validation import check_choice, check_int, check_real
from ..errors import DivergenceError, InvalidInputError, SimulationError
from ..network import NetworkBatch
from ..trajectory import PhaseResult, Trajectory, phase_status
from .base import Substrate, check_run_arguments

try:  # numba is a declared dependency; the numpy engine still works without it.
    from numba import njit
except ImportError:  # pragma: no cover - exercised only on broken installs
    njit = None


def _euler_loop(A, c, d, beta_vec, y_full, free_idx, x0, dt, steps, tol, stop_early, out):
    """Projected Euler for every (network, presentation); fills ``out (S, P, steps+1, N)``.

    Returns ``(n_done (S, P), last_speed (S, P))``: steps computed before an early stop, and
    ``max |ds/dt|`` of the projected motion in the last step (1/tau).
    """
    S, P, N = x0.shape
    F = free_idx.shape[0]
    n_done = np.full((S, P), steps, dtype=np.int64)
    last_speed = np.zeros((S, P))
    x = np.empty(N)
    v = np.empty(N)
    for s in range(S):
        for p in range(P):
            for n in range(N):
                x[n] = x0[s, p, n]
                out[s, p, 0, n] = x[n]
            speed = np.inf
            for t in range(steps):
                for jj in range(F):
                    j = free_idx[jj]
                    acc = 0.0
                    for i in range(N):
                        acc += x[i] * A[s, i, j]
                    v[j] = acc + c[s, j] - x[j] * d[s, j] + beta_vec[j] * (y_full[p, j] - x[j])
                speed = 0.0
                for jj in range(F):
                    j = free_idx[jj]
                    nx = x[j] + dt * v[j]
                    if nx < 0.0:
                        nx = 0.0
                    elif nx > 1.0:
                        nx = 1.0
                    moved = abs(nx - x[j]) / dt
                    if moved > speed or moved != moved:
                        speed = moved
                    x[j] = nx
                for n in range(N):
                    out[s, p, t + 1, n] = x[n]
                if stop_early and speed < tol:
                    for tt in range(t + 2, steps + 1):
                        for n in range(N):
                            out[s, p, tt, n] = x[n]
                    n_done[s, p] = t + 1
                    break
            last_speed[s, p] = speed
    return n_done, last_speed


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


_euler_compiled = njit(cache=True, nogil=True)(_euler_loop) if njit is not None else None


class OdeSubstrate(Substrate):
    """The model's ODE, integrated by projected Euler or an adaptive reference integrator.

    Parameters
    ----------
    method : {"euler", "adaptive"}
        Projected explicit Euler with step ``schedule.dt`` (the reference scheme), or scipy's
        adaptive Runge-Kutta sampled every ``schedule.dt``.
    engine : {"numba", "numpy"}
        Euler only: compiled loop (fast) or the reference's numpy expressions (bit-for-bit).
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
    """

    name = "ode"

    def __init__(self, *, method: str = "euler", engine: str = "numba", rtol: float = 1e-8,
                 atol: float = 1e-10, solver: str = "RK45", max_evaluations: int | None = 500_000,
                 max_seconds: float | None = 120.0) -> None:
        self.method = check_choice("method", method, ("euler", "adaptive"))
        self.engine = check_choice("engine", engine, ("numba", "numpy"))
        if self.engine == "numba" and _euler_compiled is None:
            raise InvalidInputError("engine='numba' needs the numba package; install it or use engine='numpy'.")
        self.rtol = check_real("rtol", rtol, low=0.0, low_open=True)
        self.atol = check_real("atol", atol, low=0.0, low_open=True)
        self.solver = check_choice("solver", solver, ("RK45", "DOP853", "RK23", "LSODA", "Radau", "BDF"))
        self.max_evaluations = None if max_evaluations is None else check_int("max_evaluations", max_evaluations, low=1)
        self.max_seconds = None if max_seconds is None else check_real("max_seconds", max_seconds, low=0.0,
                                                                       low_open=True)

    def __repr__(self) -> str:
        return f"OdeSubstrate(method={self.method!r}, engine={self.engine!r})"

    # -- public ------------------------------------------------------------------------
    def run(self, networks, inputs, initial, schedule, *, targets=None) -> PhaseResult:
        batch = NetworkBatch.of(networks)
        inputs, initial, targets = check_run_arguments(batch, inputs, initial, targets, schedule)
        W, b = batch.weights, batch.bias
        if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
            raise DivergenceError("The weights contain non-finite values; the network has diverged.",
                                  phase="free", magnitude=float("inf"))
        form = batch.family_.linear_form(W, b, batch.params)
        free = self._phase(batch, form, initial, None, schedule, schedule.free_steps, 0.0, "free")
        if targets is None or schedule.nudged_steps == 0:
            return PhaseResult(free)
        nudged = self._phase(batch, form, free.final, targets, schedule, schedule.nudged_steps,
                             schedule.beta, "nudged")
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
            out, speed, n_done = self._euler(batch, form, x0, beta_vec, y_full, schedule, steps)
            times = schedule.dt * np.arange(out.shape[2])
            meta = {"integrator": f"projected Euler ({self.engine})", "dt": schedule.dt,
                    "steps_done": n_done}
        else:
            out, speed, meta = self._adaptive(roles, form, x0, beta_vec, y_full, schedule, steps)
            times = schedule.dt * np.arange(steps + 1)
        settled, diverged, msg = phase_status(phase, out, speed, schedule.settle_tol, float(times[-1]))
        if diverged.any():
            meta["magnitude"] = float("inf")
        meta["final_speed"] = speed
        return Trajectory(times, out, roles, phase, self.name, settled, schedule.settle_tol,
                          diverged, msg, meta)

    def _euler(self, batch, form, x0, beta_vec, y_full, schedule, steps):
        roles = batch.roles
        S, P, N = x0.shape
        if self.engine == "numpy":
            return self._euler_numpy(batch, form, x0, beta_vec, y_full, schedule, steps)
        out = np.empty((S, P, steps + 1, N))
        free_idx = np.arange(roles.n_inputs, N, dtype=np.int64)
        try:
            n_done, speed = _euler_compiled(
                np.ascontiguousarray(form.A, dtype=float), np.ascontiguousarray(form.c, dtype=float),
                np.ascontiguousarray(form.d, dtype=float), beta_vec, y_full, free_idx,
                np.ascontiguousarray(x0), float(schedule.dt), int(steps), float(schedule.settle_tol),
                bool(schedule.stop_at_equilibrium), out)
        except SystemError as exc:
            _reraise_interrupt(exc)
            raise
        if schedule.stop_at_equilibrium:
            last = int(n_done.max())
            out = out[:, :, : last + 1]
        return out, speed, n_done

    def _euler_numpy(self, batch, form, x0, beta_vec, y_full, schedule, steps):
        # The reference notebook's expressions, one network at a time so every matmul has the
        # reference's (P, N) @ (N, N) shape and therefore its exact arithmetic.
        roles = batch.roles
        S, P, N = x0.shape
        nx, dt = roles.n_inputs, schedule.dt
        outs = slice(N - roles.n_outputs, N)
        nudged = beta_vec[outs].any()
        beta = beta_vec[outs][0] if nudged else 0.0
        Y = y_full[:, outs]
        has_c = batch.family_.has_bias_vector
        out = np.empty((S, P, steps + 1, N))
        speed = np.zeros((S, P))
        n_done = np.full((S, P), steps)
        for s in range(S):
            A, c, d = form.A[s], form.c[s], form.d[s]
            x = x0[s].copy()
            out[s, :, 0] = x
            for t in range(steps):
                dS = x @ A - x * d
                if has_c:
                    dS = dS + c
                if nudged:
                    dS[:, -roles.n_outputs:] += beta * (Y - x[:, -roles.n_outputs:])
                prev = x[:, nx:].copy()
                x[:, nx:] += dt * dS[:, nx:]
                x[:, nx:] = np.clip(x[:, nx:], 0, 1)
                out[s, :, t + 1] = x
                sp = np.abs(x[:, nx:] - prev).max(axis=1) / dt
                if schedule.stop_at_equilibrium and np.all(sp < schedule.settle_tol):
                    out[s, :, t + 2:] = x[:, None, :]
                    n_done[s] = t + 1
                    speed[s] = sp
                    break
                speed[s] = sp
        if schedule.stop_at_equilibrium:
            out = out[:, :, : int(n_done.max()) + 1]
        return out, speed, n_done

    def _adaptive(self, roles, form, x0, beta_vec, y_full, schedule, steps):
        from scipy.integrate import solve_ivp

        S, P, N = x0.shape
        fr = roles.free
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
