"""Benchmark: SPICE in the training loop at digits scale (issue 21, "Training on a chip").

Four measurements, on a digits model file (``--model``, e.g. from
``deepcircuit train --task digits --out ideal``) and the chip of ``--mismatch`` / ``--chip-seed``
(limiter clamp, transconductance mismatch drawn by ``NonIdealities``):

1. ``presentation``: one training presentation (free + nudged phase in one transient, the model's
   phase lengths) in the substrate (``SpiceSubstrate.run``, in this process: netlist compiled,
   loaded into the shared library, run, read back and resampled), and as a worker runs it
   (compiled, ``ngspice -b`` with a ``.control`` block, raw file read, resampled), against plain ``ngspice -b -r``
   on the same netlist text, written to a file (process start, parse, run, raw file written; the
   raw file's point count is checked, since ngspice exits 0 even when a run fails). Median of
   ``--repeats`` each, interleaved. Target: substrate <= 1.5x ``ngspice -b``.
2. ``workers``: the same ``--presentations`` training presentations in this process, on one Dask
   worker (the runner's overhead without parallelism) and on two (a LocalCluster, started and
   warmed up before the clock starts); also the sum of the ngspice runs' own wall times (inside
   the workers) and this process's CPU time. Target: 2 workers >= 1.8x on idle cores.
3. ``epoch``: in-loop fine-tuning with ``train(init=model, substrate=...)`` on ``--workers`` Dask
   workers: ``--epoch-fraction`` of the training split (1 = a whole epoch, 1437 presentations in
   minibatches of 64) plus the per-epoch held-out evaluation sample (``eval_samples``, default
   100, at the model's read-out budget; the test split is cut to that sample so the last epoch's
   whole-split evaluation costs the same); the final evaluation is timed apart. With a fraction
   < 1 the training time is extrapolated linearly (printed as EXTRAPOLATED). Target: <= 15 min.
4. ``compare``: free-phase predictions of the whole test split (360 samples) on SPICE through the
   same runner (``predict``, i.e. ``evaluate_split`` on the substrate, which ``compare --samples``
   runs per substrate), at the model's read-out budget. Target <= 5 min.

Wall-clock times on a shared machine: the load average is printed with every figure.

    nice -n 10 .venv/bin/python benchmarks/bench_spice_insitu.py --model ideal/seed0.json
    nice -n 10 .venv/bin/python benchmarks/bench_spice_insitu.py --model ideal/seed0.json --only presentation workers
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def raw_points(path: Path) -> int:
    """Points in an ngspice raw file (its header), 0 when it is missing or has none."""
    try:
        head = path.read_bytes()[:20000].decode("latin-1")
    except OSError:
        return 0
    m = re.search(r"No\. Points:\s*(\d+)", head)
    return int(m.group(1)) if m else 0


def setup(args):
    from deepcircuit.data.split import dataset_for_model
    from deepcircuit.learning.model_file import load_model
    from deepcircuit.substrates.chip import NonIdealities

    model = load_model(args.model)
    ds = dataset_for_model(model)
    chip = NonIdealities(mismatch=args.mismatch, seed=args.chip_seed)
    return model, ds, chip


def bench_presentation(args, model, ds, chip) -> None:
    from deepcircuit.substrates import initial_states
    from deepcircuit.substrates.circuit import compile_netlist
    from deepcircuit.model.network import NetworkBatch
    from deepcircuit.substrates.spice import SpiceSubstrate, _Chunk, _run_chunk

    cfg = model.training_config()
    sched = cfg.schedule
    task = ds.train.subset(slice(0, 1))
    s0 = initial_states(np.random.default_rng(0), 1, task.inputs, model.network.roles, cfg.state_init_high)
    sub = SpiceSubstrate(clamp="limiter", nonideal=chip)
    net = compile_netlist(model.network, task.inputs, s0, sched, targets=task.targets, units=sub.units,
                          clamp=sub.clamp, nonideal=chip, options={"reltol": sub.reltol}, transconductor=sub.transconductor)
    ngspice = shutil.which("ngspice")
    with tempfile.TemporaryDirectory() as tmp:
        cir, raw = Path(tmp) / "p.cir", Path(tmp) / "p.raw"
        cir.write_text(net.text)
        t_sub, t_cli, t_job = [], [], []
        sub.run(model.network, task.inputs, s0, sched, targets=task.targets)  # library loaded once
        job = _Chunk(NetworkBatch.of(model.network), task.inputs, s0, sched, task.targets, chip,
                     {"reltol": sub.reltol}, 0)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            sub.run(model.network, task.inputs, s0, sched, targets=task.targets)
            t_sub.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _run_chunk(job, sub, True)  # what a worker does: compile, ngspice -b, read, resample
            t_job.append(time.perf_counter() - t0)
            if ngspice:
                raw.unlink(missing_ok=True)
                t0 = time.perf_counter()
                subprocess.run([ngspice, "-b", "-r", str(raw), str(cir)], capture_output=True, check=False)
                t_cli.append(time.perf_counter() - t0)
                if raw_points(raw) < 2:
                    raise SystemExit("ngspice -b wrote no results for the netlist: the comparison is void")
    a = statistics.median(t_sub)
    print(f"presentation ({sched.free_duration:g} + {sched.nudged_steps * sched.dt:g} tau, limiter, mismatch "
          f"{args.mismatch:g}, {len(net.nodes)} saved nodes, netlist {len(net.text) / 1e3:.0f} kB): substrate "
          f"{a:.3f} s in this process (shared library), {statistics.median(t_job):.3f} s as a worker runs it "
          f"(ngspice program; median of {args.repeats} each)", end="")
    if t_cli:
        b = statistics.median(t_cli)
        print(f"; ngspice -b -r {b:.3f} s; ratios {a / b:.2f} and {statistics.median(t_job) / b:.2f} "
              f"(target <= 1.5); {load()}")
    else:
        print(f"; ngspice program not found; {load()}")


def train_presentations(ds, model, n):
    from deepcircuit.substrates import initial_states

    cfg = model.training_config()
    task = ds.train.subset(slice(0, n))
    s0 = initial_states(np.random.default_rng(0), 1, task.inputs, model.network.roles, cfg.state_init_high)
    return task, s0, cfg.schedule


def bench_workers(args, model, ds, chip) -> None:
    from deepcircuit.substrates.cluster import start_client
    from deepcircuit.substrates.spice import SpiceSubstrate

    task, s0, sched = train_presentations(ds, model, args.presentations)
    out = {}
    for label in ("in process", "1 Dask worker", "2 Dask workers"):
        client = cluster = None
        if label == "1 Dask worker":  # the runner's overhead alone: one worker, no parallelism
            client, cluster = start_client(workers=1)
            sub = SpiceSubstrate(clamp="limiter", nonideal=chip, scheduler=cluster.scheduler_address)
        else:
            sub = SpiceSubstrate(clamp="limiter", nonideal=chip, workers=1 if label == "in process" else 2)
        with sub:
            # start the cluster and load ngspice in every worker before the clock starts
            sub.run(model.network, task.inputs[:4], s0[:, :4], sched, targets=task.targets[:4])
            remote = sub.runner.client if sub.distributed else None
            w0 = worker_cpu(remote)
            t0, c0 = time.perf_counter(), cpu(os.times())
            res = sub.run(model.network, task.inputs, s0, sched, targets=task.targets)
            wall, main_cpu = time.perf_counter() - t0, cpu(os.times()) - c0
            w1 = worker_cpu(remote)
        if cluster is not None:
            client.close()
            cluster.close()
        out[label] = (wall, res, main_cpu, {k: w1[k] - w0.get(k, 0.0) for k in w1})
    base = out["in process"]
    for label, (wall, res, main_cpu, workers) in out.items():
        d = float(np.abs(res.free.final - base[1].free.final).max())
        busiest = max(workers.values(), default=0.0)
        total = main_cpu + sum(workers.values())
        # On idle cores each process runs on its own core: the wall time is the busiest process's CPU.
        idle = base[2] / max(busiest, main_cpu)
        print(f"workers ({args.presentations} training presentations) {label}: {wall:.1f} s wall (speed-up "
              f"{base[0] / wall:.2f} on this machine); CPU s: this process {main_cpu:.1f}, workers with their "
              f"ngspice processes {', '.join(f'{v:.1f}' for v in workers.values()) or '-'}, total {total:.1f} "
              f"({total / args.presentations:.2f} per presentation); on idle cores (CPU of the busiest process) "
              f"speed-up {idle:.2f}; max state difference to in process {d:.1e}; {load()}")
    print("  (target: 2 workers >= 1.8x on idle cores)")


def cpu(t) -> float:
    """User + system CPU seconds of a process and its waited-for children (os.times())."""
    return t.user + t.system + t.children_user + t.children_system


def worker_cpu(client) -> dict:
    """CPU seconds of each Dask worker process and its finished ngspice children, by address."""
    if client is None:
        return {}
    return client.run(lambda: cpu(os.times()))


def bench_epoch(args, model, ds, chip) -> None:
    from dataclasses import replace

    from deepcircuit import train
    from deepcircuit.substrates.spice import SpiceSubstrate

    cfg = model.training_config().replace(epochs=1, eval_samples=args.eval_samples)
    n = ds.train.n_presentations
    # Training cuts an epoch into equal minibatches (no 1-presentation remainder), so any
    # fraction trains as it would in a user's run.
    m = max(1, round(args.epoch_fraction * n))
    # The fraction of the training split, and a test split of eval_samples presentations: its
    # whole-split evaluation (the last epoch's) then costs what an epoch's sample costs. The
    # whole 360-sample split is timed by bench_compare.
    part = replace(ds, train=ds.train.subset(slice(0, min(m, n))),
                   test=ds.test.subset(slice(0, args.eval_samples)))
    times = {}

    def timer(epoch, batch, result):
        """Epoch callback: runs after the minibatches, before the held-out evaluation."""
        times["training"] = time.perf_counter() - t0

    with SpiceSubstrate(clamp="limiter", nonideal=chip, workers=args.workers) as sub:
        sub.run(model.network, ds.train.inputs[:4], np.full((1, 4, model.network.n_neurons), 0.05),
                cfg.schedule, targets=ds.train.targets[:4])  # the cluster starts before the clock
        w0, c0 = worker_cpu(sub.runner.client), cpu(os.times())
        t0 = time.perf_counter()
        res = train(part, init=model, config=cfg, substrate=sub, callbacks=[timer])
        total = time.perf_counter() - t0
        w1, main_cpu = worker_cpu(sub.runner.client), cpu(os.times()) - c0
    busiest = max(max(w1[k] - w0.get(k, 0.0) for k in w1), main_cpu)
    training = times["training"]
    epoch = res.histories[0].seconds[0]  # training + the held-out evaluation of eval_samples
    share = part.train.n_presentations / n
    whole = training / share + (epoch - training)
    print(f"epoch ({part.train.n_presentations} of {n} training presentations in minibatches of {cfg.batch_size}, "
          f"then {args.eval_samples} held-out presentations of {cfg.eval_schedule.free_duration:g} tau; "
          f"{args.workers} workers, limiter, mismatch {args.mismatch:g}): training {training:.0f} s, evaluation "
          f"{epoch - training:.0f} s measured" + (
              f"; a whole epoch EXTRAPOLATED from that fraction (training x {1 / share:.2f}): {whole / 60:.1f} min"
              if share < 1 else f"; the whole epoch {whole / 60:.1f} min") +
          f" (target <= 15 min); final evaluations ({min(args.eval_samples, part.train.n_presentations)} "
          f"train-split samples) {total - epoch:.0f} s; test accuracy on the {args.eval_samples} after it "
          f"{100 * res.test_accuracy[0]:.1f} %; CPU of the busiest process over the whole run {busiest:.0f} s "
          f"(its wall time on idle cores), of this process {main_cpu:.0f} s; {load()}")


def bench_compare(args, model, ds, chip) -> None:
    from deepcircuit.learning.evaluation import predict
    from deepcircuit.substrates.spice import SpiceSubstrate

    cfg = model.training_config()
    test = ds.test.subset(slice(0, min(args.compare_samples, ds.test.n_presentations)))
    with SpiceSubstrate(clamp="limiter", nonideal=chip, workers=args.workers) as sub:
        sub.run(model.network, test.inputs[:2], np.full((1, 2, model.network.n_neurons), 0.05),
                cfg.eval_schedule)  # the cluster starts before the clock
        w0, c0 = worker_cpu(sub.runner.client), cpu(os.times())
        t0 = time.perf_counter()
        pred = predict([model.network], test, substrate=sub, schedule=cfg.eval_schedule,
                       state_init_high=cfg.state_init_high)
        seconds = time.perf_counter() - t0
        w1, main_cpu = worker_cpu(sub.runner.client), cpu(os.times()) - c0
    busiest = max(max(w1[k] - w0.get(k, 0.0) for k in w1), main_cpu)
    acc = float(np.mean(pred[0] == test.targets.argmax(axis=1)))
    print(f"compare ({test.n_presentations} test samples, free phase {cfg.eval_schedule.free_duration:g} tau, "
          f"{args.workers} workers): {seconds:.0f} s = {seconds / 60:.1f} min (target <= 5 min); accuracy "
          f"{100 * acc:.1f} %; CPU of the busiest process {busiest:.0f} s (its wall time on idle cores); {load()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a digits model file")
    ap.add_argument("--only", nargs="+", default=["presentation", "workers", "epoch", "compare"],
                    choices=["presentation", "workers", "epoch", "compare"])
    ap.add_argument("--mismatch", type=float, default=0.3)
    ap.add_argument("--chip-seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--presentations", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epoch-fraction", type=float, default=1.0)
    ap.add_argument("--eval-samples", type=int, default=100)
    ap.add_argument("--compare-samples", type=int, default=360)
    args = ap.parse_args()
    model, ds, chip = setup(args)
    for name in args.only:
        globals()[f"bench_{name}"](args, model, ds, chip)


if __name__ == "__main__":
    main()
