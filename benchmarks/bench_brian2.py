"""Brian2 substrate speed: 200-epoch XOR training on Brian2 (standalone, numpy, cython) beside the ODE.

Run: ``.venv/bin/python benchmarks/bench_brian2.py [--epochs 200] [--seeds 1]``

Everything runs in one process, side by side, with the default training settings (T1 = T2 =
1000 Euler steps of 0.05 tau, 4 presentations). Each substrate is warmed up first (numba
compilation, Brian2 code generation and Cython compilation, which is cached on disk) so the
numbers are steady-state times per epoch. The issue's targets: Brian2 within 20x the ODE
substrate's time per epoch, and a 200-epoch XOR training in under a minute; for the compiled
``cpp_standalone`` target (issue 14): within 3x the ODE substrate's time, excluding the one-time
build, which is reported separately (``build s``: code generation plus compilation in this
process; compiled objects are cached on disk, so only the first build ever compiles everything).
Two standalone modes are timed: the whole training as one program (default) and one compiled
phase program per epoch (``whole_training=False``). Also reports the
time of Brian2's own ``Network.run`` per phase (``driver="network"``, code regenerated on every
call) and the weight difference to the ODE-trained network.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from deepcircuit import get_substrate
from deepcircuit.training import TrainingConfig, train


def timed(substrate, cfg, seeds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train("xor", seeds=seeds, config=cfg.replace(epochs=2), substrate=substrate)  # warm-up
        t0 = time.perf_counter()
        res = train("xor", seeds=seeds, config=cfg, substrate=substrate)
        return time.perf_counter() - t0, res


def spiking_sweep() -> None:
    """How far the spiking substrate's settled state is from the ODE equilibrium."""
    from deepcircuit import Schedule, get_task, initial_states
    from deepcircuit.substrates.ode import OdeSubstrate

    task = get_task("xor")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nets = train("xor", seeds=[6, 8], config=TrainingConfig.preset("default")).networks
    s0 = initial_states(np.random.default_rng(0), 2, task.inputs, nets[0].roles)
    ref = OdeSubstrate().run(nets, task.inputs, s0, Schedule(free_steps=4000)).free
    print("spiking vs ODE equilibrium, XOR networks trained on the ODE substrate (seeds 6, 8)")
    print(f"{'max rate':>9s} {'run (tau)':>9s} {'max|window mean - ODE| per net':>32s} {'XOR error per net':>18s} {'s':>6s}")
    for rate, substeps in ((1000.0, 10), (5000.0, 10), (20000.0, 20)):
        for steps in (500, 1000, 2000):
            sub = get_substrate("brian2-spiking", max_rate=rate, substeps=substeps)
            t0 = time.perf_counter()
            tr = sub.run(nets, task.inputs, s0, Schedule(free_steps=steps)).free
            el = time.perf_counter() - t0
            wm = tr.meta["window_mean"]
            err = np.abs(wm[..., 3:] - ref.final[..., 3:]).max(axis=(1, 2))
            print(f"{rate:9.0f} {steps * 0.05:9.0f} {np.array2string(err, precision=2):>32s} "
                  f"{np.array2string(task.error(wm[..., -1:]), precision=2):>18s} {el:6.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--network-driver-epochs", type=int, default=10,
                    help="epochs timed with Brian2's Network.run per phase (0 = skip)")
    ap.add_argument("--runtime-targets", default="numpy,cython",
                    help="Brian2 runtime targets to time as well (comma-separated; '' = none)")
    ap.add_argument("--spiking", action="store_true",
                    help="also sweep the spiking substrate's distance from the ODE equilibrium")
    args = ap.parse_args()
    cfg = TrainingConfig.preset("default").replace(epochs=args.epochs)
    seeds = list(range(args.seeds))
    rows = []
    t_ode, r_ode = timed("ode", cfg, seeds)
    rows.append(("ode (numba projected Euler)", args.epochs, t_ode, r_ode))
    builds = {}
    for label, whole in (("whole training as one program", True), ("phase program per epoch", False)):
        sub = get_substrate("brian2", target="cpp_standalone", whole_training=whole)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            train("xor", seeds=seeds, config=cfg, substrate=sub)  # builds (or finds) the program
            first = time.perf_counter() - t0
        builds[label] = (sub.build_seconds, first)
        t, r = timed(sub, cfg, seeds)
        rows.append((f"brian2 cpp_standalone, {label}", args.epochs, t, r))
    for target in [t for t in args.runtime_targets.split(",") if t]:
        sub = get_substrate("brian2", target=target)
        t, r = timed(sub, cfg, seeds)
        rows.append((f"brian2 {target}", args.epochs, t, r))
    if args.network_driver_epochs:
        sub = get_substrate("brian2", target="numpy", driver="network")
        n = args.network_driver_epochs
        t, r = timed(sub, cfg.replace(epochs=n), seeds)
        rows.append(("brian2 numpy, Network.run per phase", n, t, None))
    per_ode = t_ode / args.epochs
    print(f"XOR, {len(seeds)} seed(s), T1 = T2 = {cfg.free_steps} steps, {args.epochs} epochs\n")
    print(f"{'substrate':56s} {'epochs':>6s} {'total s':>8s} {'ms/epoch':>9s} {'x ODE':>7s} "
          f"{'200 ep. s':>9s} {'rel dW vs ODE':>14s}")
    for name, n, t, r in rows:
        per = t / n
        dw = "" if r is None else f"{np.linalg.norm(r.networks[0].weights - r_ode.networks[0].weights) / np.linalg.norm(r_ode.networks[0].weights):.2e}"
        print(f"{name:56s} {n:6d} {t:8.2f} {1e3 * per:9.2f} {per / per_ode:7.1f} {200 * per:9.1f} {dw:>14s}")
    for label, (b, first) in builds.items():
        print(f"one-time build, cpp_standalone {label}: {b:.1f} s (first training incl. build {first:.1f} s)")
    print("\ntargets: Brian2 <= 20x ODE per epoch; 200 epochs < 60 s; cpp_standalone <= 3x ODE")
    if args.spiking:
        print()
        spiking_sweep()


if __name__ == "__main__":
    main()
