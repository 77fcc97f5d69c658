"""Hardware figures of merit of a circuit run: energy, power, settling time, devices, area.

A studies-layer module: it reads what a substrate left in a :class:`~deepcircuit.substrates.trajectory.PhaseResult`
(never a substrate object) and turns it into physical figures. Only a circuit substrate with a
supply (the SPICE substrate with OTA synapses or precision clamps) leaves supply currents in
``free.meta["supply"]``; only a substrate with physical units (``meta["units"]["tau"]``, seconds)
has settling times in seconds; only a netlist has devices (``free.meta["devices"]``). Figures that
do not exist for a run are ``None``.

Definitions (SI units):

* settling time (s): the time after which every free node stays within ``tol`` (default 1 % of
  ``V_scale``) of its value at the end of the phase; ``nan`` for a presentation whose phase did
  not settle (its end is not an equilibrium, so "settled to it" means nothing).
* energy per inference (J): ``VDD * integral of the supply current`` from 0 to the free phase's
  settling time, per array (one presentation on one network).
* energy per training step (J): the inference energy plus the same integral over the nudged
  phase, from the nudge onset until the nudged phase has settled.
* energy over the free phase (J): the same integral over the whole free phase; for a presentation
  that did not settle it is what the phase flagged as unsettled cost (no inference energy exists).
* peak / mean power (W): of the supply over the whole free phase.
* area (um^2): the devices of one array times the per-device areas of :data:`AREA_UM2`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import cumulative_trapezoid

from ..substrates.trajectory import PhaseResult, Trajectory

#: Per-device area assumptions (um^2), for a generic 180 nm CMOS process. Stated, not measured:
#: * transconductor: a 9-transistor OTA whose input pair is sized for ~2 mV offset (Pelgrom
#:   A_VT ~ 5 mV um) plus mirrors, about 400 um^2 (the ideal VCCS is read as the same OTA);
#: * capacitor: MIM at 2 fF/um^2, so ``C / 2e-15`` um^2 (1 pF: 500 um^2), computed per run;
#: * switch: a transmission gate, 10 um^2;
#: * clamp, per rail: diode 25 um^2; precision clamp (op-amp ~1500 um^2 + diode) 1525 um^2;
#:   the behavioural limiter has no circuit of its own and is given the precision clamp's area;
#: * resistor: high-resistance poly, 1 um^2 per kOhm (the nudge resistor 1/(g beta) = 100 kOhm:
#:   100 um^2), charged as one 100 kOhm resistor each;
#: * sources (input, bias and target drivers, the supply): off the array, 0 um^2.
AREA_UM2 = {"transconductors": 400.0, "switches": 10.0, "resistors": 100.0, "sources": 0.0,
            "clamp_diode": 25.0, "clamp_precision": 1525.0, "clamp_limiter": 1525.0}
CAPACITANCE_DENSITY = 2e-15  # F per um^2 (MIM)


def settling_times(traj: Trajectory, *, tol: float = 0.01) -> np.ndarray | None:
    """Settling time (seconds) per (network, presentation), ``nan`` where the phase did not settle.

    ``tol`` is in units of ``V_scale`` (state units). None when the trajectory has no physical
    time unit (``meta["units"]["tau"]``).
    """
    tau = (traj.meta.get("units") or {}).get("tau")
    if tau is None:
        return None
    fr = traj.roles.free
    s = traj.states[..., fr]
    dev = np.abs(s - s[:, :, -1:, :]).max(axis=-1)  # (S, P, T)
    outside = dev > tol
    T = traj.times.size
    # Index of the first sample after the last one outside the band (0 if never outside).
    last = np.where(outside.any(axis=-1), T - np.argmax(outside[..., ::-1], axis=-1), 0)
    t = traj.times[np.minimum(last, T - 1)] * tau
    return np.where(np.asarray(traj.settled, dtype=bool), t, np.nan)


def unsettled_reason(traj: Trajectory, *, tail: float = 0.2) -> str | None:
    """One line on why ``traj`` did not settle (None if every presentation settled).

    Reads the last ``tail`` of the phase of the worst presentation: its fastest free neuron's
    speed at the end (1/tau), and whether that neuron's velocity changes sign there (an
    oscillation) or keeps it (a slow approach to an equilibrium the phase is too short to reach).
    """
    settled = np.asarray(traj.settled, dtype=bool)
    if settled.all():
        return None
    s = traj.states[..., traj.roles.free]  # (S, P, T, F)
    T = traj.times.size
    if T < 3:
        return f"{int((~settled).sum())} presentation(s) not settled (too few samples to say more)"
    dt = float(traj.times[-1] - traj.times[-2])
    speed = np.abs(s[:, :, -1] - s[:, :, -2]).max(axis=-1) / dt  # (S, P)
    k = np.unravel_index(np.argmax(np.where(settled, -1.0, speed)), speed.shape)
    n = int(np.argmax(np.abs(s[k][-1] - s[k][-2])))
    v = np.diff(s[k][int((1 - tail) * T):, n])
    flips = int(np.sum(np.diff(np.sign(v[np.abs(v) > 1e-12])) != 0))
    name = str(np.asarray(traj.roles.names)[traj.roles.free][n])
    how = (f"oscillating (its velocity changed sign {flips} times in the last {100 * tail:.0f} %)" if flips >= 2
           else f"a slow approach (moving one way through the last {100 * tail:.0f} %, no oscillation)")
    return (f"{int((~settled).sum())} presentation(s) not settled at the end of the phase; the worst "
            f"(network {k[0]}, presentation {k[1]}): neuron {name} at {s[k][-1, n]:.3g} still moving at "
            f"{speed[k]:.2g} /tau, {how}")


def _blocks(supply: list[dict]):
    """``(networks slice, presentations slice, entry)`` of each ngspice run's supply entry."""
    for sup in supply:
        (s0, s1), (p0, p1) = sup["networks"], sup["presentations"]
        yield slice(s0, s1), slice(p0, p1), sup


def _energy_between(supply: list[dict], start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``VDD * integral of the supply current`` over ``[start, end]`` (s, arrays (S, P)), joules."""
    e = np.full(start.shape, np.nan)
    for ns, ps, sup in _blocks(supply):
        t, cur, vdd = sup["time_s"], sup["current_A"], sup["vdd"]
        q = cumulative_trapezoid(cur, t, axis=-1, initial=0.0)  # charge drawn since t[0], C
        a, b = start[ns, ps], end[ns, ps]
        for s in range(cur.shape[0]):
            for p in range(cur.shape[1]):
                if np.isfinite(a[s, p]) and np.isfinite(b[s, p]):
                    e[ns.start + s, ps.start + p] = vdd * (np.interp(b[s, p], t, q[s, p])
                                                           - np.interp(a[s, p], t, q[s, p]))
    return e


def figures_of_merit(result: PhaseResult, *, tol: float = 0.01) -> dict:
    """Every figure of one run, as arrays per (network, presentation) where they exist.

    Returns a dict with ``settling_time_s`` and ``settling_time_nudged_s`` (S, P), and when the
    run had a supply ``energy_per_inference_J``, ``energy_per_step_J``, ``peak_power_W``,
    ``mean_power_W``, ``static_power_W`` (VDD times the quiescent current), ``vdd_V`` and
    ``meas_agreement`` (largest relative difference between the free-phase charge integrated here
    and ngspice's own ``.meas INTEG``), and ``devices`` / ``area_um2`` per network. Missing ones
    are None.
    """
    free, nudged = result.free, result.nudged
    out: dict = {"settling_time_s": settling_times(free, tol=tol),
                 "settling_time_nudged_s": settling_times(nudged, tol=tol) if nudged is not None else None,
                 "energy_per_inference_J": None, "energy_per_step_J": None, "energy_free_phase_J": None,
                 "unsettled": unsettled_reason(free), "peak_power_W": None,
                 "mean_power_W": None, "static_power_W": None, "vdd_V": None, "meas_agreement": None,
                 "devices": free.meta.get("devices"), "area_um2": None}
    units = free.meta.get("units") or {}
    if out["devices"] is not None:
        out["area_um2"] = [area_um2(d, clamp=free.meta.get("clamp", "diode"),
                                    capacitance=units.get("capacitance", 1e-12)) for d in out["devices"]]
    supply = free.meta.get("supply")
    if not supply or out["settling_time_s"] is None:
        return out
    tau = units["tau"]
    free_end = free.times[-1] * tau
    S, P = free.settled.shape
    zero = np.zeros((S, P))
    out["energy_per_inference_J"] = _energy_between(supply, zero, out["settling_time_s"])
    out["energy_free_phase_J"] = _energy_between(supply, zero, zero + free_end)
    if nudged is not None:
        e_n = _energy_between(supply, zero + free_end, free_end + out["settling_time_nudged_s"])
        out["energy_per_step_J"] = out["energy_per_inference_J"] + e_n
    peak, mean, static, agree = np.full((S, P), np.nan), np.full((S, P), np.nan), np.full((S, P), np.nan), 0.0
    for ns, ps, sup in _blocks(supply):
        t, cur, vdd = sup["time_s"], sup["current_A"], sup["vdd"]
        inside = t <= free_end * (1 + 1e-12)
        peak[ns, ps] = vdd * cur[..., inside].max(axis=-1)
        q = np.trapezoid(cur[..., inside], t[inside], axis=-1)
        mean[ns, ps] = vdd * q / (t[inside][-1] - t[0])
        static[ns, ps] = vdd * sup["quiescent_A"]
        # ngspice's own .meas INTEG of the same current (negative: drawn from the source); the
        # names count networks and presentations within this run's netlist.
        for s in range(cur.shape[0]):
            for p in range(cur.shape[1]):
                m = sup["meas_charge_C"].get(f"q_free_s{s}p{p}")
                if m is not None and q[s, p] != 0:
                    agree = max(agree, abs(-m - q[s, p]) / abs(q[s, p]))
    out["peak_power_W"], out["mean_power_W"] = peak, mean
    out["static_power_W"], out["vdd_V"], out["meas_agreement"] = static, supply[0]["vdd"], agree
    return out


def area_um2(devices: dict, *, clamp: str = "diode", capacitance: float = 1e-12) -> float:
    """Area estimate (um^2) of one array from its device counts and :data:`AREA_UM2`."""
    a = AREA_UM2
    return float(devices.get("transconductors", 0) * a["transconductors"]
                 + devices.get("capacitors", 0) * capacitance / CAPACITANCE_DENSITY
                 + devices.get("switches", 0) * a["switches"]
                 + devices.get("clamps", 0) * a.get(f"clamp_{clamp}", a["clamp_diode"])
                 + devices.get("resistors", 0) * a["resistors"]
                 + devices.get("sources", 0) * a["sources"])


def summary(result: PhaseResult, *, tol: float = 0.01) -> dict:
    """Scalar figures of one network's run (means over presentations), JSON-ready.

    Keys: ``energy_per_inference_J``, ``energy_per_step_J``, ``settling_time_s`` (worst
    presentation: the inference is done when every presentation has settled), ``peak_power_W``,
    ``mean_power_W``, ``devices``, ``area_um2``; None where the figure does not exist, and
    ``settling_time_s`` None as well when some presentation did not settle. When some did not:
    ``unsettled`` (one line: which, and whether it oscillates or approaches slowly) and
    ``energy_free_phase_J`` (the supply's energy over the whole free phase flagged as unsettled,
    mean over presentations), else None.
    """
    f = figures_of_merit(result, tol=tol)

    def mean(x):
        return None if x is None or not np.all(np.isfinite(x)) else float(np.mean(x))

    st = f["settling_time_s"]
    return {"energy_per_inference_J": mean(f["energy_per_inference_J"]),
            "energy_per_step_J": mean(f["energy_per_step_J"]),
            "energy_free_phase_J": mean(f["energy_free_phase_J"]) if f["unsettled"] else None,
            "unsettled": f["unsettled"],
            "settling_time_s": None if st is None or not np.all(np.isfinite(st)) else float(np.max(st)),
            "peak_power_W": None if f["peak_power_W"] is None else float(np.max(f["peak_power_W"])),
            "mean_power_W": mean(f["mean_power_W"]),
            "devices": f["devices"][0] if f["devices"] else None,
            "area_um2": f["area_um2"][0] if f["area_um2"] else None}


def format_si(x: "float | None", unit: str) -> str:
    """``1.23e-9, "J"`` -> ``"1.23 nJ"``; None -> ``"-"``."""
    if x is None or not math.isfinite(x):
        return "-"
    if x == 0:
        return f"0 {unit}"
    for scale, prefix in ((1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, "")):
        if abs(x) < scale * 1000:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"
