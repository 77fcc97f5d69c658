"""``deepcircuit train``: train one network per seed, save each, print a summary.

The options are :mod:`deepcircuit.studies.run_options`' table (a sweep's axes are the same);
the run itself (settings checked, data set, TrainingConfig, substrate, training, model files)
is :mod:`deepcircuit.studies.training_run`. This module parses and prints.
"""

from __future__ import annotations

import argparse

from .output import format_table, print_json_line, print_warnings, shown_path


def add_parser(sub) -> argparse.ArgumentParser:
    from ..studies.run_options import add_train_options

    p = sub.add_parser(
        "train", help="train networks on a task or data set (one per seed) and save them",
        description="Train one network per seed on a logic task, a built-in data set or a data file, "
                    "and save each as a model file under --out (seed<K>.json). Seeds are SEED .. "
                    "SEED+SEEDS-1 and run as one batch. Data sets are split (stratified, --split-seed) "
                    "and scaled to [0, 1] by a scaler fitted on the training split; every accuracy "
                    "printed names its split.")
    return add_train_options(p)


def run(args) -> int:
    from ..studies import option_checks as checks
    from ..studies.training_run import build_run, plan_run, printed_settings, save_models, train_run
    from .tune_options import tune_from_args, wants_tuning

    # Fail before training, not after it, if the models cannot be saved there; the folder itself
    # is created by the first save.
    out = checks.output_folder("--out", args.out)
    plan = plan_run(args)
    if getattr(args, "print_config", False):
        from ..learning.config_file import to_toml

        print(to_toml(printed_settings(plan),
                      comment="deepcircuit train settings; use with: deepcircuit train --config FILE.toml"), end="")
        return 0
    state = getattr(args, "run_state", None)
    build_run(plan, run_state=state)
    if wants_tuning(args):  # train --tune: the grid, then the choice retrained (studies/tune.py)
        result, config = tune_from_args(args, out, plan.dataset, model=plan.model, topology=plan.topology,
                                        hidden=plan.hidden, seeds=plan.seeds, config=plan.config,
                                        substrate=plan.substrate, params=plan.params, callbacks=plan.callbacks)
    else:
        result, caught = train_run(plan, progress=not args.quiet)
        print_warnings(caught)
        config = plan.config
    paths = save_models(result, config, out, tuning=getattr(args, "tuning", None), run_state=state,
                        substrate=plan.substrate)
    _print_results(args, result, config, out)
    ode_check = _ode_check(result)
    if args.json:
        _print_json(args, result, config, paths, ode_check)
    return 0


def _print_results(args, result, config, out) -> None:
    """The table of seeds, the summary line, and the seeds that did not settle or diverged."""
    import numpy as np

    from ..studies.training_run import unsettled_presentations

    ds = result.dataset
    logic = ds.test_is_train
    unsettled = unsettled_presentations(result)

    def status(k):
        return "diverged" if result.diverged[k] else ("solved" if result.train_error[k] == 0 else "-")

    star = ["*" if u else "" for u in unsettled]
    if logic:
        rows = [(seed, f"{100 * result.train_error[k]:.0f} %" + star[k], result.mse[k],
                 f"{100 * result.sparsity[k]:.0f} %", status(k)) for k, seed in enumerate(result.seeds)]
        print(format_table(["seed", "train error", "mse (train)", "sparsity", "status"], rows))
    else:
        val = result.validation_error
        rows = [(seed, f"{100 * result.train_accuracy[k]:.1f} %" + star[k],
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
              f"{result.seconds:.2f} s; models in {shown_path(out)}/")
    else:
        acc = result.test_accuracy
        print(f"{head}: test accuracy {100 * np.mean(acc):.1f} +- {100 * np.std(acc):.1f} % over "
              f"{len(acc)} seed(s) (train {100 * np.mean(result.train_accuracy):.1f} %) in "
              f"{result.seconds:.1f} s; models in {shown_path(out)}/")
        hs = [h for h in result.histories if len(h)]
        if hs:
            mean = lambda key: float(np.mean([getattr(h, key)[-1] for h in hs]))  # noqa: E731
            print(f"last epoch (train split): phases used {mean('free_steps_used'):.0f} of {config.free_steps} "
                  f"free and {mean('nudged_steps_used'):.0f} of {config.nudged_steps} nudged steps per "
                  f"presentation; {100 * (1 - mean('free_settled')):.1f} % (free) and "
                  f"{100 * (1 - mean('nudged_settled')):.1f} % (nudged) not settled")
    if any(unsettled):
        print("* read from outputs that had not settled at the end of the final evaluation's free phase "
              "(train split" + (f", the sample of {config.eval_samples} of --eval-samples, numbered within it"
                                if config.eval_samples and not logic else "") + "; presentations " + "; ".join(
                  f"seed {seed}: {u if len(u) <= 20 else f'{len(u)} of them'}"
                  for seed, u in zip(result.seeds, unsettled) if u) + "); not equilibria")
    for k, msg in enumerate(result.diverged):
        if msg:
            print(f"seed {result.seeds[k]} diverged: {msg}")


def _ode_check(result) -> "dict | None":
    """Trained as spikes (brian2-spiking): the same networks as rate models on the ODE (50 tau,
    fresh initial states), printed; None on other substrates."""
    import numpy as np

    if result.substrate != "brian2-spiking":
        return None
    from ..learning.evaluation import evaluate

    _, ode_error, _ = evaluate(result.networks, result.dataset, substrate="ode", rng=0)
    ode_check = {"solved": int(np.sum(ode_error == 0)), "error": ode_error}
    print(f"the same networks on the ODE substrate: {ode_check['solved']}/{len(result.seeds)} at 0 % "
          f"{'training' if result.dataset.test_is_train else 'test'} error")
    return ode_check


def _print_json(args, result, config, paths, ode_check) -> None:
    """The --json line: the run's settings, figures per seed, model files."""
    from ..studies.training_run import unsettled_presentations

    ds = result.dataset
    unsettled = unsettled_presentations(result)
    print_json_line({
        "task": ds.name, "data": ds.source, "classes": list(ds.class_names), "model": args.model,
        "topology": result.networks[0].topology,
        "hidden": list(result.networks[0].roles.hidden), "preset": args.preset,
        "substrate": result.substrate, "epochs": config.epochs, "batch_size": config.batch_size,
        "seeds": result.seeds, "split_seed": ds.split_seed, "sizes": ds.to_dict()["sizes"],
        "solved": result.solved, "train_error": result.train_error, "mse": result.mse,
        "train_accuracy": result.train_accuracy, "test_accuracy": result.test_accuracy,
        "validation_accuracy": (1 - result.validation_error) if result.validation_error is not None else None,
        "sparsity": result.sparsity, "diverged": result.diverged, "seconds": result.seconds,
        "failed_seeds": _failed_seeds(result), "unsettled_presentations": unsettled,
        "train_error_from_unsettled_states": [bool(u) for u in unsettled],
        "models": paths, "tuning": getattr(args, "tuning", None),
        **({"ode_reevaluation": ode_check} if ode_check is not None else {}),
    })


def _failed_seeds(result) -> dict:
    """Seeds that diverged or whose simulation failed: ``{seed: {reason, netlist}}`` for the JSON."""
    import re

    out = {}
    for seed, msg in zip(result.seeds, result.diverged):
        if msg:
            m = re.search(r"netlist is saved in (\S+?\.cir)", msg)
            when = re.match(r"(?:(\w+) phase diverged|weights diverged) in (?:the update of )?epoch (\d+)", msg)
            out[str(seed)] = {"epoch": int(when.group(2)) if when else None,
                              "phase": (when.group(1) or "update") if when else None,
                              "reason": msg, "netlist": m.group(1) if m else None}
    return out
