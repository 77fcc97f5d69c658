"""The options of one training run: the ``deepcircuit train`` options, as one argparse table.

Two readers: the ``train`` command parses its command line with it, and a sweep
(:mod:`deepcircuit.studies.sweep.spec`) checks and types its axes with it (every option here,
but the few in ``NOT_AXES``, is an axis and a column of the sweep's results), so an option added
here is both a command-line option and a sweep axis. The settings it parses are turned into a
training by :mod:`deepcircuit.studies.training_run`. Options come in the order ``--help`` lists
them, one function per group: the data set, the network, the training loop, the substrate, the
learning rule, the runner and the output.
"""

from __future__ import annotations

import argparse

from ..errors import InvalidInputError

#: --eval-samples on SPICE when not given: a held-out sample every epoch, the whole split at the
#: end (a digits presentation costs ~0.3 s free phase only in ngspice; docs/spice.md).
SPICE_EVAL_SAMPLES = 100


def add_train_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add every option of a training run to ``p`` and record, after parsing, which were given
    (``args.explicit_options``: they override ``--config``); returns ``p``."""
    _data_options(p)
    _network_options(p)
    _loop_options(p)
    _substrate_options(p)
    _rule_options(p)
    _runner_options(p)
    _record_explicit_options(p)
    return p


def train_parser() -> argparse.ArgumentParser:
    """The ``deepcircuit train`` options as a parser whose errors raise :class:`InvalidInputError`
    (one line): what a sweep checks its runs' options with."""
    p = argparse.ArgumentParser(prog="deepcircuit train")
    add_train_options(p)

    def error(message: str):
        raise InvalidInputError(message)

    p.error = error  # argparse reports every bad option through .error
    return p


def _data_options(p) -> None:
    """What to train on: a task, a built-in data set or a file, and how it is split."""
    from ..data.builtin import BUILTIN_DATASETS
    from ..data.tasks import TASKS

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


def _network_options(p) -> None:
    """The network: model family, topology, hidden layers."""
    from ..model.families import FAMILIES

    p.add_argument("--model", default=None, choices=list(FAMILIES),
                   help="model family (default: the data set's: deep)")
    p.add_argument("--topology", default=None,
                   help="'complete', 'layered', either with '+sink' (one more hidden neuron, the sink, "
                        "that drains a learned leak from every free neuron: docs/data.md), or a file of "
                        "edges 'i j' per line (indices or names x0, bias, h0, y0); default: the data "
                        "set's (complete for logic tasks, layered+sink for digits)")
    p.add_argument("--hidden", default=None,
                   help="hidden layer sizes, e.g. 5 or 5,3 (default: the data set's; 5 for logic tasks)")


def _loop_options(p) -> None:
    """The training loop: epochs, minibatches, frozen groups, stopping, seeds, start, output folder, preset."""
    from ..learning.steps import FREEZE_GROUPS
    from ..learning.config import PRESETS

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


def _substrate_options(p) -> None:
    """Where the phases run: the substrate spec, Brian2's and the SPICE circuit's options, and
    the tuner's (its group, listed after the options)."""
    from ..substrates import available_substrates
    from ..substrates.clamps import CLAMP_KINDS
    from .hardware_options import add_transconductor_arguments
    from .option_checks import SubstrateSpecAction

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


def _rule_options(p) -> None:
    """The learning rule and its settings: pruning, L1, sign updates, eta, beta, dt, phase lengths."""
    from ..learning.config import PRUNE_METHODS

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


def _runner_options(p) -> None:
    """The runner (SPICE on Dask, evaluation samples), certificates, output and settings files."""
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


def add_tune_arguments(p: argparse.ArgumentParser) -> None:
    """``train --tune``: the tuner's options, in a group of their own (docs/tuning.md)."""
    from .tune import AXES, DEFAULT_FACTORS, VALIDATION_FRACTION

    g = p.add_argument_group("tuning (--tune; docs/tuning.md)")
    g.add_argument("--tune", action="store_true",
                   help="choose eta, beta, the hidden size and the sink on a validation split (--validation-fraction, "
                        f"default {VALIDATION_FRACTION:g} with --tune): train every point of a small grid (default: eta x "
                        f"{', '.join(f'{f:.3g}' for f in DEFAULT_FACTORS['eta'])}, beta x "
                        f"{', '.join(f'{f:g}' for f in DEFAULT_FACTORS['beta'])}, hidden x "
                        f"{', '.join(map(str, DEFAULT_FACTORS['hidden']))}, and sink no/yes unless the default "
                        "topology has the sink, around the data set's defaults), keep the best validation accuracy, retrain it on train + validation and save "
                        "the grid's table and the choice in the model files and --json; points run on Dask and "
                        "are kept under OUT/tune/points, so a rerun skips the points done")
    g.add_argument("--tune-grid", action="extend", nargs="+", default=None, metavar="NAME=V1,V2,...",
                   help=f"the grid's axes and their values; NAME is one of {', '.join(AXES)} (hidden: 16 or "
                        "32x16 per value; sink: yes/no), e.g. --tune-grid eta=10,30,100 sink=yes (or the "
                        "option once per axis); axes not given keep the data set's default")
    g.add_argument("--tune-workers", type=int, default=None, metavar="N",
                   help="Dask worker processes of the local cluster that runs the grid points (default: one per "
                        "core; 0: in this process)")
    g.add_argument("--tune-scheduler", default=None, metavar="tcp://HOST:8786",
                   help="run the grid points on an existing Dask cluster (started with `dask scheduler` and "
                        "`dask worker`), as `sweep --scheduler` does")


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

