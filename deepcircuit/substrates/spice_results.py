"""What an ngspice run gives back, as the common :class:`~deepcircuit.substrates.trajectory.Trajectory`.

The SPICE substrate (:mod:`.spice`) reads each run's node voltages and supply currents here
(:func:`node_waveforms`, :func:`read_supply`; from the shared library or, through
:class:`RawVectors`, the program's raw file), turns them into the phases' trajectories
(:func:`phase_trajectories`: divided by ``V_scale``, resampled onto the schedule's grid in tau,
the clamp's overshoot measured and a runaway circuit called diverged) and joins the parts of a
call that ran as several netlists (:func:`join_presentations`, :func:`join_networks`); a part
whose run failed becomes :func:`failed_part`. Times in seconds from ngspice, tau in the
trajectories; voltages in volts, states dimensionless; currents in amperes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import SimulationError
from ..model.network import NetworkBatch
from .base import Schedule
from .circuit import Netlist
from .trajectory import PhaseResult, Trajectory, phase_status


class RawVectors:
    """The vectors and output of an ``ngspice -b`` run, read as from the shared library
    (``vector(name)``, ``_stdout``) so that :func:`read_supply` serves both."""

    def __init__(self, run) -> None:
        self.vectors, self._stdout = run.vectors, run.stdout

    def vector(self, name: str, missing_ok: bool = False) -> "np.ndarray | None":
        key = name.lower()
        v = self.vectors.get(key, self.vectors.get(f"v({key})"))
        if v is None and not missing_ok:
            raise SimulationError(f"ngspice wrote no result vector {name!r}.")
        return v


def read_supply(ng, net: Netlist, t: np.ndarray) -> "dict | None":
    """The supply currents and ``.meas`` charges of a run (None when the netlist has no supply).

    Returns ``{"vdd": V, "time_s": (T,), "current_A": (S, P, T) drawn from VDD (positive),
    "quiescent_A": (S, P), "meas_charge_C": {name: C}}``; the ``.meas`` results are parsed from
    ngspice's output ("q_free_s0p0 = -4.8e-08 from= ..."), negative = drawn from the source.
    """
    names = net.meta.get("supplies") or []
    if not names:
        return None
    S, P, _ = net.shape
    cur = np.stack([-ng.vector(f"i({v})") for v in names]).reshape(S, P, -1)
    meas = {}
    for ln in ng._stdout:
        m = re.match(r"\s*(q_(?:free|nudged)_\S+)\s*=\s*([-+0-9.eE]+)", ln)
        if m:
            meas[m.group(1).lower()] = float(m.group(2))
    return {"vdd": float(net.meta["vdd"]), "time_s": np.asarray(t, dtype=float), "current_A": cur,
            "quiescent_A": np.asarray(net.meta["quiescent_current"]).reshape(S, P), "meas_charge_C": meas}


def node_waveforms(source, net: Netlist, t: np.ndarray):
    """``(t, volts (nodes, T), supply)`` of the free nodes read from ``source`` (the shared library
    or the program's raw file: anything with ``vector(name)``), ``supply`` the run's supply
    currents (:func:`read_supply`); ngspice's first stored point is its first step, so the ``.ic``
    state is prepended at t = 0."""
    volts = np.empty((len(net.nodes), t.size))
    for k, node in enumerate(net.nodes):
        volts[k] = source.vector(node)
    supply = read_supply(source, net, t)
    ic = net.meta.get("initial_volts")
    if t[0] > 0 and ic is not None and len(ic) == len(net.nodes):
        t = np.concatenate([[0.0], t])
        volts = np.concatenate([np.asarray(ic, dtype=float)[:, None], volts], axis=1)
    return t, volts, supply


def phase_trajectories(batch, net: Netlist, inputs, t_s, volts, schedule, seconds: float, *, rail_margin: float,
                       name: str) -> PhaseResult:
    """The free (and nudged) :class:`Trajectory` of a run: ``volts (nodes, T)`` at ``t_s (T,)``
    seconds, divided by ``V_scale`` and resampled onto the schedule's grid (tau); a network whose
    nodes went more than ``rail_margin`` (units of ``V_scale``) outside the rails is diverged.
    ``seconds``: the run's wall time; ``name``: the substrate's.
    """
    roles = batch.roles
    S, P, N = net.shape
    Vs, tau = net.units.v_scale, net.units.tau
    nf = N - roles.n_inputs
    free_v = volts.reshape(S, P, nf, -1) / Vs
    over = np.maximum(np.maximum(free_v - 1.0, -free_v), 0.0)  # outside [0, 1], units of V_scale
    t_tau = t_s / tau
    t_free = net.free_end / tau
    out = []
    phases = [("free", 0.0, schedule.free_steps)]
    if net.stop > net.free_end * (1 + 1e-12):
        phases.append(("nudged", t_free, schedule.nudged_steps))
    for phase, start, steps in phases:
        grid = start + schedule.dt * np.arange(steps + 1)
        grid[-1] = min(grid[-1], t_tau[-1])
        res = np.empty((S, P, steps + 1, N))
        res[..., :roles.n_inputs] = inputs[None, :, None, :]
        flat = free_v.reshape(-1, t_tau.size)
        tgt = res[..., roles.n_inputs:]
        tmp = np.empty((flat.shape[0], steps + 1))
        for k in range(flat.shape[0]):
            tmp[k] = np.interp(grid, t_tau, flat[k])
        tgt[...] = np.moveaxis(tmp.reshape(S, P, nf, steps + 1), 2, 3)
        in_phase = (t_tau >= start - 1e-12) & (t_tau <= grid[-1] + 1e-12)
        dev = over[..., in_phase]
        speed = np.abs(res[:, :, -1, roles.n_inputs:] - res[:, :, -2, roles.n_inputs:]).max(axis=-1) / schedule.dt \
            if steps >= 1 else np.full((S, P), np.inf)
        settled, diverged, msg = phase_status(phase, res, speed, schedule.settle_tol, schedule.dt * steps)
        # A clamped node stays within a diode drop (or J / stiffness) of its rail; a node far
        # outside the rails is a runaway circuit, not a state: the same verdict as non-finite.
        worst = dev.max(axis=(1, 2, 3)) if dev.size else np.zeros(S)
        runaway = worst > rail_margin
        if runaway.any():
            diverged = diverged | runaway
            settled = settled & ~diverged[:, None]
            msg = (f"{phase} phase diverged for network(s) {np.flatnonzero(runaway).tolist()}: node "
                   f"voltages {float(worst.max()):.3g} V_scale outside the rails [0, V_scale] (allowed: "
                   f"rail_margin = {rail_margin:g} V_scale)")
        why = [f"node voltages {w:.3g} V_scale outside the rails (allowed {rail_margin:g})" if r
               else ("non-finite states" if d else "") for w, r, d in zip(worst, runaway, diverged)]
        meta = {
            "simulator": "ngspice (shared library, PySpice)", "clamp": net.meta["clamp"],
            "units": {"v_scale": Vs, "capacitance": net.units.capacitance,
                      "transconductance": net.units.transconductance, "tau": tau},
            # The clamp's deviation from the ideal projection: how far node voltages went
            # outside [0, V_scale] during the phase, in units of V_scale.
            "clamp_overshoot_max": float(dev.max()) if dev.size else 0.0,
            "clamp_overshoot_final": float(over[..., np.searchsorted(t_tau, grid[-1] - 1e-12)].max()),
            "clamp_overshoot_per_network": worst,
            **({"magnitude": float(worst.max()) + 1.0} if runaway.any() else {}),
            "diverged_why": why,
            "time_points": int(in_phase.sum()), "seconds": seconds, "final_speed": speed,
            "peak_rss_mb": rss_peak_mb(),
        }
        out.append(Trajectory(grid - start, res, roles, phase, name, settled, schedule.settle_tol,
                              diverged, msg, meta))
    return PhaseResult(*out)


def rss_peak_mb() -> float:
    """Peak resident set size of this process (MB), from /proc or resource."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:  # pragma: no cover - non-Linux
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def failed_part(batch: NetworkBatch, inputs, schedule: Schedule, targets, name: str, why: str) -> PhaseResult:
    """The phases of networks whose ngspice run failed: non-finite states, marked diverged."""
    roles = batch.roles
    S, P, N = len(batch), inputs.shape[0], roles.n_neurons
    out = []
    phases = [("free", schedule.free_steps)]
    if targets is not None and schedule.nudged_steps > 0:
        phases.append(("nudged", schedule.nudged_steps))
    for phase, steps in phases:
        states = np.full((S, P, steps + 1, N), np.nan)
        states[..., :roles.n_inputs] = inputs[None, :, None, :]
        meta = {"clamp_overshoot_max": 0.0, "clamp_overshoot_final": 0.0,
                "clamp_overshoot_per_network": np.zeros(S), "final_speed": np.full((S, P), np.inf),
                "time_points": 0, "seconds": 0.0, "peak_rss_mb": rss_peak_mb(), "magnitude": float("inf"),
                "diverged_why": [why] * S}
        out.append(Trajectory(schedule.dt * np.arange(steps + 1), states, roles, phase, name,
                              np.zeros((S, P), dtype=bool), schedule.settle_tol, np.ones(S, dtype=bool),
                              f"{phase} phase diverged: {why}", meta))
    return PhaseResult(*out)


def join_presentations(parts: list[PhaseResult]) -> PhaseResult:
    """Phase results of consecutive presentation chunks (same networks) joined along the presentation axis."""
    def join(trajs):
        first = trajs[0]
        meta = dict(first.meta)
        meta["clamp_overshoot_max"] = max(t.meta["clamp_overshoot_max"] for t in trajs)
        meta["clamp_overshoot_final"] = max(t.meta["clamp_overshoot_final"] for t in trajs)
        meta["clamp_overshoot_per_network"] = np.max([t.meta["clamp_overshoot_per_network"] for t in trajs], axis=0)
        meta["final_speed"] = np.concatenate([np.asarray(t.meta["final_speed"]) for t in trajs], axis=1)
        meta["time_points"] = [t.meta["time_points"] for t in trajs]
        meta["seconds"] = sum(t.meta["seconds"] for t in trajs)
        meta["peak_rss_mb"] = max(t.meta["peak_rss_mb"] for t in trajs)
        meta["ngspice_runs"] = sum(t.meta.get("ngspice_runs", 1) for t in trajs)
        meta["magnitude"] = max(float(t.meta.get("magnitude", 0.0)) for t in trajs)
        S = first.n_networks
        whys = [t.meta.get("diverged_why", [""] * S) for t in trajs]
        meta["diverged_why"] = ["; ".join(sorted({w[k] for w in whys if w[k]})) for k in range(S)]
        msgs = "; ".join(t.message for t in trajs if t.message)
        diverged = np.any([t.diverged for t in trajs], axis=0)  # a network diverged in any chunk
        settled = np.concatenate([t.settled for t in trajs], axis=1) & ~diverged[:, None]
        return Trajectory(first.times, np.concatenate([t.states for t in trajs], axis=1), first.roles,
                          first.phase, first.substrate, settled, first.settle_tol, diverged, msgs, meta)

    if len(parts) == 1:
        return parts[0]
    free = join([p.free for p in parts])
    nudged = join([p.nudged for p in parts]) if parts[0].nudged is not None else None
    return PhaseResult(free, nudged)


def join_networks(parts: list[PhaseResult]) -> PhaseResult:
    """Phase results of consecutive network chunks joined along the network axis."""
    def join(trajs):
        first = trajs[0]
        meta = dict(next((t.meta for t in trajs if "units" in t.meta), first.meta))  # a run that worked
        meta["clamp_overshoot_max"] = max(t.meta["clamp_overshoot_max"] for t in trajs)
        meta["clamp_overshoot_final"] = max(t.meta["clamp_overshoot_final"] for t in trajs)
        for key in ("clamp_overshoot_per_network", "final_speed"):
            meta[key] = np.concatenate([np.asarray(t.meta[key]) for t in trajs])
        meta["time_points"] = [t.meta["time_points"] for t in trajs]
        meta["seconds"] = sum(t.meta["seconds"] for t in trajs)
        meta["peak_rss_mb"] = trajs[-1].meta["peak_rss_mb"]
        meta["diverged_why"] = [w for t in trajs for w in t.meta.get("diverged_why", [""] * t.n_networks)]
        meta["magnitude"] = max(float(t.meta.get("magnitude", 0.0)) for t in trajs)
        sup = [t.meta.get("supply") for t in trajs]
        meta.pop("supply", None)
        if all(x is not None for x in sup):  # energies only when every run had its supply read
            meta["supply"] = [x for part in sup for x in part]
        devs = [t.meta.get("devices") for t in trajs]
        meta.pop("devices", None)
        if all(d is not None for d in devs):
            meta["devices"] = [d for part in devs for d in part]
        msgs = "; ".join(t.message for t in trajs if t.message)
        return Trajectory(first.times, np.concatenate([t.states for t in trajs]), first.roles, first.phase,
                          first.substrate, np.concatenate([t.settled for t in trajs]), first.settle_tol,
                          np.concatenate([t.diverged for t in trajs]), msgs, meta)

    free = join([p.free for p in parts])
    nudged = join([p.nudged for p in parts]) if parts[0].nudged is not None else None
    return PhaseResult(free, nudged)
