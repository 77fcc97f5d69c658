"""The clamp of every free node to the rails 0 V and ``V_scale``: the bound of the states to [0, 1].

:class:`ClampModel` describes it (diodes, a stiff limiter or op-amp precision clamps) and refuses a
clamp that cannot hold the states at the chip's units; :func:`clamp_elements` and
:func:`precision_clamp_ic` write its elements and the ``.ic`` terms of its op-amp outputs for
the netlist compiler (:mod:`.circuit`). Units (SI): volts, amperes, ohms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_choice, check_real
from ..errors import InvalidInputError
from .netlist_text import spice_number

CLAMP_KINDS = ("diode", "limiter", "precision")
#: The clamp of the circuit when none is named. benchmarks/bench_clamps.py finds the precision
#: clamp the most faithful, but it costs 5-15x the simulation time and a runaway circuit grinds
#: for minutes in it instead of failing fast; docs/hardware.md has the figures and the reasons.
DEFAULT_CLAMP = "diode"


@dataclass(frozen=True)
class ClampModel:
    """The bound to [0, 1]: a clamp of every free node to the rails 0 V and ``V_scale``.

    ``kind="diode"`` (default, :data:`DEFAULT_CLAMP`): two diodes per node, model ``DCLAMP`` with saturation current
    ``saturation_current`` (A), emission coefficient ``emission`` and series resistance
    ``series_resistance`` (ohm). A diode conducts softly: a node at a bound is pushed outside it
    by about ``emission * V_T * ln(I / IS)`` (``V_T`` = 25.85 mV at 27 C), where ``I`` is the current
    the clamp must absorb; that deviation shrinks relative to the bound as ``V_scale`` grows.

    ``kind="limiter"``: a behavioural current source ``I = g * stiffness * (uramp(v - V_scale) -
    uramp(-v))`` (ngspice ``B`` element): zero inside the box, a conductance ``stiffness * g`` to
    the rail outside it; a node absorbing current ``J * g * V_scale`` overshoots by ``J / stiffness``
    in units of ``V_scale``.

    ``kind="precision"``: an active precision clamp per rail (the "superdiode" a circuit designer
    builds): an op-amp of open-loop gain ``opamp_gain`` compares the node with the rail and drives
    a diode (model ``DPREC``: ``precision_diode_is``, N = 1, RS = 10 ohm, a small-signal silicon
    junction) whose other end is the node, so the diode's forward drop is divided by the gain. The
    op-amp is a behavioural voltage source ``B_oplo`` / ``B_ophi`` whose output swings at most
    ``opamp_swing`` volts around its rail (``tanh`` saturation, as a real output stage). Each
    op-amp draws ``opamp_quiescent`` amperes from the supply ``VDD``, and the current the lower
    clamp pushes into a node comes from ``VDD`` as well (``B_sup_clamp``), so the clamp's energy is
    counted. Defaults: gain 1e4 (80 dB, a general-purpose CMOS op-amp at DC), quiescent 1 uA per
    op-amp (a micropower part), swing 2 V.
    """

    kind: str = DEFAULT_CLAMP
    saturation_current: float = 1e-6
    emission: float = 1.0
    series_resistance: float = 1.0
    stiffness: float = 1e4
    opamp_gain: float = 1e4
    opamp_quiescent: float = 1e-6
    opamp_swing: float = 2.0
    precision_diode_is: float = 1e-14

    def __post_init__(self) -> None:
        check_choice("clamp kind", self.kind, CLAMP_KINDS)
        check_real("saturation_current", self.saturation_current, low=0.0, low_open=True)
        check_real("emission", self.emission, low=0.0, low_open=True)
        check_real("series_resistance", self.series_resistance, low=0.0)
        check_real("stiffness", self.stiffness, low=0.0, low_open=True)
        check_real("opamp_gain", self.opamp_gain, low=1.0)
        check_real("opamp_quiescent", self.opamp_quiescent, low=0.0)
        check_real("opamp_swing", self.opamp_swing, low=0.0, low_open=True)
        check_real("precision_diode_is", self.precision_diode_is, low=0.0, low_open=True)

    @classmethod
    def of(cls, clamp: "str | ClampModel") -> "ClampModel":
        """A clamp from ``"precision"``, ``"diode"``, ``"limiter"`` or a :class:`ClampModel`."""
        if isinstance(clamp, ClampModel):
            return clamp
        return cls(kind=check_choice("clamp", clamp, CLAMP_KINDS))

    #: The largest clamp deviation accepted, in units of V_scale, at one unit of clamp current
    #: (``g * V_scale``): beyond it the clamp does not hold states in [0, 1] (the SPICE
    #: substrate would call the result a divergence), so such settings are refused.
    MAX_DEVIATION = 0.1

    def deviation(self, units: "CircuitUnits") -> float:
        """How far (units of ``V_scale``) the clamp lets a node pass its rail while absorbing the
        current ``g * V_scale`` of one unit of weight: a diode's forward drop
        ``N * V_T * ln(1 + I / IS) + I * RS`` (V_T = 25.85 mV), or ``1 / stiffness`` for the limiter."""
        if self.kind == "limiter":
            return 1.0 / self.stiffness
        current = units.current
        if self.kind == "precision":  # the DPREC diode's drop, divided by the op-amp's gain
            drop = (0.02585 * np.log1p(current / self.precision_diode_is) + current * 10.0) / self.opamp_gain
            return float(drop / units.v_scale)
        drop = self.emission * 0.02585 * np.log1p(current / self.saturation_current) + current * self.series_resistance
        return float(drop / units.v_scale)

    def check_fits(self, units: "CircuitUnits") -> None:
        """Refuse a clamp that cannot hold states in [0, 1] at these units (see :attr:`MAX_DEVIATION`)."""
        dev = self.deviation(units)
        if dev <= self.MAX_DEVIATION:
            return
        if self.kind == "limiter":
            raise InvalidInputError(
                f"A limiter of stiffness {spice_number(self.stiffness)} lets a node pass its rail by "
                f"{100 * dev:.3g} % of V_scale per unit of current; the clamp must hold within "
                f"{100 * self.MAX_DEVIATION:g} %: use a stiffness of at least {spice_number(1 / self.MAX_DEVIATION)}.")
        if self.kind == "precision":
            raise InvalidInputError(
                f"The precision clamp (op-amp gain {spice_number(self.opamp_gain)}) lets a node pass its rail by "
                f"{100 * dev:.3g} % of V_scale = {spice_number(units.v_scale)} V; the clamp must hold within "
                f"{100 * self.MAX_DEVIATION:g} %: use a larger op-amp gain or V_scale.")
        raise InvalidInputError(
            f"The clamp diodes (IS = {spice_number(self.saturation_current)} A, N = {spice_number(self.emission)}, RS = "
            f"{spice_number(self.series_resistance)} ohm) drop {100 * dev:.3g} % of V_scale = {spice_number(units.v_scale)} V "
            f"at the current of one unit of weight (g * V_scale = {spice_number(units.current)} A); the clamp must "
            f"hold within {100 * self.MAX_DEVIATION:g} % of V_scale. Use a larger V_scale, a larger "
            f"saturation current IS, a smaller N or RS, or the limiter clamp.")

    def model_line(self) -> str:
        """The ``.model`` card of the clamp diode (diode and precision clamps)."""
        if self.kind == "precision":
            return f".model DPREC D(IS={spice_number(self.precision_diode_is)} N=1 RS=10)"
        return (f".model DCLAMP D(IS={spice_number(self.saturation_current)} N={spice_number(self.emission)} "
                f"RS={spice_number(self.series_resistance)})")


def clamp_elements(clamp: ClampModel, cp: str, name: str, node: str, v_hi: float, g: float) -> list[str]:
    """The clamp of free node ``node`` (neuron ``name`` of copy ``cp``) to 0 V and ``v_hi`` =
    ``V_scale`` (volts); ``g`` (siemens) is the unit transconductance the limiter's stiffness scales."""
    if clamp.kind == "diode":
        return [f"D_lo_{cp}_{name} 0 {node} DCLAMP",
                f"D_hi_{cp}_{name} {node} rail_hi DCLAMP"]
    if clamp.kind == "limiter":
        return [f"B_lim_{cp}_{name} {node} 0 I = {spice_number(g * clamp.stiffness)}*"
                f"(uramp(V({node})-{spice_number(v_hi)}) - uramp(-V({node})))"]
    return _precision_clamp(cp, name, node, v_hi, clamp)


def precision_clamp_ic(node, free, volts, v_hi: float, clamp: ClampModel) -> list[str]:
    """``.ic`` terms of the precision clamps' op-amp outputs for node voltages ``volts``."""
    a, sw = clamp.opamp_gain, clamp.opamp_swing
    out = []
    for j in free:
        v = float(volts[j])
        out.append(f"V({node[j]}_oplo)={spice_number(sw * np.tanh(a * (0.0 - v) / sw))} "
                   f"V({node[j]}_ophi)={spice_number(v_hi + sw * np.tanh(a * (v_hi - v) / sw))}")
    return out


def _precision_clamp(cp: str, name: str, node: str, v_hi: float, clamp: ClampModel) -> list[str]:
    """The two op-amp driven diodes of a precision clamp at ``node`` (see :class:`ClampModel`)."""
    a, sw = spice_number(clamp.opamp_gain), spice_number(clamp.opamp_swing)
    return [f"B_oplo_{cp}_{name} {node}_oplo 0 V = {sw}*tanh({a}*(0-V({node}))/{sw})",
            f"D_plo_{cp}_{name} {node}_oplo {node} DPREC",
            f"B_ophi_{cp}_{name} {node}_ophi 0 V = {spice_number(v_hi)}+{sw}*tanh({a}*({spice_number(v_hi)}-V({node}))/{sw})",
            f"D_phi_{cp}_{name} {node} {node}_ophi DPREC"]
