"""One training run from its settings: what ``deepcircuit train`` and every run of a sweep do.

The settings are the ``train`` options by destination name (``task``, ``hidden`` as text
``"5,3"``, ``epochs``, ``substrate``, ...; :mod:`.run_options` lists them), given as the
command line's argparse namespace or as a mapping (a sweep's run: its parameters). A run goes
through three steps, so the command line can print ``--print-config`` after the first and hand
``--tune`` to the tuner after the second:

* :func:`plan_run`: every setting checked, ``--config`` / ``--config-from`` / ``--init`` read,
  the data set resolved, the :class:`TrainingConfig`, shape and seeds chosen (a :class:`RunPlan`);
* :func:`build_run`: the state-size and circuit checks, the substrate built from its options,
  the per-epoch callbacks;
* :func:`train_run`: :func:`deepcircuit.learning.training.train`, its warnings recorded.

:func:`run_training` does all three (the sweep's call); :func:`save_models` writes the model
files ``deepcircuit train`` writes. Messages name the command-line options (``--topology``,
``--seeds``): a sweep's axes carry the same names.
"""

from __future__ import annotations

import argparse
import functools
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import option_checks as checks
from .run_options import SPICE_EVAL_SAMPLES, train_parser

#: Options that choose the data set split; with --init it is the model file's.
_SPLIT_OPTIONS = {"test_fraction": "--test-fraction", "validation_fraction": "--validation-fraction",
                  "split_seed": "--split-seed", "readout": "--readout", "target": "--target"}


@dataclass
class RunPlan:
    """A training run resolved from its settings and checked, before any work (:func:`plan_run`).

    ``args`` holds the settings after ``--config``, ``--config-from`` and ``--init`` filled them
    in; ``model`` is the family, ``config`` the :class:`TrainingConfig`, ``hidden`` the layer
    sizes, ``topology`` a name, an edge list or None (the model file's, with ``--init``),
    ``params`` the family's parameters (``gamma``) or None, ``seeds`` one per network, ``start``
    the ``--init`` start (:func:`deepcircuit.learning.fine_tune.start_from`) or None, ``spiking``
    the brian2-spiking substrate's options (validated ones, then the user's) or None.
    ``substrate`` is a substrate instance given by the caller (a sweep's configured chip) or
    None; :func:`build_run` replaces it by what ``train`` gets (a spec or an instance) and sets
    ``owned`` when it built that instance (then :func:`train_run` closes it).
    """

    args: argparse.Namespace
    dataset: Any
    model: str
    config: Any
    hidden: tuple
    topology: Any
    params: "dict | None"
    seeds: list
    start: Any = None
    spiking: "dict | None" = None
    substrate: Any = None
    callbacks: list = field(default_factory=list)
    owned: bool = False


@functools.lru_cache(maxsize=1)
def _defaults() -> tuple:
    """``(option, default)`` of every ``train`` option, read once from the options' table."""
    return tuple((a.dest, a.default) for a in train_parser()._actions if a.dest != argparse.SUPPRESS)


def settings_namespace(settings: "Mapping[str, Any] | argparse.Namespace") -> argparse.Namespace:
    """The settings as an argparse namespace: a namespace as is (updated in place by
    :func:`plan_run`), a mapping laid over the ``train`` defaults (options left out take their
    default; an ``explicit_options`` entry names the options given, which override ``--config``)."""
    if isinstance(settings, argparse.Namespace):
        return settings
    return argparse.Namespace(**{**dict(_defaults()), **settings})


def plan_run(settings: "Mapping[str, Any] | argparse.Namespace", *, substrate=None) -> RunPlan:
    """Settings to a checked :class:`RunPlan`: data set, family, TrainingConfig, shape, seeds.

    Every setting is checked before any work starts (one :class:`InvalidInputError` naming the
    option). ``substrate``, a substrate instance (as a sweep builds for ``spice:mismatch=...``),
    stands in for the ``substrate`` setting's options.
    """
    from ..data.defaults import DataShape, dataset_defaults, default_model
    from ..learning.config import TrainingConfig

    args = settings_namespace(settings)
    file_settings = _config_files(args)
    start = _fine_tune_start(args)
    if start is not None:  # --init: the files' networks, data set split and saved settings
        dataset, args.model, config = start.dataset, start.family, start.training_config()
    else:
        dataset = dataset_from_args(args)
        if args.model is None:  # the data set's family (deep)
            args.model = default_model(dataset.name, source=dataset.source)
        config = TrainingConfig.for_task(dataset, model=args.model, preset=args.preset)
    overrides = _overrides(args, substrate)
    spiking = _spiking_defaults(args, overrides, file_settings)
    # Every argument is checked before any work starts or any folder is created.
    _check_counts(args)
    config = config.replace(**file_settings).replace(**overrides)
    if start is not None:
        hidden, topology, params, seeds = tuple(start.networks[0].roles.hidden), None, None, list(start.seeds)
    else:
        defaults = dataset_defaults(dataset.name, args.model, source=dataset.source, shape=DataShape.of(dataset))
        hidden = checks.hidden(args.hidden) if args.hidden is not None else tuple(defaults.hidden)
        topology = _topology(args.topology) if args.topology is not None else defaults.topology
        params = {"gamma": args.gamma} if args.gamma is not None else (dict(defaults.params) or None)
        seeds = list(range(args.seed, args.seed + args.seeds))
    return RunPlan(args, dataset, args.model, config, hidden, topology, params, seeds, start=start,
                   spiking=spiking, substrate=substrate)


def _overrides(args, substrate) -> dict:
    """The TrainingConfig settings the options give (those not given are left out)."""
    overrides = {k: v for k, v in {
        "epochs": args.epochs, "eta": args.eta, "beta": args.beta, "dt": args.dt,
        "free_steps": args.free_steps, "nudged_steps": args.nudged_steps, "l1": args.l1,
        "prune_tol": args.prune_tol, "batch_size": args.batch_size,
        "early_stopping": args.early_stopping, "settle_tol": args.settle_tol,
        "rule": args.rule, "stop_when_solved": args.stop_when_solved,
        "eval_samples": getattr(args, "eval_samples", None)}.items() if v is not None}
    if "eval_samples" not in overrides and "spice" in (str(args.substrate).partition(":")[0],
                                                       getattr(substrate, "name", None)):
        overrides["eval_samples"] = SPICE_EVAL_SAMPLES
    if args.prune:
        overrides["prune"] = args.prune
    if args.sign:
        overrides["sign"] = True
    if args.learn_sink:
        overrides["learn_sink"] = True
    if args.freeze:
        overrides["freeze"] = tuple(g.strip() for g in args.freeze.split(",") if g.strip())
    return overrides


def _check_counts(args) -> None:
    """The counts and seeds of the options, against their limits (deepcircuit.limits)."""
    checks.count("--epochs", args.epochs, low=None, limit="MAX_EPOCHS")
    checks.count("--eval-samples", getattr(args, "eval_samples", None), low=1)
    checks.count("--workers", getattr(args, "workers", None), low=1)
    checks.count("--seeds", args.seeds, low=1, limit="MAX_SEEDS")
    checks.seed("--seed", args.seed)
    checks.seed("--seed + --seeds", args.seed + args.seeds - 1)
    checks.count("--free-steps", args.free_steps, low=1, limit="MAX_PHASE_STEPS")
    checks.count("--nudged-steps", args.nudged_steps, low=1, limit="MAX_PHASE_STEPS")


def build_run(plan: RunPlan, *, run_state=None) -> RunPlan:
    """The last checks (state size, a circuit's beta), the substrate and the callbacks; returns ``plan``.

    ``run_state`` (an object with a ``stage`` text, as the command line's) is told the epoch
    under way, for what Ctrl-C reports.
    """
    from ..learning.steps import epoch_observer
    from ..stability.lyapunov import certificate_recorder

    args, config, dataset = plan.args, plan.config, plan.dataset
    # The largest state array of one substrate call: a minibatch (evaluations run in chunks).
    per_call = dataset.train.subset(slice(0, config.batch_size or dataset.train.n_presentations))
    checks.state_size(per_call, plan.hidden, len(plan.seeds), config.free_steps, config.nudged_steps)
    if args.substrate == "spice":
        checks.beta_for_circuit(config.beta)
        if args.gamma is not None:
            checks.beta_for_circuit(args.gamma, "--gamma")
    given_substrate = substrate = plan.substrate
    if substrate is None:  # the --substrate spec (name and options)
        substrate = getattr(args, "substrate_spec", None) or args.substrate
    if plan.spiking is not None and substrate == "brian2-spiking":  # no options in the spec: validated ones
        from ..substrates import get_substrate

        substrate = get_substrate(substrate, **plan.spiking)
    if args.brian2_target is not None:
        from ..errors import InvalidInputError
        from ..substrates import get_substrate

        if not args.substrate.startswith("brian2"):
            raise InvalidInputError(
                f"--brian2-target only applies to the brian2 substrates; got --substrate {args.substrate}.")
        if isinstance(substrate, str):
            substrate = get_substrate(substrate, target=args.brian2_target)
    if isinstance(substrate, str):  # a substrate object (from the sweep) already has its options
        substrate = _circuit_substrate(args, substrate)
    plan.substrate = substrate
    plan.owned = not isinstance(substrate, str) and substrate is not given_substrate
    plan.callbacks = [certificate_recorder()] if args.record_certificates else []
    if run_state is not None:  # what Ctrl-C reports: the epoch under way
        run_state.stage = f"in epoch 1 of {config.epochs}" if config.epochs else "in the final evaluation"

        @epoch_observer  # reads the epoch only: leaves the compiled whole-training program usable
        def where(epoch, batch, result):
            run_state.stage = (f"in epoch {epoch + 2} of {config.epochs}" if epoch + 1 < config.epochs
                               else "in the final evaluation")
        plan.callbacks.append(where)
    return plan


def train_run(plan: RunPlan, *, progress: bool = False):
    """Train a built plan; returns ``(result, caught)``: the :class:`TrainingResult` and the
    warnings raised while training (``warnings.catch_warnings(record=True)`` records). A
    substrate :func:`build_run` made is closed afterwards (its worker processes stop), also on
    Ctrl-C."""
    from ..learning.training import train

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = train(plan.dataset, model=plan.model, topology=plan.topology, hidden=plan.hidden,
                           seeds=plan.seeds, config=plan.config, substrate=plan.substrate, params=plan.params,
                           progress=progress, on_divergence="report", callbacks=plan.callbacks,
                           init=plan.start.models if plan.start is not None else None)
    finally:
        if plan.owned:  # made here: stop its worker processes (also on Ctrl-C)
            plan.substrate.close()
    return result, list(caught)


def run_training(settings: "Mapping[str, Any] | argparse.Namespace", *, substrate=None, progress: bool = False):
    """Plan, build and train one run (a sweep's run); returns ``(result, config, warnings)``,
    ``warnings`` as :func:`warning_lines`."""
    plan = build_run(plan_run(settings, substrate=substrate))
    result, caught = train_run(plan, progress=progress)
    return result, plan.config, warning_lines(caught)


def warning_lines(caught) -> list:
    """Recorded warnings as lines, each distinct message once in order of first appearance, its
    count appended when it came more than once (``(3 times)``)."""
    from collections import Counter

    counts = Counter(" ".join(str(w.message).split()) for w in caught)
    return [text + (f" ({n} times)" if n > 1 else "") for text, n in counts.items()]  # a Counter keeps order


def unsettled_presentations(result) -> list:
    """Per seed, the presentations whose outputs had not settled at the end of the final
    evaluation's free phase (the outputs are read there)."""
    import numpy as np

    fs = result.final_settled if result.final_settled is not None else np.ones((len(result.seeds), 1), bool)
    return [np.flatnonzero(~fs[k]).tolist() for k in range(len(result.seeds))]


def save_models(result, config, out: Path, *, tuning=None, run_state=None, substrate=None) -> list:
    """Save each seed's model file ``out/seed<K>.json`` (atomically) with its metrics, history and
    data set, and the chip when ``substrate`` (the one trained on) has a non-ideal one; returns
    the paths. ``run_state`` (``stage`` text, ``written`` list) follows along."""
    from ..learning.model_file import ModelFile, save_model
    from ..substrates.spec import substrate_chip

    ds = result.dataset
    chip = substrate_chip(substrate) if substrate is not None else None
    chip = chip.describe() if chip is not None else None
    unsettled = unsettled_presentations(result)
    paths = []
    for k, seed in enumerate(result.seeds):
        metrics = {"train_error": float(result.train_error[k]), "mse": float(result.mse[k]),
                   "diverged": result.diverged[k], "unsettled_presentations": unsettled[k],
                   "train_accuracy": float(result.train_accuracy[k]),
                   "test_accuracy": float(result.test_accuracy[k])}
        if result.validation_error is not None:
            metrics["validation_accuracy"] = float(1 - result.validation_error[k])
        model = ModelFile(result.networks[k], seed=seed, task=result.task.name, substrate=result.substrate,
                          config=config.to_dict(), history=result.histories[k].to_dict(),
                          metrics=metrics, dataset=None if ds.source == "logic" else ds.to_dict(),
                          tuning=tuning, chip=chip)
        if run_state is not None:
            run_state.stage = f"while saving the model files ({k} of {len(result.seeds)} saved)"
        paths.append(str(save_model(out / f"seed{seed}.json", model)))
        if run_state is not None:
            run_state.written.append(paths[-1])
    return paths


def _config_files(args) -> dict:
    """Apply --config-from, then --config: their command keys become ``args`` values unless the
    option was given; returns their TrainingConfig settings (options given override those later)."""
    from ..learning.config_file import model_settings, read_config, split_settings
    from ..learning.model_file import load_model

    settings = {}
    if getattr(args, "config_from", None):
        settings.update(model_settings(load_model(args.config_from)))
    if getattr(args, "config", None):
        settings.update(read_config(args.config))
    training, command = split_settings(settings)
    given = getattr(args, "explicit_options", frozenset())
    if {"task", "data"} & given:  # the command line names what to train on
        drop = ("task", "data") + (("target", "test") if "task" in given else ())  # a file's options
        for key in drop:
            command.pop(key, None)
    for key, value in command.items():
        if key not in given:
            setattr(args, key, ",".join(map(str, value)) if key == "hidden" and value is not None else value)
    return training


def printed_settings(plan: RunPlan) -> dict:
    """What --print-config prints: every setting of the run, as config keys."""
    args, dataset, hidden, params = plan.args, plan.dataset, plan.hidden, plan.params
    settings = plan.config.to_dict()
    settings.update(
        task=args.task if dataset.source != "file" else None, data=getattr(args, "data", None),
        target=args.target, test=args.test, test_fraction=args.test_fraction,
        validation_fraction=args.validation_fraction, split_seed=args.split_seed, readout=args.readout,
        model=args.model, topology=args.topology if args.topology is not None else _default_topology(dataset, args),
        hidden=tuple(hidden), gamma=(params or {}).get("gamma"), preset=args.preset,
        substrate=args.substrate, seeds=args.seeds, seed=args.seed)
    if settings["task"] is None and settings["data"] is None:
        settings["task"] = dataset.name
    if args.substrate == "brian2-spiking":
        from ..substrates.brian2_spiking import VALIDATED_TRAINING_OPTIONS as spiking

        settings.update({key: getattr(args, key, None) if getattr(args, key, None) is not None else spiking[name]
                         for key, name in (("spike_rate", "max_rate"), ("spike_substeps", "substeps"),
                                           ("stdp_window", "stdp_window"))})
    return settings


def _default_topology(dataset, args):
    from ..data.defaults import DataShape, dataset_defaults

    topology = dataset_defaults(dataset.name, args.model, source=dataset.source, shape=DataShape.of(dataset)).topology
    return topology if isinstance(topology, str) else None


def _topology(arg: str):
    """``--topology``: a named topology, or an edge-list file parsed strictly (UTF-8 text, two
    neuron names or ASCII indices per line, '#' comments, at least one edge)."""
    from ..errors import InvalidInputError
    from ..limits import MAX_EDGE_FILE_BYTES

    from ..model.topology import TOPOLOGIES

    if arg in TOPOLOGIES:
        return arg
    path = Path(arg)
    if not arg or not path.is_file():
        raise InvalidInputError(
            f"--topology must be one of {', '.join(map(repr, TOPOLOGIES))} or an existing edge-list "
            f"file; got {arg!r}.")
    if path.stat().st_size > MAX_EDGE_FILE_BYTES:
        raise InvalidInputError(
            f"--topology file {arg!r} is {path.stat().st_size} bytes, above the limit MAX_EDGE_FILE_BYTES = "
            f"{MAX_EDGE_FILE_BYTES} (deepcircuit.limits).")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"--topology file {arg!r}: byte {exc.start} is not UTF-8 text; an edge file is text, "
            "'i j' per line.") from None
    edges, seen = [], {}
    # Lines end at '\n' only (as in an editor), not at the Unicode separators str.splitlines knows.
    for n, line in enumerate(text.split("\n"), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        if len(parts) != 2:
            raise InvalidInputError(
                f"{arg!r} line {n}: an edge line is two neurons 'i j' (indices or names like x0, bias, h0, "
                f"y0); got {len(parts)} item(s): {line!r}.")
        edge = []
        for p in parts:
            if re.fullmatch(r"-?[0-9]+", p):  # ASCII digits only: '²' is a digit to str.isdigit
                if len(p) > 9:
                    raise InvalidInputError(f"{arg!r} line {n}: neuron index {p[:20]!r}... is far too large.")
                edge.append(int(p))
            elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,31}", p):
                edge.append(p)
            else:
                raise InvalidInputError(
                    f"{arg!r} line {n}: {p!r} is not a neuron; use an index (ASCII digits) or a name like "
                    "x0, bias, h0, y0.")
        edge = tuple(edge)
        if edge in seen:
            raise InvalidInputError(f"{arg!r} line {n} repeats the edge {edge[0]} {edge[1]} of line {seen[edge]}.")
        seen[edge] = n
        edges.append(edge)
    if not edges:
        raise InvalidInputError(f"--topology file {arg!r} has no edges (only blank or comment lines).")
    return edges


def _circuit_substrate(args, substrate):
    """The SPICE substrate with the --transconductor / --clamp the user asked for (else unchanged)."""
    from ..errors import InvalidInputError
    from ..substrates import get_substrate
    from .hardware_options import transconductor_from_args

    ota = transconductor_from_args(args)
    runner = getattr(args, "workers", None) is not None or getattr(args, "scheduler", None) is not None
    if runner and str(substrate).partition(":")[0] != "spice":
        raise InvalidInputError(f"--workers and --scheduler apply to --substrate spice (its presentations run on "
                                f"Dask workers); got --substrate {substrate}.")
    if ota is None and args.clamp is None and not runner:
        return substrate
    if str(substrate).partition(":")[0] != "spice":
        raise InvalidInputError(f"--transconductor, --ota-* and --clamp apply to --substrate spice; got "
                                f"--substrate {substrate if isinstance(substrate, str) else substrate.name}.")
    runner = {k: v for k, v in {"workers": getattr(args, "workers", None),
                                 "scheduler": getattr(args, "scheduler", None)}.items() if v is not None}
    options = {k: v for k, v in {"transconductor": ota, "clamp": args.clamp}.items() if v is not None}
    return get_substrate(substrate, **options, **runner)



def _fine_tune_start(args):
    """``--init FILE ...``: the checked start of a fine-tune
    (:func:`deepcircuit.learning.fine_tune.start_from`), or None without --init."""
    from ..errors import InvalidInputError
    from ..learning.fine_tune import start_from

    files = getattr(args, "init", None)
    if not files:
        return None
    given = getattr(args, "explicit_options", frozenset())
    bad = [opt for dest, opt in _SPLIT_OPTIONS.items() if dest in given]
    if bad:
        raise InvalidInputError(f"--init continues on the model file's data set split and scaler; "
                                f"{', '.join(bad)} would change them (drop {'it' if len(bad) == 1 else 'them'}).")
    if "preset" in given:
        raise InvalidInputError("--init starts from the model file's saved settings; --preset would replace "
                                "them all (override single settings instead: --epochs, --eta, ...).")
    if args.gamma is not None:
        raise InvalidInputError("--init keeps the network's own parameters; --gamma would change the model "
                                "(drop --gamma).")
    n = len(files)
    if "seeds" in given and args.seeds != n:
        raise InvalidInputError(f"--init gives one network per model file ({n} file(s)); --seeds {args.seeds} "
                                "does not match (drop --seeds, or give one file per seed).")
    seeds = list(range(args.seed, args.seed + n)) if "seed" in given else None
    args.seeds = n
    if seeds is not None:
        args.seed = seeds[0]
    return start_from(files, args.task if getattr(args, "data", None) is None else None, model=args.model,
                      topology=args.topology, hidden=args.hidden, seeds=seeds,
                      data=getattr(args, "data", None), test=args.test)


def _spiking_defaults(args, overrides: dict, file_settings: "dict | None" = None) -> "dict | None":
    """On brian2-spiking: fill ``overrides`` with the validated training settings the user did not
    give (on the command line or in a --config file), and return the substrate's options (validated
    ones, then the user's); else None, after refusing spike options given for another substrate."""
    from .._validation import check_int, check_real
    from ..errors import InvalidInputError

    if "stop_when_solved" in overrides:  # 0: no per-seed stop (brian2-spiking's default turned off)
        check_int("--stop-when-solved", overrides["stop_when_solved"], low=0)
        overrides["stop_when_solved"] = overrides["stop_when_solved"] or None
    given = {k: v for k, v in {"max_rate": getattr(args, "spike_rate", None),
                               "substeps": getattr(args, "spike_substeps", None),
                               "stdp_window": getattr(args, "stdp_window", None),
                               "target": getattr(args, "brian2_target", None)}.items()
             if v is not None}
    if args.substrate != "brian2-spiking":
        if set(given) - {"target"}:
            raise InvalidInputError("--spike-rate, --spike-substeps and --stdp-window apply to --substrate "
                                    f"brian2-spiking; got --substrate {args.substrate}.")
        return None
    from ..substrates.brian2_spiking import VALIDATED_TRAINING_CONFIG, VALIDATED_TRAINING_OPTIONS

    if "max_rate" in given:
        check_real("--spike-rate", given["max_rate"], low=0.0, low_open=True)
    if "substeps" in given:
        check_int("--spike-substeps", given["substeps"], low=1)
    if "stdp_window" in given:
        check_real("--stdp-window", given["stdp_window"], low=0.0, low_open=True)
    for key, value in VALIDATED_TRAINING_CONFIG.items():
        if key not in (file_settings or {}):
            overrides.setdefault(key, value)
    return {**VALIDATED_TRAINING_OPTIONS, **given}


def dataset_from_args(args):
    """The task resolved once from --task / --data and the split options (a Dataset)."""
    from ..data.split import load_dataset
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

