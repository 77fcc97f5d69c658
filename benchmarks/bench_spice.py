"""Benchmark: in-the-loop XOR training on the SPICE substrate beside the ODE substrate.

Runs, side by side in one process, XOR (complete graph, 5 hidden neurons, the project's
``TrainingConfig.preset("default")`` as it is in the source when run):

  1. timing: one seed, 200 epochs on ``ode`` (projected Euler, numba) and on ``spice`` (ngspice
     through PySpice; diode clamps, and the stiff limiter); time per epoch of each, and the
     process's peak and current RSS at epoch 10 and epoch 200 of the SPICE run (memory must not
     grow with the number of ngspice runs). Target: 200 epochs on SPICE in under 60 s.
  2. ``--study``: 10 seeds (one batch) on ode and on spice: seeds solved out of 10 on each, and
     the relative difference ``||W_spice - W_ode|| / ||W_ode||`` of the final weights per seed.
     SPICE runs one ngspice transient per seed (``networks_per_run=1``), or with ``--one-netlist``
     all ten seeds in one netlist (slower: the networks share the transient's time steps).

    .venv/bin/python benchmarks/bench_spice.py            # timing and memory (about 30 s)
    .venv/bin/python benchmarks/bench_spice.py --study    # plus the 10-seed study (a few minutes)
    .venv/bin/python benchmarks/bench_spice.py --study --clamp limiter [--one-netlist]
    .venv/bin/python benchmarks/bench_spice.py --continuous   # where weight differences come from
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from deepcircuit import TrainingConfig, train
from deepcircuit.substrates.ode import OdeSubstrate
from deepcircuit.substrates.spice import SpiceSubstrate


def rss_mb() -> tuple[float, float]:
    """(peak, current) resident set size of this process in MB (Linux /proc)."""
    vals = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            vals[line.split(":")[0]] = int(line.split()[1]) / 1024.0
    return vals.get("VmHWM", float("nan")), vals.get("VmRSS", float("nan"))


def timed_training(substrate, config, seeds, record_rss=False):
    """Train XOR; returns (result, seconds per epoch, {epoch: (peak, current RSS MB)})."""
    marks = {}

    def memory(epoch, batch, result):
        if epoch + 1 in (10, config.epochs):
            marks[epoch + 1] = rss_mb()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        res = train("xor", seeds=seeds, config=config, substrate=substrate,
                    callbacks=[memory] if record_rss else [])
        sec = time.perf_counter() - t0
    return res, sec / config.epochs, marks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--study", action="store_true", help="also run the 10-seed solved/weights study")
    p.add_argument("--one-netlist", action="store_true",
                   help="study: all 10 seeds in one netlist (default: one ngspice run per seed, networks_per_run=1)")
    p.add_argument("--continuous", action="store_true",
                   help="also train seeds 0, 6, 8 with the adaptive (continuous-time) ODE and compare weights (~4 min)")
    p.add_argument("--clamp", default="diode", choices=["diode", "limiter"], help="study: the SPICE clamp")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--quick", action="store_true", help="50 epochs instead of 200 (times per epoch stay comparable)")
    args = p.parse_args()
    config = TrainingConfig.preset("default").replace(epochs=50 if args.quick else args.epochs)
    if args.quick:
        print("--quick: 50 epochs; the '200 epochs' column below is 4 x the measured 50-epoch time, and the "
              "second RSS mark is at epoch 50")
    print(f"XOR, complete graph, 5 hidden, preset 'default' = {config}")

    train("xor", seeds=[0], config=config.replace(epochs=1))  # compile numba before timing
    res_ode, ode_epoch, _ = timed_training("ode", config, [0])
    res_spice, spice_epoch, marks = timed_training("spice", config, [0], record_rss=True)
    res_lim, lim_epoch, _ = timed_training(SpiceSubstrate(clamp="limiter"), config, [0])
    n = config.epochs
    print(f"\n{'substrate':<22}{'s / epoch':>12}{'200 epochs (s)':>18}{'x ODE':>10}")
    for name, t in (("ode (euler, numba)", ode_epoch), ("spice (diode clamp)", spice_epoch),
                    ("spice (limiter)", lim_epoch)):
        print(f"{name:<22}{t:>12.4f}{t * 200:>18.2f}{t / ode_epoch:>10.1f}")
    print(f"target: 200 epochs on spice in under 60 s -> {'met' if spice_epoch * 200 < 60 else 'NOT met'} "
          f"({spice_epoch * 200:.1f} s)")
    for e, (peak, cur) in sorted(marks.items()):
        print(f"spice run, epoch {e:>3}: peak RSS {peak:.1f} MB, current RSS {cur:.1f} MB")
    for name, r in (("diode", res_spice), ("limiter", res_lim)):
        a, b = res_ode.networks[0].weights, r.networks[0].weights
        print(f"seed 0, spice ({name}) vs ode: relative weight difference {np.linalg.norm(b - a) / np.linalg.norm(a):.3f}; "
              f"training error ode {res_ode.train_error[0]:.2f}, spice {r.train_error[0]:.2f}")

    if args.study:
        seeds = list(range(10))
        ode, ode_epoch, _ = timed_training("ode", config, seeds)
        spi_sub = SpiceSubstrate(clamp=args.clamp, networks_per_run=None if args.one_netlist else 1)
        spi, spi_epoch, _ = timed_training(spi_sub, config, seeds)
        rel = [np.linalg.norm(spi.networks[k].weights - ode.networks[k].weights)
               / np.linalg.norm(ode.networks[k].weights) for k in range(len(seeds))]
        how = ("all seeds in one netlist" if args.one_netlist else "one ngspice run per seed") + f", {args.clamp} clamps"
        print(f"\n10-seed study ({n} epochs, one batch; spice: {how}): solved ode {ode.solved}/10, spice {spi.solved}/10; "
              f"time per epoch ode {ode_epoch:.4f} s, spice {spi_epoch:.3f} s")
        print("seed  err_ode  err_spice  rel_weight_diff")
        for k in seeds:
            print(f"{k:>4}  {ode.train_error[k]:>7.2f}  {spi.train_error[k]:>9.2f}  {rel[k]:>15.3f}")
        print(f"relative weight difference: median {np.median(rel):.3f}, max {np.max(rel):.3f}")

    if args.continuous:
        seeds = [0, 6, 8]
        runs = {"euler": "ode", "adaptive": OdeSubstrate(method="adaptive", rtol=1e-6, atol=1e-9),
                "limiter": SpiceSubstrate(clamp="limiter", networks_per_run=1),
                "diode": SpiceSubstrate(networks_per_run=1)}
        res = {k: timed_training(sub, config, seeds)[0] for k, sub in runs.items()}
        rel = lambda a, b, k: (np.linalg.norm(res[a].networks[k].weights - res[b].networks[k].weights)
                               / np.linalg.norm(res[b].networks[k].weights))
        pairs = [("adaptive", "euler"), ("limiter", "adaptive"), ("limiter", "euler"), ("diode", "euler"),
                 ("diode", "adaptive")]
        print("\nrelative weight differences ||W_a - W_b|| / ||W_b|| (adaptive = continuous-time ODE reference)")
        print("seed  " + "  ".join(f"{a}-vs-{b}" for a, b in pairs) + "  | train error euler/adaptive/limiter/diode")
        for k, seed in enumerate(seeds):
            errs = "/".join(f"{res[n].train_error[k]:.2f}" for n in runs)
            print(f"{seed:>4}  " + "  ".join(f"{rel(a, b, k):>{len(a) + len(b) + 4}.3f}" for a, b in pairs) + f"  | {errs}")


if __name__ == "__main__":
    main()
