"""``deepcircuit gradcheck``: how close each learning rule's update is to the true gradient."""

from __future__ import annotations

import argparse
import math

from .output import format_table, print_json_line, shown_path


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"beta must be a number; got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"beta must be a finite number > 0; got {text!r}")
    return v


def add_parser(sub) -> argparse.ArgumentParser:
    from ..stability.gradient_check import DEFAULT_BETAS
    from ..substrates import available_substrates
    from ..data.tasks import TASKS
    from ..studies.option_checks import SubstrateSpecAction

    p = sub.add_parser(
        "gradcheck", help="alignment of each learning rule's update with the true loss gradient",
        description="Load a model file, settle its free phase for every input of the task, compute the "
                    "gradient of the settled MSE with respect to every weight by implicit differentiation "
                    "of the fixed point (checked against finite differences), then run the nudged phase "
                    "at each beta and report the cosine and norm ratio between each family's rule update "
                    "(applied to the same network's trajectories) and the negative gradient. Two references: "
                    "'ideal' (the ideal model's gradient) and 'as_built' (the gradient of the loss of the circuit "
                    "as built, the substrate's chip with its mismatch and element laws at its own equilibrium, "
                    "with respect to the programmed weights: what in-situ learning should follow).")
    p.add_argument("model_file", metavar="MODEL_FILE", help="a model file written by `deepcircuit train`")
    p.add_argument("--task", default=None, choices=list(TASKS),
                   help="task whose inputs are presented (default: the task stored in the model file)")
    p.add_argument("--beta", type=_positive, nargs="+", default=list(DEFAULT_BETAS),
                   help=f"nudging strengths of the sweep, 1/tau (default: {' '.join(map(str, DEFAULT_BETAS))})")
    p.add_argument("--substrate", default="ode", metavar="SPEC", action=SubstrateSpecAction,
                   help=f"where the phases run, a substrate ({', '.join(available_substrates())}) with options "
                        "NAME:opt=v;opt=v, e.g. 'spice:mismatch=0.1;seed=1;clamp=limiter'; the rules read its "
                        "trajectories, and the 'as_built' reference is the gradient of its chip's loss with "
                        "respect to the programmed weights (default: ode)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial states and of the checked weights")
    p.add_argument("--fd-entries", type=int, default=40,
                   help="how many weights the finite-difference check perturbs (default 40; 0 = skip)")
    p.add_argument("--no-symmetric", action="store_true", help="skip the symmetric-nudge (+beta, -beta) estimate")
    p.add_argument("--plot", default=None, metavar="PNG", help="also draw cosine against beta to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def run(args) -> int:
    from ..errors import InvalidInputError
    from ..stability.gradient_check import gradient_check
    from ..learning.model_file import load_model

    if args.seed < 0 or args.fd_entries < 0:
        raise InvalidInputError("--seed and --fd-entries must be >= 0.")
    model = load_model(args.model_file)
    net = model.network
    task = model.task_for(args.task)
    config = model.training_config()
    substrate = getattr(args, "substrate_spec", None) or args.substrate
    report = gradient_check(net, task, betas=args.beta, schedule=config.schedule, substrate=substrate,
                            symmetric=not args.no_symmetric, seed=args.seed, fd_entries=args.fd_entries,
                            settings={"beta0": config.beta0, "beta1": config.beta1})
    d = report.to_dict()
    print(f"{shown_path(args.model_file)}: {net.family} network, hidden {list(net.roles.hidden)}, {net.n_connections} "
          f"connections; task {task.name}; substrate {report.substrate}; settled loss {report.loss:.4g}; "
          f"|gradient| {report.gradient_norm:.4g}")
    if report.message:
        print(f"note: {report.message}")
    if report.status != "ok":
        print("no gradient: every presentation is singular or unsettled; nothing to compare.")
    else:
        built = report.as_built
        print(f"finite-difference check ({args.fd_entries} weights): error {report.finite_difference_error:.3g} "
              "(relative to |gradient|)" + ("" if built is None else
                                             f"; as built: {built.finite_difference_error:.3g} (loss "
                                             f"{built.loss:.4g}, |gradient| {built.gradient_norm:.4g})"))
        rows = []
        for ref, table in (("ideal", report.rules), ("as_built", built.rules if built else {})):
            for label, a in table.items():
                for k, beta in enumerate(a.beta):
                    sym = a.symmetric["cosine"][k] if a.symmetric else float("nan")
                    rows.append((ref, label, a.rule, beta, a.cosine[k], a.norm_ratio[k], sym))
        print(format_table(["reference", "rule of", "rule", "beta", "cosine", "norm ratio", "cosine (+-beta)"],
                           rows))
        print("cosine between the rule's update (no learning rate) and -gradient; nan = gradient 0 "
              "(saturated outputs) or undefined")
    if args.plot:
        from ..studies.plots import gradient_alignment_figure

        gradient_alignment_figure({"": report}, path=args.plot)
        print(f"wrote {shown_path(args.plot)}")
    if args.json:
        print_json_line({"model": args.model_file, **d})
    return 0
