"""Substrates: the simulators a network description is compiled into.

Substrates are looked up by name and imported lazily, so a heavy optional simulator (Brian2,
PySpice) is only imported when asked for, and its absence gives an error naming the fix.

Layer: substrates. Lives here: :mod:`.base` (the ``Substrate`` interface, ``Schedule``),
:mod:`.trajectory` (the common ``Trajectory`` form every substrate returns), :mod:`.ode`,
the Brian2 substrates, :mod:`.spice` with :mod:`.circuit` (the netlist compiler) beside it.
May import: bottom, model and data. Never learning, stability, studies or cli
(tests/test_layers.py checks this).
"""

from __future__ import annotations

import importlib
import inspect

from ..errors import InvalidInputError
from .base import Schedule, Substrate, initial_states

#: name -> "module:Class"; adding a substrate adds a line here and touches nothing else.
_REGISTRY: dict[str, str] = {
    "ode": "deepcircuit.substrates.ode:OdeSubstrate",
    "brian2": "deepcircuit.substrates.brian2_rate:Brian2RateSubstrate",
    "brian2-spiking": "deepcircuit.substrates.brian2_spiking:Brian2SpikingSubstrate",
    "spice": "deepcircuit.substrates.spice:SpiceSubstrate",
}


def available_substrates() -> list[str]:
    """Names accepted by :func:`get_substrate`."""
    return list(_REGISTRY)


def get_substrate(name: "str | Substrate", **options) -> Substrate:
    """A substrate instance by name (``ode``, ...), with its options as keyword arguments."""
    if isinstance(name, Substrate):
        if options:
            raise InvalidInputError("Options cannot be given together with a substrate instance.")
        return name
    if name not in _REGISTRY:
        raise InvalidInputError(
            f"Unknown substrate {name!r}; use one of {', '.join(map(repr, _REGISTRY))}.")
    check_substrate_options(name, options)
    return _substrate_class(name)(**options)


def _substrate_class(name: str) -> type:
    if name not in _REGISTRY:
        raise InvalidInputError(
            f"Unknown substrate {name!r}; use one of {', '.join(map(repr, _REGISTRY))}.")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


#: Types an option given as text (``compare --substrates spice:clamp=limiter``) can have.
_TEXT_KINDS = {"str", "int", "float", "bool", "None", "Path"}


def substrate_options(name: str, *, from_text: bool = False) -> dict[str, set[str]]:
    """The options of substrate ``name`` (its constructor's keyword arguments) and the type
    names each accepts; ``from_text=True`` keeps only those that can be written as text."""
    out = {}
    for p in inspect.signature(_substrate_class(name).__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        kinds = {k.strip().strip("'\"") for k in str(ann).strip("'\"").split("|")}
        if from_text:
            kinds = kinds & _TEXT_KINDS
            if not kinds - {"None"}:
                continue  # only an object (units, non-idealities, a dict) fits: Python API only
        out[p.name] = kinds
    return out


def check_substrate_options(name: str, options: dict, *, from_text: bool = False,
                            where: str | None = None) -> None:
    """Check option names (and, for options given as text, their types) against the
    constructor of substrate ``name``; the error lists the options it takes."""
    allowed = substrate_options(name, from_text=from_text)
    where = where or f"Substrate {name!r}"
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InvalidInputError(
            f"{where}: unknown option(s) {', '.join(map(repr, unknown))}; substrate {name!r} takes "
            f"{', '.join(allowed) or 'no options'}.")
    if not from_text:
        return
    for key, value in options.items():
        kinds = allowed[key]
        ok = ((value is None and "None" in kinds) or (isinstance(value, bool) and "bool" in kinds)
              or (type(value) is int and ("int" in kinds or "float" in kinds))
              or (type(value) is float and "float" in kinds)
              or (isinstance(value, str) and ("str" in kinds or "Path" in kinds)))
        if not ok:
            want = " or ".join(sorted(k.replace("None", "none").replace("Path", "path") for k in kinds))
            raise InvalidInputError(f"{where}: option {key}= must be {want}; got {value!r}.")


__all__ = ["Schedule", "Substrate", "available_substrates", "check_substrate_options", "get_substrate",
           "initial_states", "substrate_options"]
