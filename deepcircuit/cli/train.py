"""``deepcircuit train``: train one network per seed, save each, print a summary."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .output import format_table, print_json_line


def add_parser(sub) -> argparse.ArgumentParser:
    from ..families import FAMILIES
    from ..substrates import available_substrates
    from ..tasks import TASKS
    from ..training import PRESETS, PRUNE_METHODS

    p = sub.add_parser(
        "train", help="train networks on a task (one per seed) and save them",
        description="Train one network per seed on a logic task and save each as a model file "
                    "under --out (seed<K>.json). Seeds are SEED .. SEED+SEEDS-1 and run as one batch.")
    p.add_argument("--task", default="xor", choices=list(TASKS), help="task to learn (default: xor)")
    p.add_argument("--model", default="deep", choices=list(FAMILIES), help="model family (default: deep)")
    p.add_argument("--topology", default="complete",
                   help="'complete', 'layered', or a file of edges 'i j' per line (indices or names "
                        "x0, bias, h0, y0); default: complete")
    p.add_argument("--hidden", default="5", help="hidden layer sizes, e.g. 5 or 5,3 (default: 5)")
    p.add_argument("--epochs", type=int, default=None, help="number of epochs (default: from the preset, 200)")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds / networks (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    p.add_argument("--out", default="runs/train", help="folder for the model files (default: runs/train)")
    p.add_argument("--preset", default="default", choices=list(PRESETS),
                   help="'default' (project settings) or 'paper' (the reference notebooks exactly)")
    p.add_argument("--substrate", default="ode", choices=available_substrates(),
                   help="where the phases run (default: ode)")
    p.add_argument("--brian2-target", choices=["cpp_standalone", "numpy", "cython"], default=None,
                   help="Brian2 target for the brian2 substrates (default: cpp_standalone where a C++ "
                        "compiler is present, else numpy; cpp_standalone builds one compiled program "
                        "once, cached under ~/.cache/deepcircuit/brian2; cython compiles once too)")
    p.add_argument("--prune", choices=list(PRUNE_METHODS), default=None,
                   help="prune weak connections after each update (default: off)")
    p.add_argument("--prune-tol", type=float, default=None, help="pruning threshold on |W| (default 0.01)")
    p.add_argument("--l1", type=float, default=None, help="L1 regularisation per update (reference: 1.5e-4; default off)")
    p.add_argument("--sign", action="store_true", help="use sign(dW) updates")
    p.add_argument("--eta", type=float, default=None, help="learning rate (overrides the preset)")
    p.add_argument("--beta", type=float, default=None, help="nudging strength (overrides the preset)")
    p.add_argument("--dt", type=float, default=None, help="Euler step in tau (overrides the preset)")
    p.add_argument("--free-steps", type=int, default=None, help="free-phase steps T1 (overrides the preset)")
    p.add_argument("--nudged-steps", type=int, default=None, help="nudged-phase steps T2 (overrides the preset)")
    p.add_argument("--gamma", type=float, default=None, help="leak rate of deep-leaky (1/tau)")
    p.add_argument("--record-certificates", action="store_true",
                   help="record stability certificates every epoch in each model's history "
                        "(Gershgorin margins, spectral abscissa, equilibrium reached)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _topology(arg: str):
    from ..errors import InvalidInputError

    if arg in ("complete", "layered"):
        return arg
    path = Path(arg)
    if not path.is_file():
        raise InvalidInputError(
            f"--topology must be 'complete', 'layered' or an existing edge-list file; got {arg!r}.")
    edges = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        if len(parts) < 2:
            raise InvalidInputError(f"{arg}:{n}: an edge line needs two neurons, 'i j'; got {line!r}.")
        edges.append(tuple(int(p) if p.lstrip("-").isdigit() else p for p in parts[:2]))
    return edges


def run(args) -> int:
    from ..lyapunov import certificate_recorder
    from ..persistence import ModelFile, save_model
    from ..training import TrainingConfig, train

    config = TrainingConfig.preset(args.preset, model=args.model)
    overrides = {k: v for k, v in {
        "epochs": args.epochs, "eta": args.eta, "beta": args.beta, "dt": args.dt,
        "free_steps": args.free_steps, "nudged_steps": args.nudged_steps, "l1": args.l1,
        "prune_tol": args.prune_tol}.items() if v is not None}
    if args.prune:
        overrides["prune"] = args.prune
    if args.sign:
        overrides["sign"] = True
    config = config.replace(**overrides)
    params = {"gamma": args.gamma} if args.gamma is not None else None
    out = Path(args.out)
    # Fail before training, not after it, if the models cannot be saved there.
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seed, args.seed + args.seeds)) if args.seeds >= 1 else []
    substrate = args.substrate
    if args.brian2_target is not None:
        from ..errors import InvalidInputError
        from ..substrates import get_substrate

        if not substrate.startswith("brian2"):
            raise InvalidInputError(
                f"--brian2-target only applies to the brian2 substrates; got --substrate {substrate}.")
        substrate = get_substrate(substrate, target=args.brian2_target)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(args.task, model=args.model, topology=_topology(args.topology),
                       hidden=args.hidden, seeds=seeds, config=config, substrate=substrate,
                       params=params, progress=not args.quiet, on_divergence="report",
                       callbacks=[certificate_recorder()] if args.record_certificates else ())
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)

    paths = []
    for k, seed in enumerate(result.seeds):
        model = ModelFile(result.networks[k], seed=seed, task=result.task.name, substrate=result.substrate,
                          config=config.to_dict(), history=result.histories[k].to_dict(),
                          metrics={"train_error": float(result.train_error[k]), "mse": float(result.mse[k]),
                                   "diverged": result.diverged[k]})
        paths.append(str(save_model(out / f"seed{seed}.json", model)))

    rows = [(seed, f"{100 * result.train_error[k]:.0f} %", result.mse[k], f"{100 * result.sparsity[k]:.0f} %",
             "diverged" if result.diverged[k] else ("solved" if result.train_error[k] == 0 else "-"))
            for k, seed in enumerate(result.seeds)]
    print(format_table(["seed", "train error", "mse", "sparsity", "status"], rows))
    print(f"\n{args.task} / {args.model} / {args.topology} / preset {args.preset} on {result.substrate}: "
          f"{result.solved}/{len(result.seeds)} seeds at 0 % training error in {result.seconds:.2f} s; "
          f"models in {out}/")
    for k, msg in enumerate(result.diverged):
        if msg:
            print(f"seed {result.seeds[k]} diverged: {msg}")
    if args.json:
        print_json_line({
            "task": args.task, "model": args.model, "topology": args.topology, "preset": args.preset,
            "substrate": result.substrate, "epochs": config.epochs, "seeds": result.seeds,
            "solved": result.solved, "train_error": result.train_error, "mse": result.mse,
            "sparsity": result.sparsity, "diverged": result.diverged, "seconds": result.seconds,
            "models": paths,
        })
    return 0
