"""Benchmark: hardware figures of merit of the SPICE circuit against network size, V_scale and C.

The network: the project's default initial XOR network (``TrainingConfig.preset("default")``,
seed 0) with N hidden neurons, of the ``deep-leaky`` family with gamma = 1 (plain DEEP conserves
activity: its free dynamics has a zero eigenvalue and settles only when clamps engage, so many
random initial networks do not settle within the free phase and have no settling time; the leak
makes every run settle; ``--model deep`` measures plain DEEP and reports unsettled runs as such),
on a sparse graph of fan-in 8 (every free neuron receives 8 connections from random other
neurons: the device count grows linearly with N, and N = 200 stays simulable; ``--complete`` uses
complete graphs, whose simulation time grows about as N^3), OTA synapses
(``transconductor="ota"``, the documented defaults), diode clamps (passive, so the OTAs are the
only consumers; ``--clamp precision`` adds the op-amps), one presentation (x = [1, 0], bias 1;
target 1), free phase 1000 steps + nudged phase 1000 steps of dt = 0.05 tau. Measured on each circuit
(``deepcircuit.studies.hardware_figures``): settling time, energy per inference and per training step from
the supply current integrated over ngspice's own time points, peak power, devices and area.

Checked against the analytic expectation in one table:

* static power times settling time: the OTAs are class-A stages, so the supply current is their
  quiescent current ``I_q = branches * sum |g W| V_L`` whatever they output, and the energy of an
  inference should be ``VDD * I_q * t_settle`` (ratio 1 up to the precision clamp's extra current);
* the charge on the capacitors: the supply must at least deliver the charge that moved onto the
  node capacitors, ``E >= VDD * C * sum_j |V_j(end) - V_j(0)|`` (ratio >= 1; it shows how much of
  the energy is bias overhead rather than signal);
* settling time against the slowest linear mode of the free dynamics at the equilibrium: for the
  neurons strictly inside the box, ``t_lin = tau * ln(d0 / 0.01) / |Re lambda_max|`` with ``d0`` the
  largest initial distance (a rough expectation: clamped neurons and nonlinearity change it).

    .venv/bin/python benchmarks/bench_hardware.py              # N = 5 .. 200, V_scale and C sweeps
    .venv/bin/python benchmarks/bench_hardware.py --quick      # N = 5 .. 50, shorter sweeps
    .venv/bin/python benchmarks/bench_hardware.py --out runs/bench_hardware   # plots there
    .venv/bin/python benchmarks/bench_hardware.py --epoch-cost   # CPU s per training epoch by clamp
    .venv/bin/python benchmarks/bench_hardware.py --transfer runs/xor_vccs   # trained models on OTA
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepcircuit import Schedule, TrainingConfig, get_task, initial_states
from deepcircuit.substrates.chip import CircuitUnits, TransconductorModel
from deepcircuit.studies.hardware_figures import figures_of_merit, format_si
from deepcircuit.substrates.spice import SpiceSubstrate
from deepcircuit.learning.initial_networks import make_networks


def fan_in_edges(hidden: int, fan_in: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Edges of a graph where every free neuron of an XOR network receives ``fan_in`` connections."""
    n = 3 + hidden + 1
    return [(int(i), j) for j in range(3, n)
            for i in rng.choice([i for i in range(n) if i != j], size=min(fan_in, n - 1), replace=False)]


def measure(hidden: int, units: CircuitUnits, clamp: str = "diode", seed: int = 0, fan_in: int | None = 8,
            model: str = "deep-leaky", gamma: float = 1.0) -> dict:
    """One circuit's figures and their analytic expectations (``fan_in`` None: complete graph)."""
    task = get_task("xor")
    config = TrainingConfig.preset("default", model=model)
    params = {"gamma": gamma} if model == "deep-leaky" else None
    topology = "complete" if fan_in is None else fan_in_edges(hidden, fan_in, np.random.default_rng(seed))
    net = make_networks(task, model=model, topology=topology, hidden=hidden, seeds=[seed], config=config,
                        params=params)[0]
    inputs, targets = task.inputs[2:3], task.targets[2:3]  # x = [1, 0]: target 1
    s0 = initial_states(np.random.default_rng(seed), 1, inputs, net.roles)
    sched = Schedule(free_steps=1000, nudged_steps=1000)
    sub = SpiceSubstrate(clamp=clamp, units=units, transconductor=TransconductorModel(kind="ota"))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sub.run(net, inputs, s0, sched, targets=targets)
    seconds = time.perf_counter() - t0
    f = figures_of_merit(res)
    fr = net.roles.free
    t_set = float(f["settling_time_s"][0, 0])
    e_inf = float(f["energy_per_inference_J"][0, 0])
    p_static = float(f["static_power_W"][0, 0])
    vdd = f["vdd_V"]
    s_end, s_start = res.free.final[0, 0, fr], res.free.states[0, 0, 0, fr]
    e_charge = vdd * units.capacitance * units.v_scale * float(np.abs(s_end - s_start).sum())
    # Slowest linear mode among the neurons strictly inside the box at the free equilibrium.
    W = net.weights
    J = W.T - np.diag(W.sum(axis=1)) - (gamma if model == "deep-leaky" else 0.0) * np.eye(len(W))
    inside = [j for j in range(net.roles.n_neurons)[fr] if 0.01 < res.free.final[0, 0, j] < 0.99]
    t_lin = float("nan")
    if inside:
        lam = np.linalg.eigvals(J[np.ix_(inside, inside)])
        slow = -float(np.max(lam.real))
        if slow > 0:
            d0 = float(np.abs(s_end - s_start).max())
            t_lin = units.tau * max(np.log(max(d0, 0.01) / 0.01), 0.0) / slow
    dev = f["devices"][0]
    return {"N": hidden, "v_scale": units.v_scale, "C": units.capacitance, "settled": bool(res.free.settled.all()),
            "t_settle": t_set, "t_lin": t_lin, "e_inf": e_inf, "e_step": float(f["energy_per_step_J"][0, 0]),
            "p_static": p_static, "peak": float(f["peak_power_W"][0, 0]), "e_static": p_static * t_set,
            "e_charge": e_charge, "devices": sum(dev.values()), "otas": dev["transconductors"],
            "area": f["area_um2"][0], "meas": f["meas_agreement"], "seconds": seconds}


HEAD = (f"{'N':>4s} {'V_s':>4s} {'C':>8s} {'OTAs':>6s} {'area':>10s} {'t_settle':>9s} {'t_lin':>9s} "
        f"{'E/inf':>9s} {'E/step':>9s} {'P*t':>9s} {'E/(P*t)':>7s} {'VDD*Q_C':>9s} {'E/VDDQ':>7s} "
        f"{'peak P':>8s} {'meas':>7s} {'sim s':>6s}")


def row(r: dict) -> str:
    return (f"{r['N']:4d} {r['v_scale']:4g} {format_si(r['C'], 'F'):>8s} {r['otas']:6d} "
            f"{r['area'] / 1e6:8.3g}mm2 {format_si(r['t_settle'], 's'):>9s} {format_si(r['t_lin'], 's'):>9s} "
            f"{format_si(r['e_inf'], 'J'):>9s} {format_si(r['e_step'], 'J'):>9s} {format_si(r['e_static'], 'J'):>9s} "
            f"{r['e_inf'] / r['e_static']:7.4f} {format_si(r['e_charge'], 'J'):>9s} "
            f"{r['e_inf'] / max(r['e_charge'], 1e-300):7.3g} "
            f"{format_si(r['peak'], 'W'):>8s} {r['meas']:7.1e} {r['seconds']:6.1f}")


def plot(rows_n, rows_v, rows_c, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepcircuit.atomic_files import atomic_output

    fig, ax = plt.subplots(2, 3, figsize=(13, 7))
    for col, (rows, key, label) in enumerate(((rows_n, "N", "hidden neurons N"), (rows_v, "v_scale", "V_scale (V)"),
                                             (rows_c, "C", "node capacitance C (F)"))):
        x = [r[key] for r in rows]
        ax[0, col].loglog(x, [r["e_inf"] for r in rows], "o-", label="energy per inference (measured)")
        ax[0, col].loglog(x, [r["e_step"] for r in rows], "s-", label="energy per training step")
        ax[0, col].loglog(x, [r["e_static"] for r in rows], "k--", label="static power x settling time")
        ax[0, col].loglog(x, [r["e_charge"] for r in rows], ":", label="VDD x charge on the capacitors")
        ax[1, col].loglog(x, [r["t_settle"] for r in rows], "o-", label="settling time (1 % of V_scale)")
        ax[1, col].loglog(x, [r["t_lin"] for r in rows], "k--", label="slowest linear mode")
        ax[0, col].set_ylabel("J")
        ax[1, col].set_ylabel("s")
        ax[1, col].set_xlabel(label)
    ax[0, 0].legend(fontsize=7)
    ax[1, 0].legend(fontsize=7)
    fig.suptitle("SPICE circuit with OTA synapses: energy and settling time")
    fig.tight_layout()
    path = out / "hardware.png"
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def epoch_cost(epochs: int = 3) -> None:
    """CPU time per XOR training epoch (1 seed, default preset) for every clamp and synapse model,
    side by side in this process (``time.process_time``: ngspice runs in-process, and the machine's
    load does not enter); the best of two repetitions."""
    from deepcircuit import train

    cfg = TrainingConfig.preset("default").replace(epochs=epochs)
    res: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            for clamp in ("diode", "limiter", "precision"):
                for tc in ("vccs", "ota"):
                    sub = SpiceSubstrate(clamp=clamp, transconductor=tc)
                    t0 = time.process_time()
                    train("xor", seeds=[0], config=cfg, substrate=sub, progress=False)
                    res.setdefault((clamp, tc), []).append((time.process_time() - t0) / epochs)
    base = min(res[("diode", "vccs")])
    for (clamp, tc), v in res.items():
        print(f"{clamp:10s} {tc:5s} CPU s/epoch {min(v):.3f}  x{min(v) / base:.1f} of diode + vccs")


def transfer(folder: str) -> None:
    """XOR networks trained in the loop (model files ``seed*.json`` in ``folder``) run, without
    retraining, on diode-clamped circuits with ideal VCCS and with OTA synapses: the free phase
    from the same initial states (seed 0); training error per network and whether it settled."""
    from deepcircuit import evaluate
    from deepcircuit.learning.model_file import load_model

    paths = sorted(Path(folder).glob("seed*.json"), key=lambda p: int(p.stem[4:]))
    nets = [load_model(p).network for p in paths]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tc in ("vccs", "ota"):
            traj, err, _ = evaluate(nets, "xor", substrate=SpiceSubstrate(clamp="diode", transconductor=tc), rng=0)
            print(f"{tc:5s} error per network {np.round(err, 2).tolist()}; solved {int((err == 0).sum())} of "
                  f"{len(err)}; settled within the free phase: {traj.settled.all(axis=1).tolist()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 5 .. 50 and three-point sweeps")
    ap.add_argument("--clamp", default="diode", help="clamp of the circuit (default diode)")
    ap.add_argument("--out", default="runs/bench_hardware", help="folder of the plot")
    ap.add_argument("--model", default="deep-leaky", choices=["deep-leaky", "deep"],
                    help="family (default deep-leaky with gamma = 1: every run settles)")
    ap.add_argument("--complete", action="store_true", help="complete graphs (N up to 50) instead of fan-in 8")
    ap.add_argument("--epoch-cost", action="store_true",
                    help="only the CPU time per XOR training epoch of every clamp and synapse model")
    ap.add_argument("--transfer", metavar="FOLDER", default=None,
                    help="only: run the XOR models in FOLDER (seed*.json) on VCCS and OTA circuits")
    args = ap.parse_args()
    if args.transfer:
        transfer(args.transfer)
        return
    if args.epoch_cost:
        epoch_cost()
        return
    sizes = (5, 10, 20, 50) if args.quick or args.complete else (5, 10, 20, 50, 100, 200)
    fan_in = None if args.complete else 8
    v_scales = (1.0, 5.0, 20.0) if args.quick else (1.0, 2.0, 5.0, 10.0, 20.0)
    caps = (1e-13, 1e-12, 1e-11) if args.quick else (1e-13, 3e-13, 1e-12, 3e-12, 1e-11)
    base = CircuitUnits()
    print(f"OTA synapses ({TransconductorModel(kind='ota')}), clamp {args.clamp}, "
          f"{'complete graphs' if fan_in is None else f'fan-in {fan_in}'}, {args.model}, one presentation; "
          "2 shared cores, loaded: 'sim s' is indicative only\n")
    print(HEAD)
    rows_n = []
    for n in sizes:
        rows_n.append(measure(n, base, args.clamp, fan_in=fan_in, model=args.model))
        print(row(rows_n[-1]), flush=True)
    print()
    rows_v = []
    for v in v_scales:
        rows_v.append(measure(10, replace(base, v_scale=v), args.clamp, fan_in=fan_in, model=args.model))
        print(row(rows_v[-1]), flush=True)
    print()
    rows_c = []
    for c in caps:
        rows_c.append(measure(10, replace(base, capacitance=c), args.clamp, fan_in=fan_in, model=args.model))
        print(row(rows_c[-1]), flush=True)
    allr = rows_n + rows_v + rows_c
    ratio = [r["e_inf"] / r["e_static"] for r in allr]
    print(f"\nenergy / (static power x settling time): {min(ratio):.4f} .. {max(ratio):.4f}; "
          f"energy / (VDD x capacitor charge): {min(r['e_inf'] / r['e_charge'] for r in allr):.3g} .. "
          f"{max(r['e_inf'] / r['e_charge'] for r in allr):.3g}; largest difference between the integral "
          f"here and ngspice's .meas INTEG over the free phase: {max(r['meas'] for r in allr):.1e}; "
          f"{sum(not r['settled'] for r in allr)} runs not settled")
    print(f"plot: {plot(rows_n, rows_v, rows_c, Path(args.out))}")


if __name__ == "__main__":
    main()
