"""Substrate specs: a substrate and its options as one line of text, ``NAME:opt=v;opt=v``.

``"spice:mismatch=0.3;seed=1;clamp=limiter"`` names the SPICE substrate with a chip of 30 %
mismatch (draw seed 1) and limiter clamps; ``"ode:mismatch=0.3;seed=1"`` the same chip on the
ODE. Every command that takes a substrate (``train --substrate``, ``gradcheck --substrate``,
``compare --substrates/--reference``, ``sweep`` axes ``SUBSTRATE:OPTION``) and
:func:`deepcircuit.get_substrate` read it here: one parser, one validation, one error text.

The options of a substrate are its constructor's keyword arguments, and the fields of a
settings dataclass an argument takes (``stiffness`` of the SPICE clamp's ``ClampModel``,
``v_scale`` of ``CircuitUnits``) unless a keyword argument already has that name. A value is
typed by what the option accepts (its annotation): ``none``, ``true``/``false``, an integer, a
number, or text. Options are separated by ``;`` (a ``,`` also works where the spec stands alone).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import InvalidInputError
from .chip import CHIP_OPTIONS

#: name -> "module:Class"; adding a substrate adds a line here and touches nothing else.
REGISTRY: dict[str, str] = {
    "ode": "deepcircuit.substrates.ode:OdeSubstrate",
    "brian2": "deepcircuit.substrates.brian2_rate:Brian2RateSubstrate",
    "brian2-spiking": "deepcircuit.substrates.brian2_spiking:Brian2SpikingSubstrate",
    "spice": "deepcircuit.substrates.spice:SpiceSubstrate",
}
#: The substrates that simulate a chip (take the options of :data:`chip.CHIP_OPTIONS`).
CHIP_SUBSTRATES = ("ode", "spice")
#: Type names an option written as text can take.
TEXT_KINDS = frozenset({"str", "int", "float", "bool", "None", "Path"})
_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")


@dataclass(frozen=True)
class OptionInfo:
    """One option of a substrate: the constructor argument it sets, the settings dataclass whose
    field it is (None: the argument itself), and the type names it accepts."""

    arg: str
    holder: type | None
    kinds: frozenset


@dataclass(frozen=True)
class SubstrateSpec:
    """A parsed spec: the substrate ``name``, its ``options`` (typed values) and the ``text``
    it came from (a comparison's label)."""

    name: str
    options: dict
    text: str

    def build(self):
        """The substrate instance (see :func:`build_substrate`)."""
        return build_substrate(self.name, self.options)


def substrate_class(name: str) -> type:
    """The class of substrate ``name`` (imported on first use)."""
    if name not in REGISTRY:
        raise InvalidInputError(f"Unknown substrate {name!r}; use one of {', '.join(map(repr, REGISTRY))}"
                                + _did_you_mean(name, REGISTRY) + ".")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def _kinds(annotation) -> frozenset:
    """Type names of an annotation string such as ``"int | None"`` or ``'str | ClampModel'``."""
    ann = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return frozenset(k.strip().strip("'\"") for k in str(ann).strip("'\"").split("|"))


def _settings_class(kinds: frozenset, module) -> "type | None":
    """The settings dataclass among an argument's types (``ClampModel`` of ``"str | ClampModel"``)."""
    for k in kinds - TEXT_KINDS:
        t = getattr(module, k, None)
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            return t
    return None


def substrate_options(name: str, *, from_text: bool = False) -> dict[str, OptionInfo]:
    """The options of substrate ``name`` (a name or a spec; see the module docstring).

    ``from_text=True`` keeps only those that can be written as text (not ``units=``, an object,
    but its fields ``v_scale=`` ...).
    """
    name = name.partition(":")[0] if isinstance(name, str) else name
    cls = substrate_class(name)
    module = importlib.import_module(cls.__module__)
    args: dict[str, OptionInfo] = {}
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        args[p.name] = OptionInfo(p.name, None, _kinds(p.annotation))
    out = dict(args)
    seen: dict[str, int] = {}
    fields: dict[str, OptionInfo] = {}
    for arg, info in args.items():
        holder = _settings_class(info.kinds, module)
        if holder is None:
            continue
        for f in dataclasses.fields(holder):
            # A field shadowed by an argument (seed, ota_gain ~ gain) or shared by two settings
            # classes (kind) is set through the argument only.
            if f.name in args or f"ota_{f.name}" in args or f.name == "kind":
                continue
            seen[f.name] = seen.get(f.name, 0) + 1
            fields[f.name] = OptionInfo(arg, holder, _kinds(f.type))
    out.update({k: v for k, v in fields.items() if seen[k] == 1})
    for key in getattr(cls, "cannot_model", {}):  # refused by name (see _refusal)
        out.pop(key, None)
    if from_text:
        out = {k: v for k, v in out.items() if v.kinds & TEXT_KINDS - {"None"}}
    return out


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _refusal(name: str, key: str, where: str) -> "str | None":
    """The one line refusing chip option ``key`` on a substrate that cannot model it, or None."""
    cls = substrate_class(name)
    reasons = getattr(cls, "cannot_model", {})
    if key in reasons:
        return f"{where}: substrate {name!r} cannot model {key}= ({reasons[key]})."
    if key in CHIP_OPTIONS and name not in CHIP_SUBSTRATES:
        return (f"{where}: substrate {name!r} cannot model the chip option {key}= (a chip's mismatch, quantization, "
                f"synapse law and clamp are simulated by {' and '.join(CHIP_SUBSTRATES)}).")
    return None


def _typed(text: str, kinds: frozenset, key: str, where: str) -> Any:
    """An option's text as the type its option accepts (see the module docstring)."""
    t = text.strip()
    low = t.lower()
    if low == "none" and "None" in kinds:
        return None
    if "bool" in kinds and low in _TRUE + _FALSE:
        return low in _TRUE
    if kinds & {"int", "float"}:  # "2" is 2 for a float option too (as Python callers write it)
        try:
            return int(t)
        except ValueError:
            pass
    if "float" in kinds:
        try:
            return float(t)
        except ValueError:
            pass
    if kinds & {"str", "Path"} and t:
        return t
    raise InvalidInputError(f"{where}: option {key}= must be {_kinds_text(kinds)}; got {t!r}.")


def _kinds_text(kinds) -> str:
    words = {"int": "an integer", "float": "a number", "bool": "true or false", "None": "none", "str": "text",
             "Path": "a path"}
    return " or ".join(words[k] for k in sorted(kinds & TEXT_KINDS, key=list(words).index)) or "an object"


def _fits(value, kinds) -> bool:
    return ((value is None and "None" in kinds) or (isinstance(value, bool) and "bool" in kinds)
            or (type(value) is int and ("int" in kinds or "float" in kinds))
            or (type(value) is float and "float" in kinds)
            or (isinstance(value, str) and bool(kinds & {"str", "Path"})))


def check_substrate_options(name: str, options: Mapping[str, Any], *, from_text: bool = False,
                            where: str | None = None) -> dict:
    """Check option names against substrate ``name`` and return the options typed.

    With ``from_text`` the values are text or plain values (numbers, true/false, none, text), as a
    spec, a sweep grid or a TOML file gives them: text is typed by what the option accepts and
    every value checked against it. Unknown names get the close match and the list of options; a
    chip option on a substrate that cannot model it gets the reason. Raises
    :class:`~deepcircuit.errors.InvalidInputError` (one line).
    """
    where = where or f"Substrate {name!r}"
    known = substrate_options(name)
    for key in options:
        refusal = None if key in known else _refusal(name, key, where)
        if refusal:
            raise InvalidInputError(refusal)
    unknown = [k for k in options if k not in known]
    if unknown:
        text_ok = substrate_options(name, from_text=from_text)
        raise InvalidInputError(
            f"{where}: unknown option(s) {', '.join(map(repr, unknown))}{_did_you_mean(unknown[0], known)}; "
            f"substrate {name!r} takes {', '.join(text_ok) or 'no options'}.")
    if not from_text:
        return dict(options)
    out = {}
    for key, value in options.items():
        kinds = known[key].kinds
        if not kinds & TEXT_KINDS - {"None"}:
            fields = [k for k, v in known.items() if v.arg == key and v.holder is not None]
            raise InvalidInputError(f"{where}: option {key}= takes an object (Python API only)"
                                    + (f"; write its fields instead: {', '.join(fields)}" if fields else "") + ".")
        if value is _NAME_ONLY:
            continue
        if isinstance(value, str):
            value = _typed(value, kinds, key, where)
        if not _fits(value, kinds):
            raise InvalidInputError(f"{where}: option {key}= must be {_kinds_text(kinds)}; got {value!r}.")
        out[key] = value
    return out


_NAME_ONLY = object()


def check_option_name(name: str, key: str, *, where: str | None = None) -> None:
    """Check that ``key`` is an option of substrate ``name`` that can be written as text (a sweep
    axis ``SUBSTRATE:OPTION`` before its values are known); same errors as
    :func:`check_substrate_options`."""
    check_substrate_options(name, {key: _NAME_ONLY}, from_text=True, where=where)


def parse_substrate_spec(text: str, *, where: str | None = None) -> SubstrateSpec:
    """``"spice:clamp=limiter;reltol=1e-5"`` -> ``SubstrateSpec("spice", {"clamp": "limiter",
    "reltol": 1e-5}, text)``, every option checked (:func:`check_substrate_options`)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"A substrate must be a name like 'ode' or 'spice:clamp=limiter'; got {text!r}.")
    text = text.strip()
    name, _, opts = text.partition(":")
    name = name.strip()
    substrate_class(name)
    where = where or f"Substrate spec {text!r}"
    raw: dict[str, str] = {}
    for item in filter(None, (o.strip() for o in opts.replace(",", ";").split(";"))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise InvalidInputError(f"{where}: option {item!r} must look like key=value (options separated by ';').")
        if key.strip() in raw:
            raise InvalidInputError(f"{where}: option {key.strip()}= is given twice.")
        raw[key.strip()] = value.strip()
    return SubstrateSpec(name, check_substrate_options(name, raw, from_text=True, where=where), text)


def split_substrate_list(text: str) -> list[str]:
    """A comma-separated list of specs (``"ode,spice:mismatch=0.3;seed=1"``) split into specs; a
    piece ``key=value`` without a substrate name continues the spec before it."""
    out: list[str] = []
    for piece in (p.strip() for p in str(text).split(",")):
        if not piece:
            continue
        if out and "=" in piece and ":" not in piece.partition("=")[0]:
            out[-1] += ";" + piece
        else:
            out.append(piece)
    return out


def build_substrate(name: str, options: Mapping[str, Any]):
    """A substrate instance from checked options (fields of settings dataclasses filled in: a
    ``stiffness`` with ``clamp="limiter"`` is ``clamp=ClampModel(kind="limiter", stiffness=...)``)."""
    known = substrate_options(name)
    kwargs: dict[str, Any] = {}
    nested: dict[str, tuple[type, dict]] = {}
    for key, value in options.items():
        info = known[key]
        if info.holder is None:
            kwargs[key] = value
        else:
            nested.setdefault(info.arg, (info.holder, {}))[1][key] = value
    for arg, (holder, fields) in nested.items():
        base = kwargs.get(arg)
        if isinstance(base, str) and "kind" in {f.name for f in dataclasses.fields(holder)}:
            fields = {"kind": base, **fields}
        elif base is not None and dataclasses.is_dataclass(base):
            kwargs[arg] = dataclasses.replace(base, **fields)
            continue
        try:
            kwargs[arg] = holder(**fields)
        except TypeError as exc:  # pragma: no cover - fields are checked above
            raise InvalidInputError(f"Substrate {name!r}: {exc}") from None
    return substrate_class(name)(**kwargs)


def substrate_chip(substrate) -> "Any | None":
    """The :class:`~deepcircuit.substrates.chip.Chip` a substrate (an instance, or a spec text
    such as ``"spice:mismatch=0.3;seed=1"``) simulates, or None when it has none or it is ideal
    (what a model file records as the chip it was trained on)."""
    from .chip import Chip

    if isinstance(substrate, str):
        spec = parse_substrate_spec(substrate)
        accepted = set(inspect.signature(Chip.from_options).parameters)
        chip = Chip.from_options(**{k: v for k, v in spec.options.items() if k in accepted})
    else:
        chip = getattr(substrate, "chip", None)
    return None if chip is None or chip.ideal else chip
