"""``deepcircuit lyapunov``: stability certificates of a saved model, checked on its trajectories."""

from __future__ import annotations

import argparse

from .output import format_table, print_json_line, shown_path


def add_parser(sub) -> argparse.ArgumentParser:
    from ..substrates import available_substrates
    from ..data.tasks import TASKS

    p = sub.add_parser(
        "lyapunov", help="stability certificates of a model and Lyapunov checks of its trajectories",
        description="Load a model file, report its Gershgorin certificates, run the free and nudged "
                    "phases on a substrate for every input of the task (with the model's stored "
                    "schedule), linearise at each equilibrium reached, and check that a Lyapunov "
                    "function V does not increase along each trajectory.")
    p.add_argument("model_file", metavar="MODEL_FILE", help="a model file written by `deepcircuit train`")
    p.add_argument("--task", default=None, choices=list(TASKS),
                   help="task whose inputs are presented (default: the task stored in the model file)")
    p.add_argument("--substrate", default="ode", choices=available_substrates(),
                   help="where the phases run (default: ode)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initial states (default: 0)")
    p.add_argument("--function", default="auto", choices=["auto", "energy", "1-norm", "max-norm", "quadratic"],
                   help="Lyapunov function to evaluate (default: auto, the best certified one)")
    p.add_argument("--bound-tol", type=float, default=1e-6,
                   help="how close to 0 or 1 a neuron must be to count as held at a bound (default 1e-6; "
                        "a substrate with a soft clamp, like a diode limiter, needs about 1e-2)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    return p


def _yes(b: bool) -> str:
    return "yes" if b else "no"


def run(args) -> int:
    import numpy as np

    from ..stability.lyapunov import check_phases, stability_verdict
    from ..stability.certificates import contraction, gershgorin
    from ..model.network import NetworkBatch
    from ..learning.model_file import load_model
    from ..substrates import get_substrate, initial_states

    from ..studies import option_checks as checks

    checks.seed("--seed", args.seed)
    model = load_model(args.model_file)
    net = model.network
    task = model.task_for(args.task)
    r = net.roles
    config = model.training_config()
    schedule = config.schedule
    checks.state_size(task, r.hidden, 1, schedule.free_steps, schedule.nudged_steps)
    s0 = initial_states(np.random.default_rng(args.seed), 1, task.inputs, r, config.state_init_high)
    # The certificates first: a network they cannot analyse is refused before any run.
    g = gershgorin(net)
    con = contraction(net)
    state = getattr(args, "run_state", None)
    if state is not None:
        state.stage = f"while running substrate {args.substrate!r}"
    with get_substrate(args.substrate) as sub:
        result = sub.run(NetworkBatch.of(net), task.inputs, s0, schedule, targets=task.targets)
    checks = check_phases(result, net, beta=schedule.beta, targets=task.targets, function=args.function,
                          bound_tol=args.bound_tol)

    inputs = ["".join(str(int(v)) for v in x[:-1]) for x in task.inputs]
    print(f"{shown_path(args.model_file)}: {net.family} network, hidden {list(r.hidden)}, {net.n_connections} connections; "
          f"task {task.name}; substrate {result.free.substrate}; dt {schedule.dt:g} tau, "
          f"{schedule.free_steps} + {schedule.nudged_steps} steps, beta {schedule.beta:g}")
    print("\nGershgorin conditions on the free-neuron Jacobian (network alone, free phase):")
    rows = [(c.name, _yes(c.holds), c.min_margin, ", ".join(c.failing) or "-") for c in g.conditions.values()]
    print(format_table(["condition", "holds", "min margin (1/tau)", "failing neurons"], rows))
    print(f"certified Hurwitz by Gershgorin: {_yes(g.certified)}")
    print(f"contraction in a weighted 1-norm (one globally attracting equilibrium): {_yes(con.holds)}; "
          f"alpha(M) {con.alpha:.4g} /tau" + (f"; deep leak needed: gamma > {con.gamma_min:.4g} /tau"
                                              if net.family.startswith("deep") else ""))

    rows, traj = [], []
    for phase, ch in checks.items():
        for c in ch.checks:
            a = c.analysis
            held = ", ".join(f"{k}@{v:g}" for k, v in a.held.items()) if a is not None else "?"
            rows.append((phase, inputs[c.presentation], _yes(c.settled), held or "-",
                         a.spectral_abscissa if a is not None else float("nan"),
                         ("diverged" if c.diverged or a is None else a.status if c.settled else "no equilibrium"),
                         c.function.name, c.function.scope, _yes(c.monotone), c.max_increase,
                         c.decay_rate))
            traj.append({"phase": phase, "input": task.inputs[c.presentation, :-1].tolist(), **c.to_dict()})
    print("\nEquilibria and Lyapunov checks (V along each trajectory, s* = its final state):")
    print(format_table(["phase", "input", "settled", "held at bound", "abscissa", "status", "V",
                        "certified", "monotone", "max increase", "decay (1/tau)"], rows))
    print("certified: 'global' = V never increases in [0, 1]; 'local' = only near s* (a trajectory "
          "starting far away may see V rise first); 'none' = empirical check only")

    free = checks["free"].checks
    an = [c.analysis for c in free if c.analysis is not None]
    hurwitz = bool(an) and len(an) == len(free) and all(a.hurwitz for a in an) and all(c.settled for c in free)
    abscissa = max((a.spectral_abscissa for a in an), default=float("nan"))
    verdict = stability_verdict(checks["free"])
    status = verdict.status
    names = list(dict.fromkeys(c.function.name for ch in checks.values() for c in ch.checks))
    certified = all(c.function.certified for ch in checks.values() for c in ch.checks)
    scopes = sorted({c.function.scope for ch in checks.values() for c in ch.checks})
    monotone = all(ch.monotone for ch in checks.values())
    print(f"\nfree phase: {status.upper() if status != 'stable' else status}; based on {verdict.basis}. "
          f"V = {', '.join(names)} ({'certified, ' + '/'.join(scopes) if certified else 'not certified'}): "
          f"{'non-increasing on every trajectory' if monotone else 'INCREASES on some trajectory'}")
    if args.json:
        print_json_line({
            "model": args.model_file, "family": net.family, "task": task.name, "substrate": result.free.substrate,
            "gershgorin": {name: {"holds": c.holds, "failing": list(c.failing), "min_margin": c.min_margin,
                                  "description": c.description} for name, c in g.conditions.items()},
            "certified": g.certified, "contraction": con.to_dict(), "hurwitz": hurwitz, "spectral_abscissa": abscissa,
            "stability": status, "stability_basis": verdict.basis,
            "lyapunov_function": ", ".join(names), "lyapunov_certified": certified,
            "lyapunov_scope": "/".join(scopes), "monotone": monotone,
            "trajectories": traj,
        })
    return 0
