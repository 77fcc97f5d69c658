"""``deepcircuit export``: a trained model as a standalone SPICE netlist for plain ngspice."""

from __future__ import annotations

import argparse

from .output import shown_path


def add_parser(sub) -> argparse.ArgumentParser:
    from ..substrates.clamps import CLAMP_KINDS, DEFAULT_CLAMP
    from ..studies.hardware_options import add_transconductor_arguments

    p = sub.add_parser(
        "export", help="write a model as a standalone SPICE netlist (runs in `ngspice -b`)",
        description="Compile a saved model into a SPICE netlist with one copy of the circuit per "
                    "presentation of the task, its own transient analysis, initial conditions and a "
                    ".control block that prints every node voltage. Units: state 1.0 = V_SCALE volts, "
                    "tau = C / g.")
    p.add_argument("model", metavar="MODEL_FILE", help="a model file written by `deepcircuit train`")
    p.add_argument("--task", default=None,
                   help="logic task or built-in data set whose presentations the netlist holds "
                        "(default: the model's task; data sets: its test split)")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="the data file (.csv/.npz) a model was trained on (its test split is used)")
    p.add_argument("--test", default=None, metavar="FILE", help="the separate test file it was trained with")
    p.add_argument("--sample", type=int, default=None, metavar="K",
                   help="only test sample K (0-based, scaled with the model's scaler); a data set's "
                        "netlist holds one sample, K = 0 unless given")
    p.add_argument("--out", required=True, help="netlist file to write, e.g. netlists/xor.cir")
    p.add_argument("--clamp", default=None, choices=list(CLAMP_KINDS),
                   help=f"clamp of the [0, 1] bound: diode model DCLAMP, a stiff limiter, or an op-amp "
                        f"precision clamp (default {DEFAULT_CLAMP})")
    p.add_argument("--diode-is", type=float, default=None, help="clamp diode saturation current IS in A (default 1e-6)")
    p.add_argument("--diode-n", type=float, default=None, help="clamp diode emission coefficient N (default 1)")
    p.add_argument("--diode-rs", type=float, default=None, help="clamp diode series resistance RS in ohm (default 1)")
    p.add_argument("--limiter-stiffness", type=float, default=None,
                   help="limiter conductance outside the box, in units of g (default 1e4)")
    p.add_argument("--opamp-gain", type=float, default=None,
                   help="open-loop gain of the precision clamp's op-amps (default 1e4)")
    add_transconductor_arguments(p)
    p.add_argument("--free-only", action="store_true", help="only the free phase (no nudge)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial states (default: 0)")
    p.add_argument("--v-scale", type=float, default=None, help="volts of state 1.0 (default 10)")
    p.add_argument("--capacitance", type=float, default=None, help="node capacitance C in farads (default 1e-12)")
    p.add_argument("--transconductance", type=float, default=None,
                   help="unit transconductance g in siemens (default 1e-6)")
    p.add_argument("--dt", type=float, default=None, help="print step in tau (default: the model's training dt)")
    p.add_argument("--free-steps", type=int, default=None, help="free phase length in steps of dt")
    p.add_argument("--nudged-steps", type=int, default=None, help="nudged phase length in steps of dt")
    p.add_argument("--beta", type=float, default=None, help="nudging strength (default: the model's)")
    p.add_argument("--mismatch", type=float, default=0.0, help="relative transconductance mismatch (sigma)")
    p.add_argument("--bits", type=int, default=None, help="weight quantization bits (default: off)")
    p.add_argument("--weight-range", type=float, default=4.0, help="range of quantized weights (default 4)")
    p.add_argument("--parasitic", type=float, default=0.0, help="parasitic capacitance per node (F)")
    p.add_argument("--noise", type=float, default=0.0, help="noise current rms in units of g*V_scale")
    p.add_argument("--nonideal-seed", type=int, default=0, help="seed of mismatch and noise (default 0)")
    return p


def run(args) -> int:
    from dataclasses import replace

    from ..substrates.chip import CircuitUnits, NonIdealities
    from ..substrates.circuit import standalone_netlist
    from ..substrates.clamps import DEFAULT_CLAMP, ClampModel
    from ..data.split import dataset_for_model
    from ..learning.model_file import load_model
    from ..atomic_files import write_atomic
    from ..learning.evaluation import check_task_fits

    from ..errors import InvalidInputError
    from ..studies import option_checks as checks
    from ..studies.hardware_options import transconductor_from_args

    # Every argument is checked before the netlist is built and before anything is written.
    out = checks.output_file("--out", args.out)
    checks.seed("--seed", args.seed)
    if not 0 <= args.nonideal_seed < 2 ** 31:  # ngspice's `.options seed` is a C int
        raise InvalidInputError(f"--nonideal-seed must be an integer in [0, 2**31); got {args.nonideal_seed}.")
    checks.count("--free-steps", args.free_steps, low=1, limit="MAX_PHASE_STEPS")
    checks.count("--nudged-steps", args.nudged_steps, low=1, limit="MAX_PHASE_STEPS")
    diode_opts = [o for o, v in (("--diode-is", args.diode_is), ("--diode-n", args.diode_n),
                                 ("--diode-rs", args.diode_rs)) if v is not None]
    if (args.clamp or DEFAULT_CLAMP) == "limiter" and diode_opts:
        raise InvalidInputError(f"{', '.join(diode_opts)} only apply to --clamp diode; got --clamp limiter.")
    if (args.clamp or DEFAULT_CLAMP) == "diode" and args.limiter_stiffness is not None:
        raise InvalidInputError("--limiter-stiffness only applies to --clamp limiter; got --clamp diode.")
    if args.free_only and (args.nudged_steps is not None or args.beta is not None):
        raise InvalidInputError("--nudged-steps and --beta do not apply with --free-only (no nudged phase).")
    if args.bits is None and args.weight_range != 4.0:
        raise InvalidInputError("--weight-range only applies with --bits (weight quantization).")
    model = load_model(args.model)
    dataset = dataset_for_model(model, task=args.task, data=args.data, test=args.test)
    task = dataset.test
    sample = args.sample if args.sample is not None or dataset.test_is_train else 0
    if sample is not None:
        if not 0 <= sample < task.n_presentations:
            raise InvalidInputError(
                f"--sample must be in 0..{task.n_presentations - 1} (the {task.split} split of "
                f"{dataset.name}); got {sample}.")
        task = task.subset([sample])
    check_task_fits(task, model.network.roles)
    config = model.training_config()
    changes = {k: v for k, v in {"dt": args.dt, "free_steps": args.free_steps,
                                 "nudged_steps": args.nudged_steps, "beta": args.beta}.items() if v is not None}
    config = config.replace(**changes)
    if not args.free_only:
        if config.nudged_steps == 0:
            raise InvalidInputError("The model's nudged phase has 0 steps; give --nudged-steps N >= 1, or "
                                    "--free-only for a free-phase netlist.")
        if config.beta == 0:
            raise InvalidInputError("beta is 0, so the nudged phase has no nudge; give --beta > 0, or "
                                    "--free-only for a free-phase netlist.")
        checks.beta_for_circuit(config.beta)
    units = CircuitUnits()
    units = replace(units, **{k: v for k, v in {"v_scale": args.v_scale, "capacitance": args.capacitance,
                                                "transconductance": args.transconductance}.items() if v is not None})
    nonideal = NonIdealities(mismatch=args.mismatch, bits=args.bits, weight_range=args.weight_range,
                             parasitic_capacitance=args.parasitic, noise=args.noise, seed=args.nonideal_seed)
    kind = args.clamp or DEFAULT_CLAMP
    for flags, values, needs in (
            (("--diode-is", "--diode-n", "--diode-rs"), (args.diode_is, args.diode_n, args.diode_rs), "diode"),
            (("--limiter-stiffness",), (args.limiter_stiffness,), "limiter"),
            (("--opamp-gain",), (args.opamp_gain,), "precision")):
        if kind != needs and any(v is not None for v in values):
            raise InvalidInputError(f"{', '.join(flags)} apply to --clamp {needs}; the clamp is {kind!r}.")
    clamp = ClampModel(kind=kind, **{k: v for k, v in {
        "saturation_current": args.diode_is, "emission": args.diode_n, "series_resistance": args.diode_rs,
        "stiffness": args.limiter_stiffness, "opamp_gain": args.opamp_gain}.items() if v is not None})
    which = f", {task.split} sample {sample}" if sample is not None else ""
    # The path and a data file's name are user text: compile_netlist makes the title inert (one
    # printable ASCII line).
    title = f"deepcircuit export of {args.model} on task {task.name}{which} (seed {args.seed})"
    net = standalone_netlist(model.network, task, schedule=config.schedule, seed=args.seed,
                             state_init_high=config.state_init_high, nudged=not args.free_only,
                             units=units, clamp=clamp, nonideal=nonideal, title=title,
                             transconductor=transconductor_from_args(args))
    path = write_atomic(out, net.text)
    if getattr(args, "run_state", None) is not None:
        args.run_state.written.append(str(path))
    n_elem = sum(1 for ln in net.text.splitlines() if ln and ln[0] not in "*.")
    shown = shown_path(path)  # a file name may hold spaces or control characters
    print(f"wrote {shown}: {n_elem} elements, {len(net.nodes)} free nodes, transient to {net.stop:.4g} s "
          f"(tau = {units.tau:.4g} s); run it with `ngspice -b {shown}`")
    if net.meta.get("supplies"):
        print(f"supply VDD = {units.vdd:.4g} V per array; ngspice prints the charge each array draws per phase "
              f"(q_free_*, q_nudged_*, coulombs; energy = -VDD * q)")
    return 0
