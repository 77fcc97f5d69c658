"""``deepcircuit train``: train one network per seed, save each, print a summary."""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path

from .output import format_table, print_json_line, print_warnings, shown_path


def add_parser(sub) -> argparse.ArgumentParser:
    from ..model.families import FAMILIES
    from ..substrates import available_substrates
    from ..studies.option_checks import SubstrateSpecAction
    from ..data.builtin import BUILTIN_DATASETS
    from ..data.tasks import TASKS
    from ..learning.training import PRESETS, PRUNE_METHODS
    from ..substrates.clamps import CLAMP_KINDS
    from ..studies.hardware_options import add_transconductor_arguments
    from .tune_options import add_tune_arguments
    from ..learning.steps import FREEZE_GROUPS

    p = sub.add_parser(
        "train", help="train networks on a task or data set (one per seed) and save them",
        description="Train one network per seed on a logic task, a built-in data set or a data file, "
                    "and save each as a model file under --out (seed<K>.json). Seeds are SEED .. "
                    "SEED+SEEDS-1 and run as one batch. Data sets are split (stratified, --split-seed) "
                    "and scaled to [0, 1] by a scaler fitted on the training split; every accuracy "
                    "printed names its split.")
    p.add_argument("--task", default=None,
                   help=f"logic task ({', '.join(TASKS)}) or built-in data set "
                        f"({', '.join(BUILTIN_DATASETS)}, or a benchmark suite member suite:NAME, e.g. "
                        "suite:wine, suite:digits28: deepcircuit/data/suite.py); default: xor. Data sets "
                        "train deep with a default derived from their shape (docs/data.md)")
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
    p.add_argument("--model", default=None, choices=list(FAMILIES),
                   help="model family (default: the data set's: deep)")
    p.add_argument("--topology", default=None,
                   help="'complete', 'layered', either with '+sink' (one more hidden neuron, the sink, "
                        "that drains a learned leak from every free neuron: docs/data.md), or a file of "
                        "edges 'i j' per line (indices or names x0, bias, h0, y0); default: the data "
                        "set's (complete for logic tasks, layered+sink for digits)")
    p.add_argument("--hidden", default=None,
                   help="hidden layer sizes, e.g. 5 or 5,3 (default: the data set's; 5 for logic tasks)")
    p.add_argument("--epochs", type=int, default=None,
                   help="number of epochs (default: the data set's; the preset's 200 for logic tasks)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="presentations per minibatch (default: the data set's; logic tasks: all)")
    p.add_argument("--freeze", default=None, metavar="GROUPS",
                   help=f"comma-separated connection groups kept at their initial weights: {', '.join(FREEZE_GROUPS)}")
    p.add_argument("--learn-sink", action="store_true",
                   help="with a '+sink' topology, let the rule learn the connections into the sink "
                        "(the leaks); by default they stay at their initial weight")
    p.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                   help="stop a seed after PATIENCE epochs without a better validation accuracy and "
                        "keep its best weights (needs --validation-fraction)")
    p.add_argument("--stop-when-solved", type=int, default=None, metavar="EPOCHS",
                   help="stop updating a seed once its train error, measured on the substrate's own "
                        "free phases, has been 0 for EPOCHS epochs in a row (for noisy substrates: "
                        "brian2-spiking, where it defaults to 3; 0 = no stop)")
    p.add_argument("--settle-tol", type=float, default=None,
                   help="equilibrium tolerance on max |ds/dt| (1/tau); phases of data sets stop there")
    p.add_argument("--seeds", type=int, default=1,
                   help="number of seeds / networks (default: 1; with --init: one per model file)")
    p.add_argument("--seed", type=int, default=0,
                   help="first seed (default: 0; with --init: the model files' own seeds, or K, K+1, ... "
                        "when given; a seed draws the initial states, the weights are the file's)")
    p.add_argument("--init", nargs="+", default=None, metavar="MODEL.json",
                   help="fine-tune: continue the networks of these model files (one network per file, "
                        "trained as one batch) with their family, topology, masks, weights and the data "
                        "set split and scaler they were trained with; the settings default to the file's "
                        "saved ones, overridden by the options given (e.g. --epochs 1 --substrate spice). "
                        "A task, family or shape that does not fit the file is refused")
    p.add_argument("--out", default="runs/train", help="folder for the model files (default: runs/train)")
    p.add_argument("--preset", default="default", choices=list(PRESETS),
                   help="'default' (project settings) or 'paper' (the reference notebooks exactly)")
    p.add_argument("--substrate", default="ode", metavar="SPEC", action=SubstrateSpecAction,
                   help=f"where the phases run: a substrate ({', '.join(available_substrates())}) with options "
                        "NAME:opt=v;opt=v, e.g. 'spice:mismatch=0.3;seed=1;clamp=limiter' or 'ode:mismatch=0.3;seed=1' "
                        "(the same chip on the ODE) (default: ode)")
    p.add_argument("--brian2-target", choices=["cpp_standalone", "numpy", "cython"], default=None,
                   help="Brian2 target for the brian2 substrates (default: cpp_standalone where a C++ "
                        "compiler is present, else numpy; cpp_standalone builds one compiled program "
                        "once, cached under ~/.cache/deepcircuit/brian2; cython compiles once too)")
    p.add_argument("--spike-rate", type=float, default=None, metavar="HZ",
                   help="brian2-spiking: firing rate at state 1 (default 10000). On brian2-spiking, train "
                        "defaults to the settings that learned XOR from spikes (docs/brian2.md): this rate, "
                        "--spike-substeps 20, --stdp-window 10, --free-steps 500, --nudged-steps 300, "
                        "--stop-when-solved 3, compiled target; any of them can be overridden")
    p.add_argument("--spike-substeps", type=int, default=None, metavar="K",
                   help="brian2-spiking: Brian2 steps per Euler step dt (default 20)")
    p.add_argument("--stdp-window", type=float, default=None, metavar="TAU",
                   help="brian2-spiking: learning window at the start of the nudged phase, in tau (default 10)")
    add_transconductor_arguments(p)
    add_tune_arguments(p)
    p.add_argument("--clamp", default=None, choices=list(CLAMP_KINDS),
                   help="clamp of the SPICE circuit: diode (default), limiter or precision (op-amp clamp)")
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
    p.add_argument("--rule", default=None, choices=["stdp", "stdp2", "stdp2-mirror", "endpoint", "contrastive"],
                   help="learning rule (default: the family's own; stdp2 = DEEP's rule with both "
                        "endpoints' changes; stdp2-mirror = stdp2 with backward synapses taking their forward "
                        "twin's update; see docs/gradient.md)")
    p.add_argument("--workers", type=int, default=None,
                   help="with --substrate spice: run the presentations of each minibatch and evaluation "
                        "on this many Dask worker processes of a local cluster (default: 1, in this process); "
                        "see docs/spice.md, 'The in-loop runner'")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                   help="with --substrate spice: run the presentations on an existing Dask cluster "
                        "(started with `dask scheduler` and `dask worker`) instead")
    p.add_argument("--eval-samples", type=int, default=None, metavar="N",
                   help="evaluate the held-out splits of each epoch on the same N presentations (drawn "
                        "once); the last epoch and the final figures use the whole splits (default: "
                        f"{SPICE_EVAL_SAMPLES} on --substrate spice, all presentations elsewhere)")
    p.add_argument("--record-certificates", action="store_true",
                   help="record stability certificates every epoch in each model's history "
                        "(Gershgorin margins, spectral abscissa, equilibrium reached)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--config", default=None, metavar="FILE.toml",
                   help="settings from a flat TOML file: every TrainingConfig field and the keys of the "
                        "options above (model, topology, hidden, task, ...; docs/config.md); options given "
                        "here override it")
    p.add_argument("--config-from", default=None, metavar="MODEL.json",
                   help="reuse a trained model's settings (training settings, family, topology, hidden, split); "
                        "--config and options given here override them")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved settings as TOML that --config accepts, and exit without training")
    _record_explicit_options(p)
    return p


class _Unset(list):
    """The marker of an option not given: a list, so that ``action="append"`` options (which
    copy and extend what is there) work on it too; given, an option replaces or copies it."""


_UNSET = _Unset()


def _record_explicit_options(p) -> None:
    """After parsing, ``args.explicit_options`` names the options given on the command line (so
    that they override --config), found by parsing again into a namespace pre-filled with a
    marker that argparse's defaults do not overwrite."""
    parse = p.parse_known_args

    def parse_known_args(args=None, namespace=None):
        ns, rest = parse(args, namespace)
        probe, _ = parse(args, argparse.Namespace(**{k: _UNSET for k in vars(ns)}))
        ns.explicit_options = frozenset(k for k, v in vars(probe).items() if v is not _UNSET)
        return ns, rest

    p.parse_known_args = parse_known_args


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


def _printed_settings(args, dataset, config, hidden, params) -> dict:
    """What --print-config prints: every setting of the run, as config keys."""
    settings = config.to_dict()
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
    from ..studies.hardware_options import transconductor_from_args

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


#: --eval-samples on SPICE when not given: a held-out sample every epoch, the whole split at the
#: end (a digits presentation costs ~0.3 s free phase only in ngspice; docs/spice.md).
SPICE_EVAL_SAMPLES = 100

#: Options that choose the data set split; with --init it is the model file's.
_SPLIT_OPTIONS = {"test_fraction": "--test-fraction", "validation_fraction": "--validation-fraction",
                  "split_seed": "--split-seed", "readout": "--readout", "target": "--target"}


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


def train_from_args(args, out: "Path | None" = None, *, substrate=None):
    """Parsed ``train`` arguments to a finished training: returns ``(result, config)``.

    The one place that turns options into a :func:`deepcircuit.train` call (``sweep`` reuses it).
    Every argument is checked before any work starts; ``out``, if given, is the checked output
    folder. ``substrate`` (a substrate instance, as ``sweep`` builds for ``spice:mismatch=...``)
    replaces ``args.substrate`` when given. Warnings raised during training are printed to
    stderr, one line each.
    """
    from ..data.defaults import DataShape, dataset_defaults, default_model
    from ..stability.lyapunov import certificate_recorder
    from ..learning.steps import epoch_observer
    from ..learning.training import TrainingConfig, train
    from ..studies import option_checks as checks

    file_settings = _config_files(args)
    start = _fine_tune_start(args)
    if start is not None:  # --init: the files' networks, data set split and saved settings
        dataset, args.model, config = start.dataset, start.family, start.training_config()
    else:
        dataset = dataset_from_args(args)
        if args.model is None:  # the data set's family (deep)
            args.model = default_model(dataset.name, source=dataset.source)
        config = TrainingConfig.for_task(dataset, model=args.model, preset=args.preset)
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
    spiking = _spiking_defaults(args, overrides, file_settings)
    if args.prune:
        overrides["prune"] = args.prune
    if args.sign:
        overrides["sign"] = True
    if args.learn_sink:
        overrides["learn_sink"] = True
    if args.freeze:
        overrides["freeze"] = tuple(g.strip() for g in args.freeze.split(",") if g.strip())
    # Every argument is checked before any work starts or any folder is created.
    checks.count("--epochs", args.epochs, low=None, limit="MAX_EPOCHS")
    checks.count("--eval-samples", getattr(args, "eval_samples", None), low=1)
    checks.count("--workers", getattr(args, "workers", None), low=1)
    checks.count("--seeds", args.seeds, low=1, limit="MAX_SEEDS")
    checks.seed("--seed", args.seed)
    checks.seed("--seed + --seeds", args.seed + args.seeds - 1)
    checks.count("--free-steps", args.free_steps, low=1, limit="MAX_PHASE_STEPS")
    checks.count("--nudged-steps", args.nudged_steps, low=1, limit="MAX_PHASE_STEPS")
    config = config.replace(**file_settings).replace(**overrides)
    if start is not None:
        hidden, topology, params, seeds = tuple(start.networks[0].roles.hidden), None, None, list(start.seeds)
    else:
        defaults = dataset_defaults(dataset.name, args.model, source=dataset.source, shape=DataShape.of(dataset))
        hidden = checks.hidden(args.hidden) if args.hidden is not None else tuple(defaults.hidden)
        topology = _topology(args.topology) if args.topology is not None else defaults.topology
        params = {"gamma": args.gamma} if args.gamma is not None else (dict(defaults.params) or None)
        seeds = list(range(args.seed, args.seed + args.seeds))
    if getattr(args, "print_config", False):
        from ..learning.config_file import to_toml

        print(to_toml(_printed_settings(args, dataset, config, hidden, params),
                      comment="deepcircuit train settings; use with: deepcircuit train --config FILE.toml"), end="")
        return None, config
    # The largest state array of one substrate call: a minibatch (evaluations run in chunks).
    per_call = dataset.train.subset(slice(0, config.batch_size or dataset.train.n_presentations))
    checks.state_size(per_call, hidden, len(seeds), config.free_steps, config.nudged_steps)
    if args.substrate == "spice":
        checks.beta_for_circuit(config.beta)
        if args.gamma is not None:
            checks.beta_for_circuit(args.gamma, "--gamma")
    given_substrate = substrate
    if substrate is None:  # the --substrate spec (name and options)
        substrate = getattr(args, "substrate_spec", None) or args.substrate
    if spiking is not None and substrate == "brian2-spiking":  # no options in the spec: validated ones
        from ..substrates import get_substrate

        substrate = get_substrate(substrate, **spiking)
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
    state = getattr(args, "run_state", None)
    callbacks = [certificate_recorder()] if args.record_certificates else []
    if state is not None:  # what Ctrl-C reports: the epoch under way
        state.stage = f"in epoch 1 of {config.epochs}" if config.epochs else "in the final evaluation"

        @epoch_observer  # reads the epoch only: leaves the compiled whole-training program usable
        def where(epoch, batch, result):
            state.stage = (f"in epoch {epoch + 2} of {config.epochs}" if epoch + 1 < config.epochs
                           else "in the final evaluation")
        callbacks.append(where)
    from .tune_options import tune_from_args, wants_tuning

    if wants_tuning(args):  # train --tune: the grid, then the choice retrained (studies/tune.py)
        return tune_from_args(args, out, dataset, model=args.model, topology=topology, hidden=hidden, seeds=seeds,
                              config=config, substrate=substrate, params=params, callbacks=callbacks)
    if out is None:
        out = checks.output_folder("--out", args.out)
    ours = substrate if not isinstance(substrate, str) and substrate is not given_substrate else None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = train(dataset, model=args.model, topology=topology, hidden=hidden, seeds=seeds,
                           config=config, substrate=substrate, params=params, progress=not args.quiet,
                           on_divergence="report", callbacks=callbacks,
                           init=start.models if start is not None else None)
    finally:
        if ours is not None:  # made here: stop its worker processes (also on Ctrl-C)
            ours.close()
    print_warnings(caught)
    return result, config


def run(args) -> int:
    import numpy as np

    from ..learning.model_file import ModelFile, save_model
    from ..studies import option_checks as checks

    # Fail before training, not after it, if the models cannot be saved there; the folder itself
    # is created by the first save.
    out = checks.output_folder("--out", args.out)
    result, config = train_from_args(args, out)
    if result is None:  # --print-config
        return 0
    state = getattr(args, "run_state", None)
    ds = result.dataset
    logic = ds.test_is_train
    # The final evaluation reads outputs at the end of the free phase: mark those that had not settled.
    fs = result.final_settled if result.final_settled is not None else np.ones((len(result.seeds), 1), bool)
    unsettled = [np.flatnonzero(~fs[k]).tolist() for k in range(len(result.seeds))]
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
                          tuning=getattr(args, "tuning", None))
        if state is not None:
            state.stage = f"while saving the model files ({k} of {len(result.seeds)} saved)"
        paths.append(str(save_model(out / f"seed{seed}.json", model)))
        if state is not None:
            state.written.append(paths[-1])

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
    ode_check = None
    if result.substrate == "brian2-spiking":
        # Trained as spikes: the same networks as rate models (ODE, 50 tau, fresh initial states).
        from ..learning.training import evaluate

        _, ode_error, _ = evaluate(result.networks, ds, substrate="ode", rng=0)
        ode_check = {"solved": int(np.sum(ode_error == 0)), "error": ode_error}
        print(f"the same networks on the ODE substrate: {ode_check['solved']}/{len(result.seeds)} at 0 % "
              f"{'training' if logic else 'test'} error")
    if args.json:
        print_json_line({
            "task": ds.name, "data": ds.source, "classes": list(ds.class_names), "model": args.model, "topology": topology,
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
    return 0


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
