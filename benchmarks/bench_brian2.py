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
Two standalone modes are timed, for the rate and the spiking substrate: the whole training as
one program (default) and one compiled program per epoch (``whole_training=False``); the
spiking target is within 10x the ODE. ``--spike-steps T1,T2 --spike-rate HZ --spike-substeps K``
time every row on that schedule and the spiking rows at that rate (e.g. the settings that learn
XOR from spikes: ``--spike-steps 500,300 --spike-rate 10000 --spike-substeps 20``). Also reports the
time of Brian2's own ``Network.run`` per phase (``driver="network"``, code regenerated on every
call) and the weight difference to the ODE-trained network.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from deepcircuit import get_substrate
from deepcircuit.learning.config import TrainingConfig
from deepcircuit.learning.training import train


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


def spike_training(seeds: list[int], epochs: int, target: str, max_rate: float, substeps: int,
                   window: float | None, free_steps: int, nudged_steps: int, repeats: int = 1,
                   stop_when_solved: int | None = None, reevals: int = 0, eta_noise: bool = False) -> None:
    """XOR trained by the spike-based rule alone (issue 14), then re-evaluated on the ODE.

    Every epoch also runs the ODE substrate on the same networks and initial states (outside the
    training) to measure how much of the rate model's update the spike-based one recovers:
    cosine similarity of the two updates over each network's live connections.
    """
    from deepcircuit import evaluate, get_task
    from deepcircuit.learning.rule import stdp_update
    from deepcircuit.model.network import NetworkBatch
    from deepcircuit.substrates.ode import OdeSubstrate

    task = get_task("xor")
    cfg = TrainingConfig.preset("default").replace(epochs=epochs, free_steps=free_steps,
                                                   nudged_steps=nudged_steps,
                                                   stop_when_solved=stop_when_solved, eta_noise=eta_noise)
    sub = get_substrate("brian2-spiking", target=target, max_rate=max_rate, substeps=substeps,
                        stdp_window=window, repeats=repeats)
    ode = OdeSubstrate()
    prev: dict = {}
    cos, counts = [], []

    def measure(epoch, batch, result):
        nets = prev.get("nets")
        if nets is not None:
            ref = ode.run(nets, task.inputs, result.free.states[:, :, 0], cfg.schedule, targets=task.targets)
            a = stdp_update(result.nudged, nominal_steps=cfg.nudged_steps)
            b = stdp_update(ref.nudged, nominal_steps=cfg.nudged_steps)
            m = NetworkBatch.of(nets).mask
            cos.append([float(a[k][m[k]] @ b[k][m[k]] / (np.linalg.norm(a[k][m[k]]) * np.linalg.norm(b[k][m[k]]) + 1e-300))
                        for k in range(len(nets))])
        prev["nets"] = list(batch.networks)
        f, n = result.free.meta, result.nudged.meta
        counts.append((f["spikes_per_presentation"] / f.get("repeats", 1), f["spikes_per_presentation"] + n["spikes_per_presentation"],
                       (f["synaptic_events"] + n["synaptic_events"]) / (f["simulated_seconds"] + n["simulated_seconds"]) / (len(seeds) * task.inputs.shape[0])))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        # The first epoch's networks are the initial ones: make them known to the callback.
        from deepcircuit.learning.initial_networks import make_networks
        prev["nets"] = make_networks(task, model="deep", topology="complete", hidden=5, seeds=seeds, config=cfg)
        res = train(task, seeds=seeds, config=cfg, substrate=sub, callbacks=[measure])
        el = time.perf_counter() - t0
        _, err_ode, _ = evaluate(res.networks, task, substrate="ode", rng=0)
        # The trained networks evaluated again as spikes (fresh spike trains and initial states,
        # the training's free-phase length): how robust the final "solved" verdict is.
        err_again = np.array([evaluate(res.networks, task, substrate=sub, schedule=cfg.eval_schedule, rng=100 + r)[1]
                              for r in range(reevals)])
    # Cosines of seeds still learning (a seed stopped by stop_when_solved applies no update).
    cos = np.array(cos)
    upd = np.array([h.update_norm for h in res.histories]).T[:len(cos)] > 0
    cos_live = np.where(upd, cos, np.nan)
    c = np.array(counts)
    print(f"spike-based XOR training: {len(seeds)} seeds, {epochs} epochs, max_rate {max_rate:g} Hz, "
          f"substeps {substeps}, STDP window {window} tau, T1 = {free_steps}, T2 = {nudged_steps}, {target}, "
          f"repeats {repeats}, stop_when_solved {stop_when_solved}, eta_noise {eta_noise}")
    if stop_when_solved is not None:
        stop = [next((e for e, u in enumerate(h.update_norm) if u == 0), None) for h in res.histories]
        print(f"  stopped at epoch (per seed; None = trained all epochs): {stop}")
    print(f"  solved as spikes (final evaluation on brian2-spiking): {res.solved}/{len(seeds)}; "
          f"errors {np.round(res.train_error, 2).tolist()}")
    print(f"  same networks re-evaluated on the ODE: {int(np.sum(err_ode == 0))}/{len(seeds)} solved; "
          f"errors {np.round(err_ode, 2).tolist()}")
    if reevals:
        print(f"  same networks evaluated as spikes {reevals} more times: solved per evaluation "
              f"{(err_again == 0).sum(axis=1).tolist()}; seeds solved in every one: {int((err_again == 0).all(axis=0).sum())}"
              f"/{len(seeds)}; mean error {err_again.mean():.3f}")
    print(f"  cosine(spike update, rate update) per epoch, mean over seeds: first {cos[:5].mean():.3f}, "
          f"last {cos[-5:].mean():.3f}, all epochs {cos.mean():.3f} (median {np.median(cos):.3f}); "
          f"seeds still updating only: last 5 {np.nanmean(cos_live[-5:]) if upd[-5:].any() else float('nan'):.3f}, "
          f"all {np.nanmean(cos_live):.3f}")
    print(f"  spikes per inference (free phase, one presentation): {c[:, 0].mean():.0f}; per training "
          f"step (free + nudged, one presentation): {c[:, 1].mean():.0f}; synaptic events per simulated "
          f"second per network: {c[:, 2].mean():.3g}")
    ran = max(len(h) for h in res.histories)  # fewer than `epochs` when every seed stopped
    print(f"  wall time {el:.1f} s for {ran} epochs ({1e3 * el / max(ran, 1):.0f} ms/epoch incl. the ODE "
          f"reference runs and the final evaluations)")


def cli_side_by_side(rounds: int, seed_counts: list[int], substrates: list[str], epochs: int) -> None:
    """The user's command, ``deepcircuit train --task xor --substrate S --seeds K``, as a process.

    Run ``rounds`` times per (K, substrate), alternating substrates so that the machine's load
    hits them alike (the compiled Brian2 program is built once, before the first timed round).
    Reports per command the training time it prints (``seconds`` of its JSON line), the whole
    process's wall time (interpreter start and imports included) and its CPU time (user + system,
    compiled child programs included), as medians, and each substrate's ratio to the ODE's.
    """
    import json
    import os
    import resource
    import subprocess
    import sys
    import tempfile

    def one(sub: str, seeds: int) -> tuple[float, float, float]:
        with tempfile.TemporaryDirectory() as out:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "deepcircuit", "train", "--task", "xor", "--substrate", sub,
                                "--seeds", str(seeds), "--epochs", str(epochs), "--out", out, "--quiet", "--json"],
                               capture_output=True, text=True, env=dict(os.environ), check=True)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return json.loads(p.stdout.strip().splitlines()[-1])["seconds"], wall, cpu

    print(f"deepcircuit train --task xor --epochs {epochs} --substrate S --seeds K: medians of {rounds} "
          f"rounds; load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'K':>3s} {'substrate':>10s} {'train s':>8s} {'x ODE':>6s} {'process s':>10s} {'x ODE':>6s} "
          f"{'CPU s':>6s} {'x ODE':>6s}")
    for seeds in seed_counts:
        for sub in substrates:
            one(sub, seeds)  # warm-up: numba cache, the compiled Brian2 program
        times: dict[str, list] = {sub: [] for sub in substrates}
        for _ in range(rounds):
            for sub in substrates:
                times[sub].append(one(sub, seeds))
        med = {sub: np.median(np.array(v), axis=0) for sub, v in times.items()}
        ref = med[substrates[0]]
        for sub in substrates:
            m = med[sub]
            print(f"{seeds:3d} {sub:>10s} {m[0]:8.2f} {m[0] / ref[0]:6.2f} {m[1]:10.2f} {m[1] / ref[1]:6.2f} "
                  f"{m[2]:6.2f} {m[2] / ref[2]:6.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


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
    ap.add_argument("--spike-train", type=int, default=0, metavar="SEEDS",
                    help="train XOR with the spike-based rule on this many seeds (0 = skip) and stop")
    ap.add_argument("--spike-target", default="cython")
    ap.add_argument("--spike-rate", type=float, default=2000.0,
                    help="max_rate (Hz) of the spike training and of the timed spiking rows")
    ap.add_argument("--spike-substeps", type=int, default=10,
                    help="Brian2 steps per schedule step of the spike training and the timed spiking rows")
    ap.add_argument("--spike-window", type=float, default=10.0)
    ap.add_argument("--spike-steps", default="1000,1000",
                    help="T1,T2 of the spike training, and of every timed row (ODE included)")
    ap.add_argument("--spike-repeats", type=int, default=1,
                    help="repetitions of each presentation averaged into one spike-based update")
    ap.add_argument("--stop-when-solved", type=int, default=None, metavar="EPOCHS",
                    help="stop a seed after this many epochs in a row at 0 train error (as spikes)")
    ap.add_argument("--eta-noise", action="store_true",
                    help="scale eta by the update's measured signal share (needs --spike-repeats >= 2)")
    ap.add_argument("--spike-reevals", type=int, default=0, metavar="N",
                    help="evaluate the spike-trained networks N more times as spikes")
    ap.add_argument("--cli", type=int, default=0, metavar="ROUNDS",
                    help="time the `deepcircuit train` command itself (ode against brian2, 1 and 10 seeds), "
                         "ROUNDS alternating runs each, and stop")
    args = ap.parse_args()
    if args.cli:
        cli_side_by_side(args.cli, [1, 10], ["ode", "brian2"], args.epochs)
        return
    if args.spike_train:
        t1, t2 = (int(x) for x in args.spike_steps.split(","))
        spike_training(list(range(args.spike_train)), args.epochs, args.spike_target, args.spike_rate,
                       args.spike_substeps, args.spike_window or None, t1, t2, args.spike_repeats,
                       args.stop_when_solved, args.spike_reevals, args.eta_noise)
        return
    t1, t2 = (int(x) for x in args.spike_steps.split(","))
    cfg = TrainingConfig.preset("default").replace(epochs=args.epochs, free_steps=t1, nudged_steps=t2)
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
    # Spiking, compiled, same schedule and settings (the training does not solve XOR with the
    # default schedule; these rows are about time; see --spike-train for learning).
    for label, whole in (("whole training", True), ("program per epoch", False)):
        sub = get_substrate("brian2-spiking", target="cpp_standalone", stdp_window=10.0, whole_training=whole,
                            max_rate=args.spike_rate, substeps=args.spike_substeps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            train("xor", seeds=seeds, config=cfg, substrate=sub)  # builds (or finds) the program
            first = time.perf_counter() - t0
        builds[f"brian2-spiking, {label}"] = (sub.build_seconds, first)
        t, r = timed(sub, cfg, seeds)
        rows.append((f"brian2-spiking cpp_standalone, {label} ({args.spike_rate / 1000:g} kHz, "
                     f"{args.spike_substeps} substeps)", args.epochs, t, None))
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
    print(f"XOR, {len(seeds)} seed(s), T1 = {cfg.free_steps}, T2 = {cfg.nudged_steps} steps, {args.epochs} epochs\n")
    print(f"{'substrate':64s} {'epochs':>6s} {'total s':>8s} {'ms/epoch':>9s} {'x ODE':>7s} "
          f"{'200 ep. s':>9s} {'rel dW vs ODE':>14s}")
    for name, n, t, r in rows:
        per = t / n
        dw = "" if r is None else f"{np.linalg.norm(r.networks[0].weights - r_ode.networks[0].weights) / np.linalg.norm(r_ode.networks[0].weights):.2e}"
        print(f"{name:64s} {n:6d} {t:8.2f} {1e3 * per:9.2f} {per / per_ode:7.1f} {200 * per:9.1f} {dw:>14s}")
    for label, (b, first) in builds.items():
        print(f"one-time build, cpp_standalone {label}: {b:.1f} s (first training incl. build {first:.1f} s)")
    print("\ntargets: Brian2 <= 20x ODE per epoch; 200 epochs < 60 s; cpp_standalone <= 3x ODE; "
          "spiking compiled <= 10x ODE")
    if args.spiking:
        print()
        spiking_sweep()


if __name__ == "__main__":
    main()
