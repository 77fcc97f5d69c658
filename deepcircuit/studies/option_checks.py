"""Argument checks of the subcommands, run before any work is done or any file is created.

Each check raises :class:`~deepcircuit.errors.InvalidInputError` (or its
:class:`~deepcircuit.errors.LimitExceededError` subclass) with one line naming the option,
what was given and what is allowed; ``deepcircuit.cli.main`` prints it and exits with status 2.
Everything is checked first and folders are created last, so a bad argument leaves nothing
behind.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError


def seed(option: str, value: int | None) -> int | None:
    """A seed: an integer >= 0 (NumPy refuses negative seeds), below 2**63."""
    if value is not None and not 0 <= value < 2 ** 63:
        raise InvalidInputError(f"{option} must be an integer in [0, 2**63); got {value}.")
    return value


def count(option: str, value: int | None, *, low: int | None = 0, limit: str | None = None) -> int | None:
    """An integer option in ``[low, limit]`` (``limit`` names a :mod:`deepcircuit.limits` constant;
    ``low=None`` leaves the lower bound to the setting's own check)."""
    from .. import limits

    if value is None:
        return None
    if low is not None and value < low:
        raise InvalidInputError(f"{option} must be an integer >= {low}; got {value}.")
    if limit is not None:
        limits.check_limit(option, value, limit)
    return value


def hidden(value: str) -> tuple[int, ...]:
    """``--hidden``: comma-separated layer sizes such as ``5`` or ``5,3``, within the neuron limits."""
    from .. import limits

    text = value.replace(" ", "")
    if not re.fullmatch(r"[0-9]{1,9}(,[0-9]{1,9})*", text):
        raise InvalidInputError(
            f"--hidden must be layer sizes like '5' or '5,3' (digits and commas); got {value!r}.")
    sizes = tuple(int(h) for h in text.split(","))
    limits.check_limit("--hidden: the number of layers", len(sizes), "MAX_LAYERS")
    limits.check_limit("--hidden: the number of hidden neurons", sum(sizes), "MAX_NEURONS")
    return sizes


def output_file(option: str, value: str) -> Path:
    """A file to write: not empty, not a folder, in a folder that exists or can be created."""
    if not value or not value.strip():
        raise InvalidInputError(f"{option} must name a file to write; got {value!r}.")
    path = Path(value)
    if path.is_dir() or value.endswith(("/", os.sep)):
        raise InvalidInputError(f"{option} {value!r} names a folder; give a file name such as "
                                f"{value.rstrip('/') or '.'}/x.cir.")
    _creatable(option, path.parent)
    return path


def output_folder(option: str, value: str) -> Path:
    """A folder to write into: not empty, not an existing file; it is created only later."""
    if not value or not value.strip():
        raise InvalidInputError(f"{option} must name a folder; got {value!r}.")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"{option} {value!r} exists and is not a folder.")
    _creatable(option, path)
    return path


def _creatable(option: str, folder: Path) -> None:
    # The nearest existing ancestor must be a writable folder, so writing later will work; the
    # folder itself is not created here.
    p = folder if str(folder) else Path(".")
    while not p.exists():
        if p.is_symlink():
            raise InvalidInputError(f"{option}: {str(p)!r} is a broken symbolic link.")
        parent = p.parent
        if parent == p:
            break
        p = parent
    if not p.is_dir():
        raise InvalidInputError(f"{option}: cannot access {str(folder)!r}: {str(p)!r} is a file, not a folder.")
    if not os.access(p, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{option}: cannot access {str(folder)!r}: the folder {str(p)!r} is not writable.")


def beta_for_circuit(value: float, option: str = "--beta") -> float:
    """A nudging strength a circuit can realise: 0 (no nudge) or large enough that the nudge
    resistance ``1 / (g * beta)`` is a finite number."""
    from ..substrates.chip import CircuitUnits

    g = CircuitUnits().transconductance
    if value != 0 and not (value > 0 and math.isfinite(1.0 / (g * value)) if g * value > 0 else False):
        raise InvalidInputError(
            f"{option} {value!r} is too small for a circuit: the nudge resistance 1/(g*beta) would not be "
            "a finite number; use 0 (no nudge) or a larger value.")
    return value


def state_size(task, roles_hidden: tuple[int, ...], n_networks: int, free_steps: int,
               nudged_steps: int) -> None:
    """The largest state array a run allocates, against ``MAX_STATE_BYTES``."""
    from .. import limits

    n = task.n_inputs + sum(roles_hidden) + task.n_outputs
    limits.check_limit("the number of neurons", n, "MAX_NEURONS")
    limits.check_state_size(n_networks, len(task.inputs), max(free_steps, nudged_steps), n)


def substrate_specs(text: str, option: str = "--substrates") -> list[str]:
    """A comma-separated list of substrate specs (``ode,spice:mismatch=0.3;seed=1``): every spec
    parsed and checked (names, values, and the substrate built once, which only stores its
    options) before anything runs; returns the specs."""
    from ..substrates import split_substrate_list

    specs = split_substrate_list(text)
    if not specs:
        raise InvalidInputError(f"{option} must name at least one substrate, e.g. 'ode,spice'; got {text!r}.")
    for spec in specs:
        substrate_spec(spec, option)
    return specs


def substrate_spec(text: str, option: str = "--substrate") -> str:
    """One substrate spec ``NAME:opt=v;opt=v`` (deepcircuit.substrates.spec), checked and built
    once (a bad value such as clamp=bogus fails here, before a long run); returns it."""
    from ..substrates import parse_substrate_spec

    spec = parse_substrate_spec(text, where=f"{option} {text!r}")
    try:
        spec.build().close()
    except InvalidInputError as exc:
        raise InvalidInputError(f"{option} {text!r}: {exc}") from None
    return spec.text



class SubstrateSpecAction(argparse.Action):
    """argparse action of ``--substrate SPEC``: stores the substrate's name in ``dest`` (what code
    that asks "is it spice?" reads) and the whole checked spec in ``<dest>_spec``; an invalid spec
    is one line and exit status 2 (through the CLI's handler of InvalidInputError)."""

    def __call__(self, parser, namespace, values, option_string=None):
        spec = substrate_spec(values, option_string or "--substrate")
        setattr(namespace, self.dest, spec.partition(":")[0].strip())
        setattr(namespace, self.dest + "_spec", spec)
