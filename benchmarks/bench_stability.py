"""Benchmark: what the stability analysis costs next to the simulation it analyses.

Measures, side by side in one process:
  1. ``train`` of the 10-seed DEEP XOR study (paper preset: 200 epochs, T1 = T2 = 1000) with
     and without ``callbacks=[certificate_recorder()]``: the recorder's overhead per epoch;
  2. one ODE run of both phases for those 10 networks (4 presentations, 2 x 1001 samples) and
     ``check_phases`` of its trajectories (certificates, equilibria, V along every sample).
Each time is the best of ``--repeat`` runs (the machine is shared).

    .venv/bin/python benchmarks/bench_stability.py            # full
    .venv/bin/python benchmarks/bench_stability.py --quick    # 50 epochs instead of 200 (stated)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from deepcircuit import NetworkBatch, TrainingConfig, get_substrate, get_task, initial_states, train
from deepcircuit.stability.lyapunov import certificate_recorder, check_phases


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    epochs = 50 if args.quick else 200
    task = get_task("xor")
    cfg = TrainingConfig.preset("paper").replace(epochs=epochs)
    seeds = list(range(10))
    train(task, seeds=[0], config=cfg.replace(epochs=1))  # compile the numba loop first

    # Interleaved, so that load from other processes hits both alike.
    plain, rec = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        train(task, seeds=seeds, config=cfg)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = train(task, seeds=seeds, config=cfg, callbacks=[certificate_recorder()])
        rec.append(time.perf_counter() - t0)
    t_plain, t_rec = min(plain), min(rec)
    print(f"train, 10 seeds x {epochs} epochs (paper preset){' [--quick: 50 epochs]' if args.quick else ''}:")
    print(f"  without recorder   {t_plain:8.3f} s")
    print(f"  with recorder      {t_rec:8.3f} s   difference {t_rec - t_plain:+.3f} s (noisy on a shared machine)")
    hurwitz = np.mean([np.mean(h.extra["hurwitz"]) for h in res.histories])
    cert = np.mean([np.mean(h.extra["gershgorin_certified"]) for h in res.histories])
    print(f"  recorded: Gershgorin-certified in {100 * cert:.0f} % of epochs, restricted Jacobian "
          f"Hurwitz in {100 * hurwitz:.0f} % of (network, epoch) records")

    batch = NetworkBatch.of(res.networks)
    sub = get_substrate("ode")
    s0 = initial_states(np.random.default_rng(0), len(batch), task.inputs, batch.roles)
    sched = cfg.schedule
    t_run, phases = best(lambda: sub.run(batch, task.inputs, s0, sched, targets=task.targets), args.repeat)
    recorder = certificate_recorder()
    t_cb, _ = best(lambda: [recorder(0, batch, phases) for _ in range(100)], args.repeat)
    print(f"  recorder alone     {1e3 * t_cb / 100:8.3f} ms per epoch (10 networks x 4 presentations) vs "
          f"{1e3 * t_plain / epochs:.3f} ms per training epoch: {100 * (t_cb / 100) / (t_plain / epochs):.0f} %")
    t_chk, checks = best(lambda: check_phases(phases, batch, beta=sched.beta, targets=task.targets), args.repeat)
    n = sum(len(c.checks) for c in checks.values())
    mono = sum(p.monotone for c in checks.values() for p in c.checks)
    print("one run of both phases for the 10 trained networks (4 presentations, 2 x 1001 samples):")
    print(f"  ODE run            {t_run:8.3f} s")
    print(f"  check_phases       {t_chk:8.3f} s   ratio check/run {t_chk / t_run:.2f}; "
          f"{1e3 * t_chk / n:.2f} ms per (network, presentation, phase); V monotone in {mono}/{n}")


if __name__ == "__main__":
    main()
