"""``deepcircuit compare``: one model on several substrates, side by side."""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings

from .output import format_table, print_json_line, print_warnings, shown_path


def add_parser(sub) -> argparse.ArgumentParser:
    from ..studies.hardware_options import add_transconductor_arguments

    p = sub.add_parser(
        "compare", help="run (and optionally train) a model on several substrates and compare",
        description="Run MODEL_FILE on each substrate from the same initial states and judge each "
                    "against the accurate ODE reference (adaptive, tight tolerances): settled-state and "
                    "trajectory deviations, classification, Lyapunov check. With --train-epochs, also "
                    "train the model's initial network (regenerated from its seed) on every substrate and "
                    "compare the learned weights with the ODE-trained ones. Plots and report.md go to --out. "
                    "A model trained on a data set (digits, iris, moons, a file) is run instead on "
                    "--samples samples of its test split (same split and scaler as in training): "
                    "accuracy on each substrate and the fraction of predictions agreeing with the ODE.")
    p.add_argument("model", metavar="MODEL_FILE", help="a model file saved by 'deepcircuit train'")
    p.add_argument("--task", default=None, help="logic task or built-in data set (default: the model's own)")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="the data file (.csv/.npz) a model was trained on; its test split is used")
    p.add_argument("--test", default=None, metavar="FILE", help="the separate test file it was trained with")
    p.add_argument("--samples", type=int, default=100,
                   help="data sets: number of test samples to run (the first N of the test split; default 100)")
    p.add_argument("--energy-per-spike", type=float, default=1.7e-12, metavar="J",
                   help="data sets, spiking substrates: energy per spike of the energy estimate (default "
                        "1.7e-12 J, Loihi's within-tile spike, Davies et al., IEEE Micro 2018)")
    p.add_argument("--energy-per-synaptic-event", type=float, default=23.6e-12, metavar="J",
                   help="data sets, spiking substrates: energy per synaptic event (default 23.6e-12 J, "
                        "Loihi's synaptic spike operation, Davies et al., IEEE Micro 2018)")
    p.add_argument("--substrates", default="ode,brian2,spice",
                   help="comma-separated substrate specs NAME:opt=v;opt=v, e.g. "
                        "'ode,brian2,spice,spice:clamp=limiter' or 'spice:mismatch=0.3;seed=1;clamp=limiter' "
                        "(default: ode,brian2,spice)")
    p.add_argument("--reference", default=None, metavar="SPEC",
                   help="the substrate spec every deviation is measured against, e.g. 'ode:mismatch=0.3;seed=1' "
                        "(the same chip on the ODE); default: the ideal ODE (logic tasks: its accurate adaptive "
                        "integrator, as is an ode SPEC without method=; data sets: projected Euler)")
    p.add_argument("--train-epochs", type=int, default=0,
                   help="also train from the model's seed and fresh initial weights on every substrate "
                        "for this many epochs and compare the learned weights (default 0: inference only)")
    p.add_argument("--free-steps", type=int, default=None, help="free-phase steps (default: the model's)")
    p.add_argument("--nudged-steps", type=int, default=None, help="nudged-phase steps (default: the model's)")
    p.add_argument("--seed", type=int, default=None, help="seed of the initial states (default: the model's)")
    add_transconductor_arguments(p)
    p.add_argument("--reference-max-seconds", type=float, default=120.0,
                   help="wall-time budget of the adaptive ODE reference per phase, in seconds (default 120)")
    p.add_argument("--reference-max-evaluations", type=int, default=500_000,
                   help="budget of right-hand-side evaluations of the adaptive ODE reference per phase "
                        "(default 500000); a stiff model stops with an error when it is used up")
    p.add_argument("--out", default=None, help="folder for plots and report.md (default: no files)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run_on_data(args, model, dataset, config, substrates) -> int:
    """``compare`` for a model trained on a data set: predictions on test samples per substrate."""
    from ..studies.comparison import compare_predictions
    from ..studies.hardware_figures import format_si
    from ..errors import InvalidInputError
    from ..learning.evaluation import check_task_fits

    if args.train_epochs:
        raise InvalidInputError("--train-epochs compares training on logic tasks; it does not apply to data sets.")
    if args.samples < 1:
        raise InvalidInputError(f"--samples must be at least 1; got {args.samples}.")
    from .._validation import check_real

    check_real("--energy-per-spike", args.energy_per_spike, low=0.0)
    check_real("--energy-per-synaptic-event", args.energy_per_synaptic_event, low=0.0)
    test = dataset.test
    task = test.subset(slice(0, min(args.samples, test.n_presentations)))
    check_task_fits(task, model.network.roles)
    seed = args.seed if args.seed is not None else (model.seed or 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = getattr(args, "run_state", None)
        comp = compare_predictions(model.network, task, substrates, schedule=config.eval_schedule, seed=seed,
                                   state_init_high=config.state_init_high, progress=not args.quiet,
                                   reference=args.reference, energy_per_spike=args.energy_per_spike,
                                   energy_per_synaptic_event=args.energy_per_synaptic_event,
                                   on_stage=None if state is None else (
                                       lambda what: setattr(state, "stage", f"while {what}")))
    print_warnings(caught)
    rows = [(label, f"{100 * c.accuracy:.1f} %", f"{100 * c.agreement:.1f} %", f"{c.max_state_deviation:.3g}",
             f"{100 * c.settled:.0f} %", f"{c.seconds:.1f}") for label, c in comp.items()]
    ref = args.reference or "ode"
    print(format_table(["substrate", f"accuracy ({task.split})", f"agrees with {ref}", "max state dev",
                        "settled", "seconds"], rows))
    what = (f"{dataset.name}: the first {task.n_presentations} samples of the {task.split} split "
            f"(split seed {dataset.split_seed}), free phase of {config.eval_schedule.free_duration:g} tau; "
            f"deviations and agreement against {ref}")
    print(f"\n{what}")
    for label, c in comp.items():
        if c.spikes is not None:
            k = c.spikes
            print(f"{label}: per inference {k.spikes_per_inference:.4g} spikes, {k.synaptic_events_per_inference:.4g} "
                  f"synaptic events; energy estimate {format_si(k.energy_per_inference_J, 'J')} at "
                  f"{format_si(k.energy_per_spike_J, 'J')} per spike and {format_si(k.energy_per_synaptic_event_J, 'J')} "
                  "per synaptic event (--energy-per-spike, --energy-per-synaptic-event)")
    if args.out:
        from pathlib import Path

        from ..atomic_files import write_atomic

        argv = sys.argv[1:]
        command = "deepcircuit " + " ".join(map(shlex.quote, argv)) if argv[:1] == ["compare"] else None
        lines = ["# Substrate comparison on a data set", "",
                 f"Model: `{args.model}`; {what}.", *([f"Command: `{command}`", ""] if command else [""]),
                 f"| substrate | accuracy ({task.split}) | agrees with {ref} | max state deviation | settled | seconds |",
                 "|---|---|---|---|---|---|",
                 *[f"| {label} | {100 * c.accuracy:.1f} % | {100 * c.agreement:.1f} % | {c.max_state_deviation:.3g} | "
                   f"{100 * c.settled:.0f} % | {c.seconds:.1f} |" for label, c in comp.items()], ""]
        path = write_atomic(Path(args.out) / "report.md", "\n".join(lines))
        print(f"report in {path}")
    if args.json:
        print_json_line({"task": dataset.name, "model": args.model, "seed": seed, "split": task.split,
                         "n_samples": task.n_presentations, "reference": ref,
                         "substrates": {label: c.to_dict() for label, c in comp.items()}})
    return 0


def run(args) -> int:
    from ..studies.comparison import compare
    from ..data.split import dataset_for_model
    from ..learning.model_file import load_model
    from ..studies.report import HEADERS, comparison_rows, unsettled_notes, write_report
    from ..learning.evaluation import check_task_fits
    from ..learning.initial_networks import make_networks
    from ..studies.hardware_options import transconductor_from_args

    from ..errors import InvalidInputError
    from ..studies import option_checks as checks

    # Every argument is checked before anything runs or any folder is created.
    checks.seed("--seed", args.seed)
    checks.count("--train-epochs", args.train_epochs, limit="MAX_EPOCHS")
    checks.count("--free-steps", args.free_steps, low=1, limit="MAX_PHASE_STEPS")
    checks.count("--nudged-steps", args.nudged_steps, low=1, limit="MAX_PHASE_STEPS")
    specs = args.substrates
    ota = transconductor_from_args(args)
    if ota is not None:  # --transconductor applies to every spice substrate that does not name its own
        extra = f"transconductor={ota.kind}" + "".join(
            f";ota_{k}={getattr(args, 'ota_' + k)}" for k in ("linear_range", "gain", "offset")
            if getattr(args, "ota_" + k) is not None)
        from ..substrates import split_substrate_list

        specs = ",".join(s if not s.startswith("spice") or "transconductor=" in s
                         else s + (";" if ":" in s else ":") + extra for s in split_substrate_list(specs))
    substrates = checks.substrate_specs(specs)
    if args.reference is not None:
        checks.substrate_spec(args.reference, "--reference")
    if args.out is not None:
        checks.output_folder("--out", args.out)
    model = load_model(args.model)
    dataset = dataset_for_model(model, task=args.task, data=args.data, test=args.test)
    config = model.training_config()
    if not dataset.test_is_train:
        # A data set's outputs are read as in training's evaluations: after the read-out budget
        # (eval_free_steps); --free-steps sets that budget here.
        return run_on_data(args, model, dataset, config.replace(**{
            k: v for k, v in {"free_steps": args.free_steps, "eval_free_steps": args.free_steps,
                              "nudged_steps": args.nudged_steps}.items() if v is not None}), substrates)
    task = dataset.test
    check_task_fits(task, model.network.roles)
    changes = {k: v for k, v in {"free_steps": args.free_steps, "nudged_steps": args.nudged_steps}.items()
               if v is not None}
    if args.train_epochs:
        changes["epochs"] = args.train_epochs
    config = config.replace(**changes)
    seed = args.seed if args.seed is not None else (model.seed or 0)
    if config.nudged_steps < 1:
        raise InvalidInputError("compare runs both phases, but the model's nudged phase has 0 steps; give "
                                "--nudged-steps N >= 1.")
    checks.state_size(task, model.network.roles.hidden, 1, config.free_steps, config.nudged_steps)
    if "spice" in {s.partition(":")[0].strip() for s in [*substrates, args.reference or ""]}:
        checks.beta_for_circuit(config.beta)
    train_from = None
    if args.train_epochs:
        net = model.network
        train_from = make_networks(task, model=net.family, topology=net.topology_mask, hidden=net.roles.hidden,
                                   seeds=[seed], config=config, params=dict(net.params))[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = getattr(args, "run_state", None)
        comp = compare(model.network, task, substrates, schedule=config.schedule, seed=seed,
                       train_from=train_from, config=config, progress=not args.quiet,
                       reference_max_evaluations=args.reference_max_evaluations,
                       reference_max_seconds=args.reference_max_seconds, reference=args.reference,
                       on_stage=None if state is None else (lambda what: setattr(state, "stage", f"while {what}")))
    print_warnings(caught)
    print(format_table(HEADERS, comparison_rows(comp)))
    for note in unsettled_notes(comp):
        print(note)
    if args.out:
        # The command as typed, when run from the console script (not when called from Python).
        argv = sys.argv[1:]
        command = "deepcircuit " + " ".join(map(shlex.quote, argv)) if argv[:1] == ["compare"] else None
        if state is not None:
            state.stage = f"while writing the report in {shown_path(args.out)}"
        path = write_report(comp, args.out, model_path=args.model, command=command,
                            written=None if state is None else state.written)
        print(f"\nreport and plots in {shown_path(path.parent)}/ ({path.name}, trajectories.png, lyapunov.png, "
              "deviations.png, weights.png)")
    if args.json:
        print_json_line({"task": comp.task.name, "model": args.model, "seed": seed, "reference": comp.reference_label,
                         **comp.to_dict()})
    return 0
