"""Benchmark: the cost of running a study through ``deepcircuit sweep`` (Dask) instead of a loop.

Measured in one run, side by side:

  1. overhead per run: 1000 tiny XOR runs (ODE, 1 epoch of 20 + 20 steps, with the run's
     evaluation and Lyapunov check) on a 1-worker Dask cluster, warm. Overhead = (sweep wall time
     - sum of the runs' own seconds) / runs: scheduling, pickling, the two atomic file writes per
     run (done by the client while the worker computes) and the final gather into Parquet.
     Target: < 20 ms per run.
  2. speed-up of 2 workers over 1 on a CPU-bound sweep (16 XOR runs on ODE of about a second
     each), both clusters warm (start-up excluded; it is printed). Target: >= 1.8x on 2 cores.
  3. memory: a 500-run SPICE sweep (tiny runs: 3 epochs of 40 + 40 steps, mismatch 0.02, every
     run a new chip) on 2 workers; the workers' resident memory every 50 runs. Flat means the
     last sample is within 10 % of the first.

The machine's load average is printed: the speed-up needs two idle cores. On a loaded Linux
machine with ``kernel.sched_autogroup_enabled = 1`` the CPU is shared fairly between sessions,
not processes, so a second worker process of the same session gets no extra CPU; the script then
shows the sum of the runs' own seconds roughly doubling with 2 workers (each run slower), which is
the scheduler's share, not Dask's overhead.

    .venv/bin/python benchmarks/bench_sweep.py            # all three (a few minutes)
    .venv/bin/python benchmarks/bench_sweep.py --quick    # 200 / 8 / 100 runs
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def worker_rss_mb(client) -> dict:
    """Resident memory (MB) of every worker process, by worker address."""

    def rss():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    return client.run(rss)


def warm_up(client, run) -> None:
    """One tiny run on every worker (imports, JIT compilation), so no timed sweep pays for it.
    (A warm-up sweep is not enough: its few tasks may all land on one worker.)"""
    from deepcircuit.studies.sweep.run import execute_run

    client.run(execute_run, run)


def timed_sweep(runs, out: Path, client, on_row=None):
    from deepcircuit.studies.sweep.run import run_sweep

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    outcome = run_sweep(runs, out, client=client, progress=False, on_row=on_row)
    wall = time.perf_counter() - t0
    import pandas as pd

    df = pd.read_parquet(out / "results")
    assert len(df) == len(runs) and df["id"].is_unique, "every run gives exactly one row"
    return wall, df, outcome


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 tiny runs, 8 CPU-bound runs, 100 SPICE runs")
    ap.add_argument("--skip-memory", action="store_true", help="skip the SPICE memory sweep")
    args = ap.parse_args()
    from deepcircuit.studies.sweep.run import dask_client
    from deepcircuit.studies.sweep.spec import SweepSpec, expand

    n_tiny, n_cpu, n_spice = (200, 8, 100) if args.quick else (1000, 16, 500)
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    report = {"load_average_start": os.getloadavg()}
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")

    tiny = expand(SweepSpec({"hidden": [str(h) for h in range(2, 12)]},
                            {"epochs": "1", "free_steps": "20", "nudged_steps": "20", "dt": "0.1"},
                            seeds=n_tiny // 10))
    cpu = expand(SweepSpec({"hidden": ["5"]}, {"epochs": "200"}, seeds=n_cpu))
    warm = expand(SweepSpec({}, {"epochs": "1", "free_steps": "20", "nudged_steps": "20"}, seeds=4, ))

    # -- 1 worker: overhead on tiny runs, then the CPU-bound sweep --------------------------
    t0 = time.perf_counter()
    with dask_client(workers=1) as client:
        start1 = time.perf_counter() - t0
        timed_sweep(warm, tmp / "warm1", client)
        warm_up(client, warm[0])
        wall, df, _ = timed_sweep(tiny, tmp / "tiny", client)
        busy = float(df["seconds"].sum())
        overhead_ms = 1000 * (wall - busy) / len(tiny)
        print(f"\n1. {len(tiny)} tiny runs on 1 worker: {wall:.2f} s wall, {busy:.2f} s inside the runs "
              f"(median run {1000 * df['seconds'].median():.1f} ms) -> overhead {overhead_ms:.1f} ms per run "
              f"(target < 20 ms)")
        wall1, df1, _ = timed_sweep(cpu, tmp / "cpu1", client)
    report.update(tiny_runs=len(tiny), tiny_wall=wall, tiny_busy=busy, overhead_ms_per_run=overhead_ms,
                  cluster_start_1=start1)

    # -- 2 workers: the same CPU-bound sweep ---------------------------------------------------
    t0 = time.perf_counter()
    with dask_client(workers=2) as client:
        start2 = time.perf_counter() - t0
        timed_sweep(warm, tmp / "warm2", client)
        warm_up(client, warm[0])
        wall2, df2, _ = timed_sweep(cpu, tmp / "cpu2", client)
    same = df1.drop(columns=["seconds", "pid"]).sort_values("id").reset_index(drop=True).equals(
        df2.drop(columns=["seconds", "pid"]).sort_values("id").reset_index(drop=True))
    speedup = wall1 / wall2
    print(f"2. {len(cpu)} CPU-bound runs (median {df1['seconds'].median():.2f} s): 1 worker {wall1:.2f} s, "
          f"2 workers {wall2:.2f} s -> speed-up {speedup:.2f}x (target >= 1.8x); identical rows: {same}; "
          f"cluster start-up {start1:.1f} s / {start2:.1f} s")
    print(f"   CPU time inside the runs: 1 worker {df1['seconds'].sum():.2f} s, 2 workers {df2['seconds'].sum():.2f} s "
          f"(runs per worker: {sorted(df2.groupby('pid').size().tolist())}); on idle cores the two sums are equal "
          "and the speed-up is wall(1) / wall(2)")
    report.update(cpu_runs=len(cpu), wall_1_worker=wall1, wall_2_workers=wall2, speedup=speedup,
                  identical_rows=same, cluster_start_2=start2)

    # -- memory of a long SPICE sweep ---------------------------------------------------------
    if not args.skip_memory:
        spice = expand(SweepSpec({}, {"substrate": "spice", "epochs": "3", "free_steps": "40",
                                      "nudged_steps": "40", "dt": "0.1", "spice:mismatch": 0.02}, seeds=n_spice))
        samples = []
        with dask_client(workers=2) as client:
            done = [0]

            def on_row(row):
                done[0] += 1
                if done[0] == 1 or done[0] % 50 == 0 or done[0] == len(spice):
                    samples.append((done[0], sorted(worker_rss_mb(client).values())))

            wall, df, outcome = timed_sweep(spice, tmp / "spice", client, on_row=on_row)
        first, last = samples[0][1], samples[-1][1]
        peak = max(max(s) for _, s in samples)
        growth = max(b - a for a, b in zip(first, last))
        flat = all(b <= 1.1 * a for a, b in zip(first, last))
        print(f"3. {len(spice)} SPICE runs on 2 workers in {wall:.1f} s ({dict(df['status'].value_counts())}); "
              f"worker RSS (MB) after run " + ", ".join(f"{n}: {'/'.join(f'{v:.0f}' for v in s)}" for n, s in samples))
        print(f"   first {'/'.join(f'{v:.0f}' for v in first)} MB, last {'/'.join(f'{v:.0f}' for v in last)} MB, "
              f"peak {peak:.0f} MB, largest growth {growth:.1f} MB -> {'flat' if flat else 'GROWING'}")
        report.update(spice_runs=len(spice), spice_wall=wall, rss_samples=samples, rss_growth_mb=growth,
                      memory_flat=flat)
    report["load_average_end"] = os.getloadavg()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(json.dumps(report))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
