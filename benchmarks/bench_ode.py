"""Benchmark: the 10-seed DEEP XOR study (paper preset) on the ODE substrate.

Runs, side by side in one process:
  1. ``deepcircuit.train`` with the paper preset (200 epochs, T1 = T2 = 1000 Euler steps of 0.05,
     10 seeds as one batch; numba engine, compiled before timing);
  2. a plain numpy loop of the same scheme, one seed and one Euler step at a time (written
     here, independent of the package), which is how the reference notebooks run;
and prints both times and their ratio. Target (issue 2): at most 1/50 of the reference's
~115 s, i.e. about 2.3 s for step 1.

    .venv/bin/python benchmarks/bench_ode.py            # full: 10 seeds in both
    .venv/bin/python benchmarks/bench_ode.py --quick    # plain loop on 2 seeds, scaled x5 (stated)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from deepcircuit import TrainingConfig, get_task, train


def plain_numpy_study(seeds, epochs=200, T1=1000, T2=1000, dt=0.05, beta=10.0, eta=100.0, n_hidden=5):
    """The reference scheme as a plain per-seed, per-step numpy loop; returns solved count."""
    task = get_task("xor")
    X, Y = task.inputs, task.targets
    n_x, n_y = X.shape[1], Y.shape[1]
    N = n_x + n_hidden + n_y
    solved = 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        W = rng.normal(0, 0.05, (N, N))
        np.fill_diagonal(W, 0)
        W[:, :n_x] = 0
        for _ in range(epochs):
            S = np.concatenate([X, rng.uniform(0, 0.1, (len(X), N - n_x))], axis=1)
            for _ in range(T1):
                dS = S @ W - S * W.sum(axis=1)
                S[:, n_x:] = np.clip(S[:, n_x:] + dt * dS[:, n_x:], 0, 1)
            free_outputs = S[:, -n_y:].copy()
            traj = np.empty((T2 + 1,) + S.shape)
            traj[0] = S
            for t in range(T2):
                dS = S @ W - S * W.sum(axis=1)
                dS[:, -n_y:] += beta * (Y - S[:, -n_y:])
                S[:, n_x:] = np.clip(S[:, n_x:] + dt * dS[:, n_x:], 0, 1)
                traj[t + 1] = S
            dW = np.einsum("tpi,tpj->ij", traj[1:], traj[1:] - traj[:-1]) / (len(X) * T2)
            W += eta * dW
            np.fill_diagonal(W, 0)
            W[:, :n_x] = 0
        solved += int(task.error(free_outputs[None])[0] == 0)  # last epoch's free phase
    return solved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="plain loop on 2 seeds only, time scaled to 10")
    args = ap.parse_args()
    cfg = TrainingConfig.preset("paper")
    train("xor", seeds=[0], config=cfg.replace(epochs=1, free_steps=5, nudged_steps=5))  # compile numba

    t0 = time.perf_counter()
    r = train("xor", seeds=list(range(10)), config=cfg)
    t_dc = time.perf_counter() - t0

    plain_seeds = [0, 1] if args.quick else list(range(10))
    t0 = time.perf_counter()
    plain_solved = plain_numpy_study(plain_seeds)
    t_plain = (time.perf_counter() - t0) * (10 / len(plain_seeds))

    steps = 10 * 200 * (cfg.free_steps + cfg.nudged_steps)
    print("10-seed DEEP XOR study, paper preset (200 epochs, T1 = T2 = 1000, dt = 0.05)")
    print(f"  Euler steps: 10 seeds x 200 epochs x 2000 = {steps:,} (each over 4 presentations)")
    print(f"  deepcircuit (batched, numba):   {t_dc:7.2f} s   solved {r.solved}/10")
    scaled = " (2 seeds measured, x5)" if args.quick else ""
    print(f"  plain per-seed numpy loop:      {t_plain:7.2f} s{scaled}   solved {plain_solved}/{len(plain_seeds)}")
    print(f"  speed-up: {t_plain / t_dc:.1f}x   (target: 115 s reference / 50 = 2.3 s; "
          f"{'met' if t_dc <= 2.3 else 'NOT met'} on this run)")


if __name__ == "__main__":
    main()
