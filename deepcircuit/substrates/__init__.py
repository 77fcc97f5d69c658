"""Substrates: the simulators a network description is compiled into.

Substrates are looked up by name and imported lazily, so a heavy optional simulator (Brian2,
PySpice) is only imported when asked for, and its absence gives an error naming the fix.
"""

from __future__ import annotations

import importlib

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
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)


__all__ = ["Schedule", "Substrate", "available_substrates", "get_substrate", "initial_states"]
