"""Substrates: the simulators a network description is compiled into.

Substrates are looked up by name and imported lazily, so a heavy optional simulator (Brian2,
PySpice) is only imported when asked for, and its absence gives an error naming the fix.

Layer: substrates. Lives here: :mod:`.base` (the ``Substrate`` interface, ``Schedule``),
:mod:`.trajectory` (the common ``Trajectory`` form every substrate returns), :mod:`.ode`
(with :mod:`.ode_chip` and :mod:`.ode_record`), the Brian2 substrates, :mod:`.spice` with
:mod:`.circuit` (the netlist compiler) beside it, :mod:`.chip` (the chip description both the
ODE and the netlist read) and :mod:`.spec` (``NAME:opt=v;opt=v`` specs and the substrate registry).
May import: bottom, model and data. Never learning, stability, studies or cli
(tests/test_layers.py checks this).
"""

from __future__ import annotations

from ..errors import InvalidInputError
from .base import Schedule, Substrate, initial_states
from .spec import (REGISTRY as _REGISTRY, SubstrateSpec, build_substrate, check_option_name, check_substrate_options,
                   parse_substrate_spec, split_substrate_list, substrate_class as _substrate_class,
                   substrate_options)


def available_substrates() -> list[str]:
    """Names accepted by :func:`get_substrate`."""
    return list(_REGISTRY)


def get_substrate(name: "str | Substrate", **options) -> Substrate:
    """A substrate instance by name or spec (``"ode"``, ``"spice:mismatch=0.3;seed=1"``; see
    :mod:`.spec`), with further options as keyword arguments (they override the spec's)."""
    if isinstance(name, Substrate):
        if options:
            raise InvalidInputError("Options cannot be given together with a substrate instance.")
        return name
    if not isinstance(name, str):
        raise InvalidInputError(f"A substrate must be a name like 'ode', a spec like 'spice:mismatch=0.3;seed=1' "
                                f"or a substrate instance; got {name!r}.")
    spec = parse_substrate_spec(name) if ":" in name else SubstrateSpec(name.strip(), {}, name)
    _substrate_class(spec.name)
    merged = {**spec.options, **check_substrate_options(spec.name, options)}
    return build_substrate(spec.name, merged)


__all__ = ["Schedule", "Substrate", "SubstrateSpec", "available_substrates", "build_substrate",
           "check_option_name", "check_substrate_options", "get_substrate", "initial_states", "parse_substrate_spec",
           "split_substrate_list", "substrate_options"]
