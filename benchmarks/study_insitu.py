"""Study: does DEEP's rule, run on an imperfect chip, learn anyway? (issue 21, docs/insitu.md)

Three parts, each writing its table as it goes (a cut run still leaves its rows):

``ode``    digits on the non-ideal ODE: mismatch x transconductor (VCCS, OTA) x chips, arms
           deployed / fine-tuned in situ (k epochs) / trained in situ from scratch
           (:func:`deepcircuit.studies.insitu.run_study`); ``insitu_ode.csv`` (+ .parquet)
           and ``insitu_ode.png``.
``spice``  chips on ngspice (limiter clamps), one per seed: deployed vs one in-situ epoch on
           ngspice itself, SPICE-vs-ODE agreement of each chip, energy per inference and per
           training step from the supply (OTA chips); ``insitu_spice_<kind>_s<seed>.csv/.json``.
``prune``  magnitude pruning of a network fine-tuned on an OTA chip: accuracy on the chip (ODE)
           and energy per inference from the OTA circuit's supply (SPICE) against sparsity;
           ``insitu_prune.csv`` and ``insitu_prune.png``.

The ideal model is a model file trained on the ideal ODE, e.g.
``deepcircuit train --task digits --seeds 1 --out runs/ideal`` (then ``--model runs/ideal/seed0.json``).
``--quick`` trains a tiny model itself and runs every part at toy sizes (a smoke test, no figure
to quote). Run with ``nice -n 10``: it is long.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepcircuit.atomic_files import write_atomic
from deepcircuit.learning.model_file import load_model
from deepcircuit.studies import insitu, insitu_chip


#: Wall-time budget of one ngspice run here: a digits OTA presentation ran past the substrate's
#: default 600 s at 12 of 50 us on the shared machine (load ~30 on 2 cores).
SPICE_BUDGET_S = 5400.0


def _ota(args) -> dict:
    """The OTA options given (the package's OTA defaults for the rest: substrates/chip.py)."""
    given = {"ota_linear_range": args.ota_linear_range, "ota_gain": args.ota_gain, "ota_offset": args.ota_offset}
    return {k: v for k, v in given.items() if v is not None}


def _floats(text: str) -> tuple:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple:
    return tuple(int(x) for x in text.split(",") if x.strip())


def quick_model(out: Path):
    """A tiny digits model trained here (12 hidden neurons, 512 presentations, 4 epochs)."""
    import deepcircuit as dc

    ds = dc.load_dataset("digits")
    small = replace(ds, train=ds.train.subset(slice(0, 512)))
    res = dc.train(small, hidden=12, seeds=[0], config=dc.TrainingConfig.for_task(ds).replace(epochs=4))
    print(f"quick model: {100 * float(res.test_accuracy[0]):.1f} % test ({res.seconds:.0f} s)", flush=True)
    return insitu.model_of(res)


def run_ode(args, model, out: Path) -> None:
    plan = insitu.InSituPlan(mismatches=_floats(args.mismatch), transconductors=tuple(args.transconductors.split(",")),
                             chips=args.chips, chip_seed=args.chip_seed, finetune_epochs=_ints(args.finetune),
                             scratch_epochs=args.scratch_epochs, scratch_chips=args.scratch_chips,
                             train_samples=args.train_samples, test_samples=args.test_samples,
                             ota_options=_ota(args))
    arms = tuple(args.arms.split(","))
    tag = "-".join(plan.transconductors) + ("" if set(arms) == set(insitu.ARMS) else "_" + "-".join(arms))
    tag += f"_{args.tag}" if args.tag else ""
    csv = out / f"insitu_ode_{tag}.csv"
    t0 = time.perf_counter()
    df = insitu.run_study(model, plan, out=csv, progress=lambda s: print(s, flush=True), arms=arms)
    print(f"ode study: {len(df)} rows in {time.perf_counter() - t0:.0f} s -> {csv}")
    print(insitu.arm_table(df).to_string(index=False))
    run_plot(args, model, out)


def run_plot(args, model, out: Path) -> None:
    """One table and one plot of every ``insitu_ode_*.csv`` in the folder (parts run apart)."""
    import pandas as pd

    if (out / "insitu_prune.csv").exists():
        prune = pd.read_csv(out / "insitu_prune.csv").to_dict("records")
        insitu_chip.plot_pruning(prune, out / "insitu_prune.png",
                                 title=f"OTA chip, mismatch {args.prune_mismatch:g}, fine-tuned 1 epoch, magnitude pruning")
    files = [f for f in sorted(out.glob("insitu_ode_*.csv")) if f.stem != "insitu_ode_table"]
    if not files:
        return
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    # the ideal arm is measured by every part: keep one copy per (transconductor, mismatch, chip)
    df = df.drop_duplicates(subset=["solver", "transconductor", "mismatch", "chip_seed", "chip", "arm", "epochs"])
    insitu.write_rows(df.to_dict("records"), out / "insitu_ode.csv")
    table = insitu.arm_table(df)
    insitu.write_rows(table.to_dict("records"), out / "insitu_ode_table.csv")
    insitu.plot_accuracy(df, out / "insitu_ode.png", title="digits on the non-ideal ODE: in-situ learning")


def run_spice(args, model, out: Path) -> None:
    """Deployed vs one in-situ epoch on ngspice, one chip per seed of ``--spice-seeds`` (the chip
    ``spice:mismatch=M;seed=S``, network 0 of the draw); agreement with the ODE; energies.

    Each chip's rows are written after each arm (``insitu_spice_<kind>_s<seed>.csv``), so a run
    cut during the fine-tune still leaves the deployed figures."""
    import pandas as pd

    from deepcircuit.substrates import get_substrate

    kind = args.spice_transconductor
    for seed in _ints(args.spice_seeds):
        stem = out / f"insitu_spice_{kind}_s{seed}"
        csv, js = stem.with_suffix(".csv"), stem.with_suffix(".json")
        rows = pd.read_csv(csv).to_dict("records") if csv.exists() else []
        extra = json.loads(js.read_text()) if js.exists() else {}
        opts = {"clamp": "limiter", "workers": args.workers}
        twin = kind == "ota" and args.spice_ota_train_samples == 0
        plan = insitu.InSituPlan(mismatches=(args.spice_mismatch,), transconductors=(kind,), chips=1, chip_seed=seed,
                                 finetune_epochs=(1,),
                                 train_samples=(args.spice_train_samples if kind == "vccs"
                                                else args.spice_ota_train_samples or None),
                                 test_samples=args.spice_test_samples if kind == "vccs" else args.spice_ota_test_samples,
                                 solver="spice", substrate_options=opts, train_solver="ode" if twin else None,
                                 ota_options=_ota(args))
        ds = insitu.study_dataset(model, plan)
        config = model.training_config()
        for arms in () if args.spice_no_arms else (("ideal", "deployed"), ("finetune",)):
            if any(r["arm"] in arms for r in rows):
                continue
            t0 = time.perf_counter()
            cell = insitu.run_cell(model, plan, args.spice_mismatch, kind, dataset=ds, arms=arms)
            print(f"spice {kind} seed {seed}: {insitu.summary_line(cell)} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
            rows += cell
            insitu.write_rows(rows, csv)
        if "agreement" in extra or args.agreement_samples == 0:
            continue
        # Agreement of the chip with its non-ideal ODE twin (the deployed weights), and energies.
        ota = _ota(args) if kind == "ota" else {}
        ode = get_substrate("ode", mismatch=args.spice_mismatch, seed=seed, transconductor=kind, max_seconds=None, **ota)
        spice = get_substrate("spice", mismatch=args.spice_mismatch, seed=seed, transconductor=kind,
                              **opts, **ota, max_seconds=SPICE_BUDGET_S)
        # An OTA presentation costs ~60x a VCCS one in ngspice: the OTA chip is compared and
        # measured over the training schedule's phases (10 tau each), the VCCS chips over the read-out.
        schedule = config.schedule if kind == "ota" else config.eval_schedule
        try:
            t0 = time.perf_counter()
            agree = insitu_chip.state_agreement([model.network], ds.test.inputs[:args.agreement_samples], spice, ode,
                                                schedule, chips=[0], state_init_high=config.state_init_high)
            agree["seconds"] = time.perf_counter() - t0
            agree["free_tau"] = schedule.free_duration
            energy = (insitu_chip.chip_energy([model.network], ds.train, spice, config, chips=[0],
                                              presentations=args.energy_presentations, what=("step",))
                      if kind == "ota" else
                      {"note": "ideal VCCS synapses and limiter clamps: the netlist has no supply"})
        finally:
            spice.close()
        extra.update(agreement=agree, energy=energy, mismatch=args.spice_mismatch, chip_seed=seed,
                     transconductor=kind, train_presentations=ds.train.n_presentations,
                     test_presentations=ds.test.n_presentations, trained_on="ode" if twin else "spice")
        print(f"spice {kind} seed {seed}: agreement {agree}; energy {energy}", flush=True)
        write_atomic(js, json.dumps(extra, indent=1) + "\n")


def run_prune(args, model, out: Path) -> None:
    """Fine-tune on OTA chip 0 (ODE, one epoch), then prune it to each level."""
    import pandas as pd

    import deepcircuit as dc
    from deepcircuit.substrates import get_substrate

    plan = insitu.InSituPlan(train_samples=args.train_samples, test_samples=args.test_samples)
    ds = insitu.study_dataset(model, plan)
    print(f"prune: {ds.train.n_presentations} training, {ds.test.n_presentations} test presentations", flush=True)
    config = model.training_config()
    chip = get_substrate("ode", mismatch=args.prune_mismatch, seed=args.chip_seed, transconductor="ota",
                         record="final", max_seconds=None, **_ota(args))
    t0 = time.perf_counter()
    tuned = dc.train(ds, init=[model], seeds=[0], config=config.replace(epochs=1, eval_every=0), substrate=chip)
    print(f"prune: fine-tuned on the OTA chip in {time.perf_counter() - t0:.0f} s, "
          f"{100 * float(tuned.test_accuracy[0]):.1f} % test", flush=True)
    energy_sub = None
    if args.prune_energy_presentations:
        energy_sub = get_substrate("spice", mismatch=args.prune_mismatch, seed=args.chip_seed, transconductor="ota",
                                   clamp="limiter", workers=args.workers, max_seconds=SPICE_BUDGET_S, **_ota(args))
    try:
        rows = insitu_chip.pruning_sweep(tuned.networks[0], ds, config, levels=_floats(args.prune_levels),
                                         accuracy_substrate=chip, energy_substrate=energy_sub, chip=0,
                                         energy_presentations=max(1, args.prune_energy_presentations),
                                         energy_what=("step",),
                                         on_rows=lambda r: insitu.write_rows(r, out / "insitu_prune.csv"))
    finally:
        if energy_sub is not None:
            energy_sub.close()
    df = pd.DataFrame(rows)
    insitu.write_rows(rows, out / "insitu_prune.csv")
    print(df.to_string(index=False))
    insitu_chip.plot_pruning(rows, out / "insitu_prune.png",
                             title=f"OTA chip, mismatch {args.prune_mismatch:g}, fine-tuned 1 epoch, magnitude pruning")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("parts", nargs="*", default=["ode"], choices=["ode", "spice", "prune", "plot"])
    p.add_argument("--model", help="ideal-trained digits model file (not with --quick)")
    p.add_argument("--out", default="benchmarks/results/insitu", help="folder of the tables and plots")
    p.add_argument("--quick", action="store_true", help="toy sizes and a tiny model trained here")
    p.add_argument("--mismatch", default="0,0.1,0.2,0.3")
    p.add_argument("--transconductors", default="vccs,ota")
    p.add_argument("--chips", type=int, default=5)
    p.add_argument("--tag", default="", help="suffix of the ode part's file (parts run side by side)")
    p.add_argument("--spice-no-arms", action="store_true",
                   help="spice part: agreement and energy only (no accuracy arms)")
    p.add_argument("--arms", default=",".join(insitu.ARMS), help="arms of the ode part (ideal,deployed,finetune,scratch)")
    p.add_argument("--chip-seed", type=int, default=1)
    p.add_argument("--finetune", default="1,3", help="fine-tune epochs reported")
    p.add_argument("--scratch-epochs", type=int, default=30, help="0 = no scratch arm")
    p.add_argument("--scratch-chips", type=int, default=None)
    p.add_argument("--train-samples", type=int, default=None)
    p.add_argument("--test-samples", type=int, default=None)
    p.add_argument("--spice-mismatch", type=float, default=0.3)
    p.add_argument("--spice-transconductor", default="vccs", choices=["vccs", "ota"])
    p.add_argument("--spice-seeds", default="1", help="chips of the spice part: seeds of the draw, e.g. 1,2")
    p.add_argument("--spice-train-samples", type=int, default=384)
    p.add_argument("--spice-test-samples", type=int, default=100)
    p.add_argument("--spice-ota-train-samples", type=int, default=0,
                   help="training presentations of the OTA chip's epoch on ngspice; 0 = fine-tune one full "
                        "epoch on the chip's ODE twin and score it on ngspice")
    p.add_argument("--spice-ota-test-samples", type=int, default=12)
    p.add_argument("--agreement-samples", type=int, default=20)
    p.add_argument("--energy-presentations", type=int, default=2)
    p.add_argument("--ota-linear-range", type=float, default=None,
                   help="OTA linear range (V_scale); default the package's (4); the first study ran 1")
    p.add_argument("--ota-gain", type=float, default=None,
                   help="OTA intrinsic gain; default the package's (1000); the first study ran 100")
    p.add_argument("--ota-offset", type=float, default=None, help="OTA input offset sd (V); default the package's (2 mV)")
    p.add_argument("--workers", type=int, default=1, help="Dask workers of the SPICE substrate (1: in process)")
    p.add_argument("--prune-levels", default="0,0.25,0.5,0.75,0.9")
    p.add_argument("--prune-mismatch", type=float, default=0.3)
    p.add_argument("--prune-energy-presentations", type=int, default=1, help="0 = no SPICE energy")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        model = quick_model(out)
        args.chips, args.scratch_epochs, args.finetune = 2, 1, "1,2"
        args.train_samples, args.test_samples = args.train_samples or 128, args.test_samples or 60
        args.spice_train_samples, args.spice_test_samples = 8, 8
        args.spice_ota_train_samples, args.spice_ota_test_samples = 0, 2
        args.agreement_samples, args.energy_presentations, args.workers = 2, 1, 1
    elif not args.model:
        p.error("give --model FILE (an ideal-trained digits model) or --quick")
    else:
        model = load_model(args.model)
    for part in args.parts:
        {"ode": run_ode, "spice": run_spice, "prune": run_prune, "plot": run_plot}[part](args, model, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
