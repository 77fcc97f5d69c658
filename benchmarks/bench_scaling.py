"""Benchmark: the ODE substrate's Euler engines against a bare numpy step, N = 10..1000, batch 1..512.

For every size (N neurons, complete graph, 2 clamped inputs incl. bias) and batch (presentations P,
one network), it times in the same process, interleaved, best of ``--repeats``:

* ``bare``: a plain batched numpy step of the same shape, written here,
  ``ds = X @ A - X * d; X[..., 2:] = clip(X[..., 2:] + dt * ds[..., 2:], 0, 1)`` with
  ``X (1, P, N) @ A (1, N, N)`` (no settling test, nothing stored);
* ``OdeSubstrate(engine=e, record="final").run`` of one free phase for e = numba, blas and auto
  (auto = what the package uses by default), which also computes the per-presentation settling
  speed every step and returns a Trajectory.

It prints time per step (microseconds) and the ratio bare / engine (> 1: the engine is faster).
Targets (issue 11): auto >= 1.0 everywhere, >= 1.5 for N <= 50.

Then, unless ``--no-digits``, one epoch of a digits-sized DEEP training: layered 64-100-10 with
feedback (N = 65 + 100 + 10), minibatch 64, 1797 * 0.8 = 1437 samples, 50 tau per phase at
dt = 0.05 (1000 + 1000 steps), rule from ``synaptic_traces`` (``record="final"``), and the peak RSS.
The epoch is timed on ``--digits-batches`` minibatches and scaled to 23 (stated in the output).

    nice -n 10 .venv/bin/python benchmarks/bench_scaling.py
    nice -n 10 .venv/bin/python benchmarks/bench_scaling.py --quick   # fewer sizes, 1 repeat
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from deepcircuit import Network, Schedule
from deepcircuit.learning.rule import stdp_update
from deepcircuit.model.roles import Roles
from deepcircuit.substrates import initial_states
from deepcircuit.substrates.ode import OdeSubstrate, choose_engine


def bare_step(X, A, d, steps, dt, nx):
    for _ in range(steps):
        dS = X @ A - X * d[:, None, :]
        X[..., nx:] = np.clip(X[..., nx:] + dt * dS[..., nx:], 0, 1)
    return X


def clock() -> float:
    """CPU seconds of this thread: on a shared, loaded machine wall time mostly measures the
    other processes; with BLAS limited to one thread (``--blas-threads 1``, the default) the
    thread's CPU time is the work done."""
    return time.thread_time()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_grid(sizes, batches, repeats, budget):
    rng = np.random.default_rng(0)
    print(f"{'N':>5} {'P':>4} {'steps':>6} {'bare us':>9} {'numba us':>9} {'blas us':>9} {'auto':>6} "
          f"{'auto us':>9} {'bare/numba':>10} {'bare/blas':>9} {'bare/auto':>9}")
    worst = {}
    for N in sizes:
        roles = Roles(2, (N - 3,), 1)
        net = Network.create(roles, rng=1, init_scale=1.0 / np.sqrt(N))
        A = net.weights[None].copy()
        d = A.sum(axis=-1)
        for P in batches:
            inputs = np.column_stack([rng.uniform(0, 1, P), np.ones(P)])
            s0 = initial_states(rng, 1, inputs, roles)
            # steps so that one bare run takes about `budget` seconds (from a short probe)
            X = s0.copy()
            t = clock(); bare_step(X, A, d, 5, 0.05, 2); probe = (clock() - t) / 5
            steps = int(np.clip(budget / max(probe, 1e-7), 100, 5000))
            # a phase is 1000 steps in practice: time that many when a run stays under a second, so
            # the per-call setup (weights checked and copied once) weighs as it does in use
            steps = max(steps, min(1000, int(1.0 / max(probe, 1e-7))))
            sched = Schedule(dt=0.05, free_steps=steps, nudged_steps=0)
            subs = {e: OdeSubstrate(engine=e, record="final") for e in ("numba", "blas", "auto")}
            for sub in subs.values():  # compile / warm up
                sub.run(net, inputs, s0, Schedule(dt=0.05, free_steps=3, nudged_steps=0))
            best = {k: np.inf for k in ("bare", "numba", "blas", "auto")}
            for _ in range(repeats):
                X = s0.copy()
                t = clock(); bare_step(X, A, d, steps, 0.05, 2)
                best["bare"] = min(best["bare"], clock() - t)
                for e, sub in subs.items():
                    t = clock(); sub.run(net, inputs, s0, sched)
                    best[e] = min(best[e], clock() - t)
            us = {k: 1e6 * v / steps for k, v in best.items()}
            r = {k: us["bare"] / us[k] for k in ("numba", "blas", "auto")}
            worst[(N, P)] = r["auto"]
            print(f"{N:5d} {P:4d} {steps:6d} {us['bare']:9.1f} {us['numba']:9.1f} {us['blas']:9.1f} "
                  f"{choose_engine(1, P, N - 2):>6} {us['auto']:9.1f} {r['numba']:10.2f} {r['blas']:9.2f} "
                  f"{r['auto']:9.2f}", flush=True)
    small = [v for (N, P), v in worst.items() if N <= 50]
    print(f"\nauto vs bare: worst ratio {min(worst.values()):.2f} (target >= 1.0); worst at N <= 50 "
          f"{min(small) if small else float('nan'):.2f} (target >= 1.5)")


def digits_epoch(n_batches: int, seeds: int, record="final") -> None:
    rng = np.random.default_rng(0)
    roles = Roles(65, (100,), 10)
    nets = [Network.create(roles, topology="layered", rng=s, init_scale=0.05) for s in range(seeds)]
    from deepcircuit.model.network import NetworkBatch

    batch = NetworkBatch.of(nets)
    sched = Schedule(dt=0.05, free_steps=1000, nudged_steps=1000, beta=1.0)
    x = rng.uniform(0, 1, (64, 64))
    inputs = np.column_stack([x, np.ones(64)])
    targets = np.eye(10)[rng.integers(0, 10, 64)]
    sub = OdeSubstrate(record=record)
    sub.run(batch, inputs, initial_states(rng, seeds, inputs, roles), Schedule(free_steps=3, nudged_steps=3),
            targets=targets)
    rss0 = peak_rss_mb()
    t = clock()
    for _ in range(n_batches):
        res = sub.run(batch, inputs, initial_states(rng, seeds, inputs, roles), sched, targets=targets)
        dW = stdp_update(res.nudged, nominal_steps=sched.nudged_steps)
        batch = NetworkBatch.of([n.with_weights(np.where(n.mask, n.weights + 1.0 * dW[k], 0.0))
                                 for k, n in enumerate(batch.networks)])
    per_batch = (clock() - t) / n_batches
    full_batches = int(np.ceil(1797 * 0.8 / 64))
    print(f"\ndigits-sized epoch (layered 65-100-10, {seeds} seed(s), minibatch 64, 1000 + 1000 steps of 0.05 tau, "
          f"engine {res.nudged.meta['engine']}, record={record!r}): {per_batch:.2f} CPU s per minibatch, "
          f"{per_batch * full_batches:.1f} s per epoch of {full_batches} minibatches (timed on {n_batches}, scaled); "
          f"peak RSS {peak_rss_mb():.0f} MB (before the epoch {rss0:.0f} MB)")
    full_mb = 2 * seeds * 64 * 1001 * 175 * 8 / 2**20
    print(f"(record='full' holds {full_mb:.0f} MB of trajectory per minibatch)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N in (10, 50, 200, 1000), batch in (1, 64, 512), 1 repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget", type=float, default=0.05, help="seconds per bare run (sets the step count)")
    ap.add_argument("--no-digits", action="store_true")
    ap.add_argument("--no-grid", action="store_true", help="only the digits epoch (its peak RSS is then its own)")
    ap.add_argument("--digits-batches", type=int, default=3)
    ap.add_argument("--digits-seeds", type=int, default=1)
    ap.add_argument("--digits-full", action="store_true", help="also time record='full' (for comparison)")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="limit BLAS threads (threadpoolctl) for the whole run; 0: the library's own "
                         "(then times are wall-clock)")
    ap.add_argument("--sizes", type=int, nargs="*")
    ap.add_argument("--batches", type=int, nargs="*")
    a = ap.parse_args()
    global clock
    if not a.blas_threads:
        clock = time.perf_counter  # noqa: F811 - CPU time would count every BLAS thread
    if a.blas_threads:
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS numba calls: load it before limiting)
        from threadpoolctl import threadpool_limits

        threadpool_limits(a.blas_threads)
    sizes = (10, 50, 200, 1000) if a.quick else (10, 20, 50, 100, 200, 500, 1000)
    batches = (1, 64, 512) if a.quick else (1, 8, 64, 512)
    sizes, batches = a.sizes or sizes, a.batches or batches
    if not a.no_grid:
        time_grid(sizes, batches, 1 if a.quick else a.repeats, a.budget)
    if not a.no_digits:
        digits_epoch(a.digits_batches, a.digits_seeds, "final")
        if a.digits_full:  # after 'final', since the peak RSS only grows
            digits_epoch(a.digits_batches, a.digits_seeds, "full")


if __name__ == "__main__":
    main()
