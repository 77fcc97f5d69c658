"""Benchmark: the cost of running ngspice in its background thread (what makes Ctrl-C work).

The SPICE substrate runs each transient with ``bg_run`` and waits in Python (so SIGINT reaches
the main thread and a wall-time budget can halt the run) instead of a foreground ``run`` inside
the C library. This measures both, interleaved in one process on the same netlist (one XOR
network, 4 presentations, both phases of the training schedule), and prints the time per run of
each and their ratio. Target: the background run costs at most 10 % more per training run.

    .venv/bin/python benchmarks/bench_spice_background.py [--runs 200] [--free-steps 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from deepcircuit import Network, NetworkBatch, Roles, get_task
from deepcircuit.substrates.circuit import compile_netlist
from deepcircuit.substrates import Schedule, initial_states
from deepcircuit.substrates.ngspice_shared import load_ngspice


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="runs of each kind (default 200)")
    ap.add_argument("--free-steps", type=int, default=1000, help="steps of each phase (default 1000)")
    args = ap.parse_args()
    xor = get_task("xor")
    net = Network.create(Roles(3, (5,), 1), rng=1)
    s0 = initial_states(np.random.default_rng(0), 1, xor.inputs, net.roles)
    sched = Schedule(free_steps=args.free_steps, nudged_steps=args.free_steps)
    text = compile_netlist(NetworkBatch.of(net), xor.inputs, s0, sched, targets=xor.targets,
                           options={"reltol": 1e-4}).text
    ng = load_ngspice()

    def one(background: bool) -> float:
        ng.circuit(text)
        t0 = time.perf_counter()
        if background:
            ng.run_transient(None)
        else:
            ng.command("run")
        dt = time.perf_counter() - t0
        ng.command("destroy all")
        ng.command("remcirc")
        return dt

    times = {True: [], False: []}
    for k in range(2 * args.runs):
        bg = bool(k % 2)
        times[bg].append(one(bg))
    fg, bgm = np.median(times[False]), np.median(times[True])
    print(f"foreground run: median {1e3 * fg:.2f} ms per transient ({args.runs} runs)")
    print(f"background run: median {1e3 * bgm:.2f} ms per transient ({args.runs} runs)")
    print(f"ratio background / foreground: {bgm / fg:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
