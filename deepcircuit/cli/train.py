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
    from ..data_builtin import BUILTIN_DATASETS
    from ..tasks import TASKS
    from ..training import PRESETS, PRUNE_METHODS
    from ..training_steps import FREEZE_GROUPS

    p = sub.add_parser(
        "train", help="train networks on a task or data set (one per seed) and save them",
        description="Train one network per seed on a logic task, a built-in data set or a data file, "
                    "and save each as a model file under --out (seed<K>.json). Seeds are SEED .. "
                    "SEED+SEEDS-1 and run as one batch. Data sets are split (stratified, --split-seed) "
                    "and scaled to [0, 1] by a scaler fitted on the training split; every accuracy "
                    "printed names its split.")
    p.add_argument("--task", default=None,
                   help=f"logic task ({', '.join(TASKS)}) or built-in data set "
                        f"({', '.join(BUILTIN_DATASETS)}); default: xor")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="train on a data file instead: FILE.csv (header row, one sample per row) or "
                        "FILE.npz (arrays x, y)")
    p.add_argument("--target", default=None, metavar="COLUMN",
                   help="label column of a CSV data file (default: the last column)")
    p.add_argument("--test", default=None, metavar="FILE", help="separate test file (instead of --test-fraction)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="fraction of a data set held out for testing, stratified (default 0.2)")
    p.add_argument("--validation-fraction", type=float, default=0.0,
                   help="fraction of the training rows held out for validation / early stopping (default 0)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/test split (default 0)")
    p.add_argument("--readout", choices=["argmax", "threshold"], default=None,
                   help="one output per class read by argmax (default), or one thresholded output (two classes)")
    p.add_argument("--model", default="deep", choices=list(FAMILIES), help="model family (default: deep)")
    p.add_argument("--topology", default=None,
                   help="'complete', 'layered', or a file of edges 'i j' per line (indices or names "
                        "x0, bias, h0, y0); default: the data set's (complete for logic tasks)")
    p.add_argument("--hidden", default=None,
                   help="hidden layer sizes, e.g. 5 or 5,3 (default: the data set's; 5 for logic tasks)")
    p.add_argument("--epochs", type=int, default=None,
                   help="number of epochs (default: the data set's; the preset's 200 for logic tasks)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="presentations per minibatch (default: the data set's; logic tasks: all)")
    p.add_argument("--freeze", default=None, metavar="GROUPS",
                   help=f"comma-separated connection groups kept at their initial weights: {', '.join(FREEZE_GROUPS)}")
    p.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                   help="stop a seed after PATIENCE epochs without a better validation accuracy and "
                        "keep its best weights (needs --validation-fraction)")
    p.add_argument("--settle-tol", type=float, default=None,
                   help="equilibrium tolerance on max |ds/dt| (1/tau); phases of data sets stop there")
    p.add_argument("--seeds", type=int, default=1, help="number of seeds / networks (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    p.add_argument("--out", default="runs/train", help="folder for the model files (default: runs/train)")
    p.add_argument("--preset", default="default", choices=list(PRESETS),
                   help="'default' (project settings) or 'paper' (the reference notebooks exactly)")
    p.add_argument("--substrate", default="ode", choices=available_substrates(),
                   help="where the phases run (default: ode)")
    p.add_argument("--brian2-target", choices=["numpy", "cython"], default=None,
                   help="Brian2 code-generation target for the brian2 substrates (default: numpy; "
                        "cython needs a C compiler and compiles once, then runs faster)")
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


def dataset_from_args(args):
    """The task resolved once from --task / --data and the split options (a Dataset)."""
    from ..data_split import load_dataset
    from ..errors import InvalidInputError

    data = getattr(args, "data", None)
    if data is not None and args.task is not None:
        raise InvalidInputError("Give either --task NAME or --data FILE, not both.")
    if data is None and (args.target is not None or args.test is not None):
        raise InvalidInputError("--target and --test apply to a data file; give it with --data FILE.")
    return load_dataset(data if data is not None else (args.task or "xor"), target=args.target,
                        test=args.test, test_fraction=args.test_fraction,
                        validation_fraction=args.validation_fraction, split_seed=args.split_seed,
                        readout=args.readout)


def train_from_args(args):
    """Parsed ``train`` arguments to a finished training: returns ``(result, config)``.

    The one place that turns options into a :func:`deepcircuit.train` call (``sweep`` reuses it).
    Warnings raised during training are printed to stderr, one line each.
    """
    from ..lyapunov import certificate_recorder
    from ..training import TrainingConfig, train

    dataset = dataset_from_args(args)
    config = TrainingConfig.for_task(dataset, model=args.model, preset=args.preset)
    overrides = {k: v for k, v in {
        "epochs": args.epochs, "eta": args.eta, "beta": args.beta, "dt": args.dt,
        "free_steps": args.free_steps, "nudged_steps": args.nudged_steps, "l1": args.l1,
        "prune_tol": args.prune_tol, "batch_size": args.batch_size,
        "early_stopping": args.early_stopping, "settle_tol": args.settle_tol}.items() if v is not None}
    if args.prune:
        overrides["prune"] = args.prune
    if args.sign:
        overrides["sign"] = True
    if args.freeze:
        overrides["freeze"] = tuple(g.strip() for g in args.freeze.split(",") if g.strip())
    config = config.replace(**overrides)
    params = {"gamma": args.gamma} if args.gamma is not None else None
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
        result = train(dataset, model=args.model,
                       topology=_topology(args.topology) if args.topology is not None else None,
                       hidden=args.hidden, seeds=seeds, config=config, substrate=substrate,
                       params=params, progress=not args.quiet, on_divergence="report",
                       callbacks=[certificate_recorder()] if args.record_certificates else ())
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return result, config


def run(args) -> int:
    from ..persistence import ModelFile, save_model

    out = Path(args.out)
    # Fail before training, not after it, if the models cannot be saved there.
    out.mkdir(parents=True, exist_ok=True)
    result, config = train_from_args(args)
    ds = result.dataset
    logic = ds.test_is_train
    paths = []
    for k, seed in enumerate(result.seeds):
        metrics = {"train_error": float(result.train_error[k]), "mse": float(result.mse[k]),
                   "diverged": result.diverged[k], "train_accuracy": float(result.train_accuracy[k]),
                   "test_accuracy": float(result.test_accuracy[k])}
        if result.validation_error is not None:
            metrics["validation_accuracy"] = float(1 - result.validation_error[k])
        model = ModelFile(result.networks[k], seed=seed, task=result.task.name, substrate=result.substrate,
                          config=config.to_dict(), history=result.histories[k].to_dict(),
                          metrics=metrics, dataset=None if ds.source == "logic" else ds.to_dict())
        paths.append(str(save_model(out / f"seed{seed}.json", model)))

    def status(k):
        return "diverged" if result.diverged[k] else ("solved" if result.train_error[k] == 0 else "-")

    if logic:
        rows = [(seed, f"{100 * result.train_error[k]:.0f} %", result.mse[k], f"{100 * result.sparsity[k]:.0f} %",
                 status(k)) for k, seed in enumerate(result.seeds)]
        print(format_table(["seed", "train error", "mse (train)", "sparsity", "status"], rows))
    else:
        val = result.validation_error
        rows = [(seed, f"{100 * result.train_accuracy[k]:.1f} %",
                 *([f"{100 * (1 - val[k]):.1f} %"] if val is not None else []),
                 f"{100 * result.test_accuracy[k]:.1f} %", result.test_mse[k], f"{100 * result.sparsity[k]:.0f} %",
                 "diverged" if result.diverged[k] else "-") for k, seed in enumerate(result.seeds)]
        heads = ["seed", "train acc", *(["validation acc"] if val is not None else []), "test acc",
                 "mse (test)", "sparsity", "status"]
        print(format_table(heads, rows))
    topology = result.networks[0].topology
    head = (f"\n{ds.describe()}\n{ds.name} / {args.model} / {topology} {list(result.networks[0].roles.hidden)} / "
            f"preset {args.preset} on {result.substrate}")
    if logic:
        print(f"{head}: {result.solved}/{len(result.seeds)} seeds at 0 % training error in "
              f"{result.seconds:.2f} s; models in {out}/")
    else:
        import numpy as np

        acc = result.test_accuracy
        print(f"{head}: test accuracy {100 * np.mean(acc):.1f} +- {100 * np.std(acc):.1f} % over "
              f"{len(acc)} seed(s) (train {100 * np.mean(result.train_accuracy):.1f} %) in "
              f"{result.seconds:.1f} s; models in {out}/")
        hs = [h for h in result.histories if len(h)]
        if hs:
            mean = lambda key: float(np.mean([getattr(h, key)[-1] for h in hs]))  # noqa: E731
            print(f"last epoch (train split): phases used {mean('free_steps_used'):.0f} of {config.free_steps} "
                  f"free and {mean('nudged_steps_used'):.0f} of {config.nudged_steps} nudged steps per "
                  f"presentation; {100 * (1 - mean('free_settled')):.1f} % (free) and "
                  f"{100 * (1 - mean('nudged_settled')):.1f} % (nudged) not settled")
    for k, msg in enumerate(result.diverged):
        if msg:
            print(f"seed {result.seeds[k]} diverged: {msg}")
    if args.json:
        print_json_line({
            "task": ds.name, "data": ds.source, "model": args.model, "topology": topology,
            "hidden": list(result.networks[0].roles.hidden), "preset": args.preset,
            "substrate": result.substrate, "epochs": config.epochs, "batch_size": config.batch_size,
            "seeds": result.seeds, "split_seed": ds.split_seed, "sizes": ds.to_dict()["sizes"],
            "solved": result.solved, "train_error": result.train_error, "mse": result.mse,
            "train_accuracy": result.train_accuracy, "test_accuracy": result.test_accuracy,
            "validation_accuracy": (1 - result.validation_error) if result.validation_error is not None else None,
            "sparsity": result.sparsity, "diverged": result.diverged, "seconds": result.seconds,
            "models": paths,
        })
    return 0
