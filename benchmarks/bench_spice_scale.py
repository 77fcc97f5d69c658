"""Benchmark: SPICE at digits size. Presentations per ngspice run and worker processes.

A random layered 64-100-10 leaky-DEEP network (N = 65 + 100 + 10, feedback included, weights
``~ Normal(0, init_scale^2)``, leak gamma = 1: it settles within 20 tau with distinct outputs,
which a random plain DEEP network does not: its outputs sit at the rails, tied), limiter clamp, reltol 1e-4, free phase only (what ``compare``'s
predictions need), ``--tau`` tau at dt = 0.05. The same ``--samples`` presentations (random
inputs in [0, 1]) are run with every ``presentations_per_run`` of ``--per-run`` and every worker
count of ``--workers``; it prints wall seconds, seconds per presentation, peak RSS, and the
largest state difference to the first configuration (the batching must not change the answer
beyond ngspice's tolerances) and to the ODE substrate, and the fraction of argmax predictions
that agree with the ODE.

A configuration whose estimated time (from the previous ones) exceeds ``--max-seconds`` is
skipped and said so. Wall-clock times on a shared machine: the load is printed with them.

    nice -n 10 .venv/bin/python benchmarks/bench_spice_scale.py
    nice -n 10 .venv/bin/python benchmarks/bench_spice_scale.py --samples 8 --per-run 1 4 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from deepcircuit import Network, Schedule
from deepcircuit.model.roles import Roles
from deepcircuit.substrates import initial_states
from deepcircuit.substrates.ode import OdeSubstrate
from deepcircuit.substrates.spice import SpiceSubstrate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--per-run", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tau", type=float, default=20.0, help="free phase length (tau)")
    ap.add_argument("--init-scale", type=float, default=0.05)
    ap.add_argument("--gamma", type=float, default=1.0, help="leak of the deep-leaky network")
    ap.add_argument("--clamp", default="limiter")
    ap.add_argument("--max-seconds", type=float, default=240.0)
    a = ap.parse_args()

    rng = np.random.default_rng(0)
    roles = Roles(65, (100,), 10)
    net = Network.create(roles, family="deep-leaky", params={"gamma": a.gamma}, topology="layered", rng=0,
                         init_scale=a.init_scale)
    P = a.samples
    inputs = np.column_stack([rng.uniform(0, 1, (P, 64)), np.ones(P)])
    s0 = initial_states(rng, 1, inputs, roles)
    sched = Schedule(dt=0.05, free_steps=int(round(a.tau / 0.05)), nudged_steps=0)
    ode = OdeSubstrate().run(net, inputs, s0, sched).free
    pred_ode = ode.outputs[0].argmax(axis=1)
    print(f"layered 64-100-10 deep-leaky (gamma {a.gamma:g}), {P} presentations, free phase {a.tau:g} tau, clamp {a.clamp}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; ODE settled {ode.settled.mean():.2f}")
    print(f"{'per run':>7} {'workers':>7} {'runs':>5} {'wall s':>8} {'s/pres':>7} {'peak RSS MB':>11} "
          f"{'max |ds| vs first':>17} {'max |ds| vs ODE':>15} {'agree ODE':>9} {'load':>5}")
    first = None
    per_pres = {}
    for q in a.per_run:
        if q > P:
            print(f"{q:7d}  skipped: more than the {P} presentations (use --samples {q})")
            continue
        for w in a.workers:
            # estimate: the same batching with fewer workers, else the largest smaller batching
            # with its cost per presentation growing like the copies per netlist (conservative)
            if (q, 1) in per_pres:
                est = per_pres[(q, 1)] * P
            else:
                done = [k for k in per_pres if k[0] < q and k[1] == 1]
                est = per_pres[max(done)] * q / max(done)[0] * P if done else 0.0
            if est > a.max_seconds:
                print(f"{q:7d} {w:7d}  skipped: estimated {est:.0f} s > --max-seconds {a.max_seconds:g}")
                continue
            sub = SpiceSubstrate(clamp=a.clamp, presentations_per_run=q, workers=w)
            try:
                if w > 1:  # start the workers (spawn + import) outside the timing, as a long run would
                    k = min(P, w * q)
                    sub.run(net, inputs[:k], s0[:, :k], Schedule(dt=0.05, free_steps=2, nudged_steps=0))
                t = time.perf_counter()
                tr = sub.run(net, inputs, s0, sched).free
                wall = time.perf_counter() - t
            finally:
                sub.close()
            per_pres[(q, w)] = wall / P
            first = tr if first is None else first
            d_first = np.abs(tr.final - first.final).max()
            d_ode = np.abs(tr.final - ode.final).max()
            agree = (tr.outputs[0].argmax(axis=1) == pred_ode).mean()
            print(f"{q:7d} {w:7d} {-(-P // q):5d} {wall:8.1f} {wall / P:7.2f} {tr.meta['peak_rss_mb']:11.0f} "
                  f"{d_first:17.2e} {d_ode:15.2e} {agree:9.2f} {os.getloadavg()[0]:5.1f}", flush=True)


if __name__ == "__main__":
    main()
