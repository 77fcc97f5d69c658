"""The network description compiled into a SPICE netlist (the physical reading of the spec).

One node per neuron per presentation copy, each with a capacitor ``C`` to ground; the node
voltage is the state times ``V_scale`` (state 1.0 = ``V_scale`` volts). The elements, named
after their roles (``s<network>p<presentation>`` prefixes every node and element of one copy):

* ``C_<copy>_<neuron>``: the neuron's capacitor ``C`` (farad) to ground.
* ``G_syn_<copy>_<i>_<j>``: DEEP synapse i -> j, a voltage-controlled current source controlled
  by ``v_i`` that takes ``g * W[i, j] * v_i`` out of node i and puts it into node j (charge
  conservation gives DEEP's inflow minus outflow). For ``ep-asym`` / ``ep-sym`` the current is
  injected into j from ground (nothing leaves node i). ``ep-sym``'s nonlinearity ``rho`` is the
  hard sigmoid, which is the identity inside the clamped box, so linear sources realise it there.
* ``R_leak_<copy>_<neuron>``: deep-leaky's leak ``-gamma * s``, conductance ``g * gamma`` to ground.
* ``R_decay_<copy>_<neuron>``, ``I_bias_<copy>_<neuron>``: the ``-s`` (conductance ``g``) and the
  learned bias (current ``g * b * V_scale``) of the EP families.
* ``V_in_<copy>_<input>``, ``V_bias_<copy>``: the clamped inputs and the bias neuron (volts).
* ``R_nudge_<copy>_<output>`` in series with ``S_nudge_<copy>_<output>`` to ``V_target_<copy>_<output>``:
  the nudge ``beta * (y - s)``, conductance ``g * beta`` to the target voltage, switched on by
  ``V_nudge_ctl`` at the end of the free phase INSIDE the same transient, so the nudged phase starts
  exactly from the free state.
* ``D_lo_<copy>_<neuron>`` / ``D_hi_<copy>_<neuron>`` (diode clamp, default) or ``B_lim_<copy>_<neuron>``
  (stiff limiter): the bound to [0, 1], a clamp to the rails 0 V and ``V_rail_hi`` = ``V_scale``.
* Non-idealities (:class:`NonIdealities`): ``C_par_...`` parasitic capacitance, ``I_noise_...``
  transient noise current (ngspice ``TRNOISE``); mismatch and quantization change the ``G_syn``
  values.
* OTA synapses (:class:`TransconductorModel`, ``transconductor="ota"``): ``B_syn_<copy>_<i>_<j>``
  (a tanh-limited behavioural current source) replaces ``G_syn``; ``R_out_<copy>_<neuron>`` the
  OTAs' output resistance at the node; ``V_dd_<copy>`` the array's supply and ``I_q_<copy>`` the
  quiescent current every active part draws from it; ``.meas tran q_free_<copy>`` /
  ``q_nudged_<copy>`` the charge drawn from the supply per phase (energy = ``-VDD * q``).
* Precision clamp (``ClampModel(kind="precision")``): ``B_oplo`` / ``B_ophi`` op-amps driving
  ``D_plo`` / ``D_phi`` diodes per node, ``B_sup_clamp_<copy>`` the lower clamps' current drawn from
  ``V_dd_<copy>``.

Units (SI): ``V_scale`` volts, ``C`` farads, ``g`` siemens, so ``tau = C / g`` seconds; a time of
``t`` in units of tau is ``t * tau`` seconds in the netlist. Weights are dimensionless multiples
of ``g``. The compiled text is standard SPICE that plain ``ngspice -b`` accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .._validation import check_array, check_choice, check_int, check_real
from ..errors import InvalidInputError, SimulationError
from ..model.network import NetworkBatch

CLAMP_KINDS = ("diode", "limiter", "precision")
#: The clamp of the circuit when none is named. benchmarks/bench_clamps.py finds the precision
#: clamp the most faithful, but it costs 5-15x the simulation time and a runaway circuit grinds
#: for minutes in it instead of failing fast; docs/hardware.md has the figures and the reasons.
DEFAULT_CLAMP = "diode"
TRANSCONDUCTOR_KINDS = ("vccs", "ota")
#: Rise time of the nudge switch's control, as a fraction of the sampling interval dt.
_SWITCH_RISE = 1e-3


@dataclass(frozen=True)
class CircuitUnits:
    """The physical scales of the circuit.

    Parameters
    ----------
    v_scale : float, volts
        Node voltage of state 1.0 (the upper rail).
    capacitance : float, farads
        Capacitance ``C`` of every neuron node.
    transconductance : float, siemens
        Unit transconductance ``g``: a synapse of weight ``W`` has transconductance ``g * W``.
    supply_headroom : float, volts
        The supply ``VDD`` of the active parts (OTA synapses, precision clamps) is
        ``V_scale + supply_headroom``: an output stage needs about 1 V above its largest output.
    """

    v_scale: float = 10.0
    capacitance: float = 1e-12
    transconductance: float = 1e-6
    supply_headroom: float = 1.0

    def __post_init__(self) -> None:
        from .. import limits

        check_real("v_scale", self.v_scale, low=limits.V_SCALE_RANGE[0], high=limits.V_SCALE_RANGE[1])
        check_real("capacitance", self.capacitance, low=limits.CAPACITANCE_RANGE[0],
                   high=limits.CAPACITANCE_RANGE[1])
        check_real("transconductance", self.transconductance, low=limits.TRANSCONDUCTANCE_RANGE[0],
                   high=limits.TRANSCONDUCTANCE_RANGE[1])
        check_real("supply_headroom", self.supply_headroom, low=0.0, high=1e3)

    @property
    def tau(self) -> float:
        """Time constant ``C / g`` of one unit of weight (seconds)."""
        return self.capacitance / self.transconductance

    @property
    def current(self) -> float:
        """Current of one unit of weight at state 1.0: ``g * V_scale`` (amperes)."""
        return self.transconductance * self.v_scale

    @property
    def vdd(self) -> float:
        """Supply voltage of the active parts: ``V_scale + supply_headroom`` (volts)."""
        return self.v_scale + self.supply_headroom


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
                f"A limiter of stiffness {_num(self.stiffness)} lets a node pass its rail by "
                f"{100 * dev:.3g} % of V_scale per unit of current; the clamp must hold within "
                f"{100 * self.MAX_DEVIATION:g} %: use a stiffness of at least {_num(1 / self.MAX_DEVIATION)}.")
        if self.kind == "precision":
            raise InvalidInputError(
                f"The precision clamp (op-amp gain {_num(self.opamp_gain)}) lets a node pass its rail by "
                f"{100 * dev:.3g} % of V_scale = {_num(units.v_scale)} V; the clamp must hold within "
                f"{100 * self.MAX_DEVIATION:g} %: use a larger op-amp gain or V_scale.")
        raise InvalidInputError(
            f"The clamp diodes (IS = {_num(self.saturation_current)} A, N = {_num(self.emission)}, RS = "
            f"{_num(self.series_resistance)} ohm) drop {100 * dev:.3g} % of V_scale = {_num(units.v_scale)} V "
            f"at the current of one unit of weight (g * V_scale = {_num(units.current)} A); the clamp must "
            f"hold within {100 * self.MAX_DEVIATION:g} % of V_scale. Use a larger V_scale, a larger "
            f"saturation current IS, a smaller N or RS, or the limiter clamp.")

    def model_line(self) -> str:
        """The ``.model`` card of the clamp diode (diode and precision clamps)."""
        if self.kind == "precision":
            return f".model DPREC D(IS={_num(self.precision_diode_is)} N=1 RS=10)"
        return (f".model DCLAMP D(IS={_num(self.saturation_current)} N={_num(self.emission)} "
                f"RS={_num(self.series_resistance)})")


@dataclass(frozen=True)
class TransconductorModel:
    """The synapse: an ideal VCCS (``kind="vccs"``, default) or an OTA (``kind="ota"``).

    An OTA synapse of weight ``W`` (transconductance ``gm = g * W``) is the behavioural source
    ``B_syn ... I = gm * V_L * tanh((v_i + v_os) / V_L)``: the ideal ``gm * v_i`` for small inputs,
    limited to ``+-I_bias = +-|gm| * V_L`` (a differential pair's tail current), where
    ``V_L = linear_range * V_scale``. Every OTA output has an output resistance
    ``gain / |gm|`` to ground (lumped per node as ``R_out_<copy>_<neuron>``), its input an offset
    ``v_os ~ Normal(0, offset^2)`` drawn once per synapse (one chip), and it draws a quiescent
    current ``branches * I_bias`` from the supply ``VDD`` (one source ``V_dd_<copy>`` per array;
    the quiescent currents of an array are one current source ``I_q_<copy>``), so the supply
    current is the array's consumption: a class-A stage draws its bias whatever it outputs.

    Parameters (defaults are assumptions, stated in docs/hardware.md)
    ----------
    kind : "vccs" or "ota"
    linear_range : float, units of V_scale
        Input at which the output reaches ``tanh(1)`` = 76 % of the linear value; 4.0 (a
        wide-linear-range, source-degenerated pair biased at 4 |gm| V_scale) keeps the full-scale
        output within 2 % of linear. At 1.0 (the former default) trained XOR networks that settle
        on the ODE often did not settle on the circuit (docs/hardware.md, "Why ODE-trained
        networks did not settle on OTA synapses"); the bias current, and so the energy, is
        proportional to it.
    gain : float
        Intrinsic gain ``gm * r_out`` (1000: a cascoded single stage, 60 dB; 100, the former
        default, is a cascode-free stage whose output conductance acts as a leak that moves the
        equilibria of DEEP, a system with a near-zero eigenvalue, by up to 0.9 V_scale).
    offset : float, volts
        Standard deviation of the input offset (2 mV: matched input pair of moderate area).
    branches : float
        Quiescent current in units of the tail current (2: tail plus mirrored output branch;
        DEEP synapses need a second mirrored output for the outflow, hence the default 3).
    seed : int
        Seed of the offset draw (per network, like the mismatch draw).
    """

    kind: str = "vccs"
    linear_range: float = 4.0
    gain: float = 1000.0
    offset: float = 2e-3
    branches: float = 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("transconductor kind", self.kind, TRANSCONDUCTOR_KINDS)
        check_real("linear_range", self.linear_range, low=0.0, low_open=True)
        check_real("gain", self.gain, low=0.0, low_open=True)
        check_real("offset", self.offset, low=0.0)
        check_real("branches", self.branches, low=0.0)
        check_int("seed", self.seed, low=0)

    @classmethod
    def of(cls, model: "str | TransconductorModel | None") -> "TransconductorModel":
        """A transconductor from ``"vccs"``, ``"ota"``, None (the VCCS) or a model."""
        if isinstance(model, TransconductorModel):
            return model
        return cls(kind=check_choice("transconductor", model or "vccs", TRANSCONDUCTOR_KINDS))

    def offsets(self, n_networks: int, n_neurons: int, first: int = 0) -> np.ndarray:
        """Input offsets (volts), shape ``(S, N, N)``; network ``first + k`` seeded by ``(seed, first + k)``."""
        shape = (n_neurons, n_neurons)
        if self.offset == 0:
            return np.zeros((n_networks,) + shape)
        return np.stack([self.offset * np.random.default_rng([self.seed, 7919, first + k]).standard_normal(shape)
                         for k in range(n_networks)])


@dataclass(frozen=True)
class NonIdealities:
    """Hardware non-idealities; each changes the netlist, never the learning code.

    Parameters
    ----------
    mismatch : float
        Relative standard deviation of each synapse's transconductance (Monte Carlo, drawn once
        per synapse from ``seed`` and shared by all presentation copies: one chip).
    bits : int or None
        Weight quantization: weights are clipped to ``[-weight_range, weight_range]`` and rounded
        to ``2**bits - 1`` evenly spaced levels (None = off).
    weight_range : float
        Range of the quantized weights (dimensionless).
    parasitic_capacitance : float, farads
        Extra capacitance from every free node to ground.
    noise : float
        RMS of a white noise current into every free node, in units of ``g * V_scale``
        (ngspice ``TRNOISE``); 0 = off.
    noise_interval : float or None
        Sampling interval of the noise (tau); None = the schedule's ``dt``.
    seed : int
        Seed of the mismatch draw and of ngspice's noise generator (``.options seed``).
    """

    mismatch: float = 0.0
    bits: int | None = None
    weight_range: float = 4.0
    parasitic_capacitance: float = 0.0
    noise: float = 0.0
    noise_interval: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_real("mismatch", self.mismatch, low=0.0)
        if self.bits is not None:
            check_int("bits", self.bits, low=1, high=32)
        check_real("weight_range", self.weight_range, low=0.0, low_open=True)
        check_real("parasitic_capacitance", self.parasitic_capacitance, low=0.0)
        check_real("noise", self.noise, low=0.0)
        if self.noise_interval is not None:
            check_real("noise_interval", self.noise_interval, low=0.0, low_open=True)
        check_int("seed", self.seed, low=0)

    @property
    def ideal(self) -> bool:
        return (self.mismatch == 0 and self.bits is None and self.parasitic_capacitance == 0
                and self.noise == 0)

    def mismatch_factors(self, n_networks: int, n_neurons: int, first: int = 0) -> np.ndarray:
        """Transconductance errors ``1 + mismatch * N(0, 1)``, shape ``(S, N, N)``.

        Network ``k`` of a batch (``first + k`` overall) draws from its own generator seeded by
        ``(seed, first + k)``, so its chip does not depend on how the batch is split into runs.
        """
        shape = (n_neurons, n_neurons)
        if self.mismatch == 0:
            return np.ones((n_networks,) + shape)
        with np.errstate(over="ignore"):  # an absurd mismatch overflows to inf, refused by the netlist
            return np.stack([1.0 + self.mismatch * np.random.default_rng([self.seed, first + k]).standard_normal(shape)
                             for k in range(n_networks)])

    def quantize(self, W: np.ndarray) -> np.ndarray:
        """Weights as the circuit realises them (quantized when ``bits`` is set)."""
        if self.bits is None:
            return np.asarray(W, dtype=float)
        r = self.weight_range
        step = 2.0 * r / (2 ** self.bits - 1)
        return np.round((np.clip(W, -r, r) + r) / step) * step - r


@dataclass(frozen=True)
class Netlist:
    """A compiled netlist and what is needed to read its results back.

    Attributes
    ----------
    text : str
        The SPICE netlist.
    nodes : list of str
        ``nodes[k]`` is the node of the k-th free state, in the order of ``index`` (network,
        presentation, free neuron), lower case as ngspice reports vectors.
    shape : tuple
        ``(S, P, N)`` of the states.
    n_inputs : int
        Number of clamped neurons (inputs and bias) per copy.
    units : CircuitUnits
    free_end : float, seconds
        Time at which the nudge switches on (end of the free phase).
    stop : float, seconds
        End of the transient.
    step : float, seconds
        The ``.tran`` print step (``dt * tau``).
    meta : dict
        ``clamp``, ``family`` and ``initial_volts`` (the ``.ic`` values in the order of ``nodes``).
    """

    text: str
    nodes: list[str]
    shape: tuple[int, int, int]
    n_inputs: int
    units: CircuitUnits
    free_end: float
    stop: float
    step: float
    meta: dict = field(default_factory=dict)


#: Vectors per ``print`` command of a ``.control`` block (ngspice 39 refuses more than ~1000).
PRINT_CHUNK = 500


def read_printed_tables(stdout: str, net: "Netlist") -> tuple[np.ndarray, np.ndarray]:
    """The node voltages a netlist's ``.control`` block printed in plain ``ngspice -b``.

    Parses every ``print`` table of ``stdout`` (a header ``Index v(...) ...``, then rows
    ``index value ...``) and checks that each node of ``net.nodes`` came back in
    its order with one row per point of the ``linearize`` grid (``0 .. net.stop`` every
    ``net.step``). Returns ``(time (T,) seconds, volts (nodes, T))``; raises
    :class:`~deepcircuit.errors.SimulationError` naming what is missing otherwise.
    """

    tables: list[tuple[list[str], list[list[float]]]] = []
    cols: list[str] | None = None
    for line in stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].lower() == "index" and words[1].lower().startswith("v("):
            cols = [w.lower() for w in words[1:]]
            if not tables or tables[-1][0] != cols:
                tables.append((cols, []))
        elif cols is not None and words and words[0].isdigit() and len(words) == len(cols) + 1:
            try:
                tables[-1][1].append([float(w) for w in words[1:]])
            except ValueError:
                continue
    if "too many args" in stdout:
        raise SimulationError("ngspice refused a print command ('print: too many args.'); the netlist's "
                              f".control block must print at most {PRINT_CHUNK} vectors per command.")
    expected = round(net.stop / net.step) + 1
    want = [f"v({n})" for n in net.nodes]
    got = {c for cols_, _ in tables for c in cols_}
    missing = [w for w in want if w not in got]
    if missing:
        raise SimulationError(f"ngspice printed no column for {len(missing)} of {len(want)} nodes "
                              f"(first missing: {missing[0]}); the run did not finish or the output was cut.")
    volts = np.empty((len(want), expected))
    index = {w: k for k, w in enumerate(want)}
    for cols_, rows in tables:
        arr = np.asarray(rows, dtype=float).reshape(-1, len(cols_))
        if arr.shape[0] != expected:
            raise SimulationError(f"ngspice printed {arr.shape[0]} rows for {cols_[0]} .. {cols_[-1]}, expected "
                                  f"{expected} (0 .. {net.stop:.4g} s every {net.step:.4g} s).")
        for k, c in enumerate(cols_):
            if c in index:
                volts[index[c]] = arr[:, k]
    # linearize puts the points on this grid; print shows the index, not the time
    return net.step * np.arange(expected), volts


def _num(x: float) -> str:
    """A number as SPICE text: shortest repr with 12 significant digits (deterministic).

    A non-finite value (``inf`` from ``1 / (g * beta)`` with a tiny beta, say) is refused: ngspice
    would read ``inf`` as a node name or fail far from the cause."""
    x = float(x)
    if not np.isfinite(x):
        raise InvalidInputError(
            f"A value of the netlist is {x} (not finite); a setting is too small or too large for a "
            "circuit (e.g. beta, gamma or a unit near 0).")
    if x == 0:
        return "0"
    return f"{x:.12g}"


def spice_comment_text(text: object, max_len: int | None = None) -> str:
    """``text`` made inert for a netlist title or ``*`` comment: one line of printable ASCII.

    Anything from a user (a model file's path, a task name, a title) reaches a netlist only
    through this function. Newlines would start new SPICE cards (``.control`` / ``shell ...``
    runs a shell command in ``ngspice -b``), so every character outside printable ASCII, and the
    backslash, is written as a Python escape (``\\n``, ``\\x5c``, ``\\u2028``); an escape ends in a
    letter or digit, so the result never ends in a continuation backslash. Text longer than
    ``max_len`` (default :data:`deepcircuit.limits.MAX_NETLIST_TEXT`) is cut and ends in ``...``.
    """
    from ..limits import MAX_NETLIST_TEXT

    max_len = MAX_NETLIST_TEXT if max_len is None else max(int(max_len), 4)
    out = []
    for ch in str(text):
        if " " <= ch <= "~" and ch != "\\":
            out.append(ch)
        elif ch == "\\":
            out.append("\\x5c")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    s = "".join(out)
    return s if len(s) <= max_len else s[: max_len - 3] + "..."


_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _check_inert(lines: list[str]) -> None:
    # Defence in depth: whatever a future change interpolates, a line with a control character,
    # a non-ASCII character or an ngspice '*#' control comment never leaves compile_netlist.
    for n, ln in enumerate(lines, 1):
        if not (ln.isascii() and ln.isprintable()) or ln.startswith("*#"):
            raise InvalidInputError(f"Line {n} of the netlist would not be inert: {spice_comment_text(ln, 80)!r}; "
                                    "text must reach a netlist through spice_comment_text.")


def _title_line(title: str) -> str:
    # The first line of a netlist is its title. ngspice treats a title starting with '*ng_script'
    # as a control script, so a title is made inert and always starts with a letter or digit.
    s = spice_comment_text(title)
    return s if s[:1].isalnum() else "deepcircuit netlist: " + s


def _option_text(key: object, value: object) -> str:
    """One ``key=value`` of an ``.options`` card; keys are identifiers, values numbers or words."""
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", key):
        raise InvalidInputError(f"An ngspice option name must be a word like 'reltol'; got {key!r}.")
    if isinstance(value, str):
        if not re.fullmatch(r"[A-Za-z0-9_.+-]{1,32}", value):
            raise InvalidInputError(
                f"The ngspice option {key}= must be a number or a word of letters, digits, '.', '+', '-', "
                f"'_'; got {value!r}.")
        return f"{key}={value}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"The ngspice option {key}= must be a number or a word; got {value!r}.")
    if isinstance(value, (int, np.integer)) and abs(int(value)) < 10 ** 15:
        return f"{key}={int(value)}"  # an integer option (seed) stays an integer
    return f"{key}={_num(value)}"


def copy_prefix(s: int, p: int) -> str:
    """Prefix of the nodes and elements of network ``s``, presentation ``p``."""
    return f"s{s}p{p}"


def compile_netlist(networks, inputs, initial, schedule, *, targets=None,
                    units: CircuitUnits | None = None, clamp: "str | ClampModel" = DEFAULT_CLAMP,
                    nonideal: NonIdealities | None = None, title: str | None = None,
                    control: bool = False, options: Mapping[str, float] | None = None,
                    max_step: float | None = None, first_network: int = 0,
                    transconductor: "str | TransconductorModel | None" = None) -> Netlist:
    """Compile a batch, its inputs, initial states and schedule into one netlist.

    Every network of the batch and every presentation gets its own copy of the circuit, so one
    transient simulates a whole phase pair: the free phase from ``initial`` (``.ic``, ``uic``),
    then, when ``targets`` are given and ``schedule.nudged_steps > 0``, the nudged phase switched
    on inside the same transient.

    Parameters
    ----------
    networks : Network, NetworkBatch or sequence
    inputs : array (P, n_inputs)
        Clamped inputs with the bias column last (states; volts = state * ``v_scale``).
    initial : array (S, P, N)
        Initial states (the input columns are ignored).
    schedule : Schedule
        ``dt`` (tau) is the print step and largest time step; phase lengths in steps of ``dt``.
    targets : array (P, n_outputs), optional
    units, clamp, nonideal
        See :class:`CircuitUnits`, :class:`ClampModel`, :class:`NonIdealities`.
    title : str, optional
        First line of the netlist.
    control : bool
        Add a ``.control`` block that runs the transient, resamples it onto the ``dt`` grid
        (``linearize``) and prints every free node voltage: for plain ``ngspice -b``.
    options : mapping, optional
        Extra ``.options`` (for example ``{"reltol": 1e-4}``).
    max_step : float, optional
        Largest internal time step (tau); default ``schedule.dt``.
    first_network : int
        Index of the batch's first network in a larger batch split over several netlists (it
        selects the mismatch draw; node names stay local to this netlist).
    transconductor : "vccs", "ota" or TransconductorModel
        The synapse model (:class:`TransconductorModel`); default the ideal VCCS.
    """
    batch = NetworkBatch.of(networks)
    roles = batch.roles
    units = units or CircuitUnits()
    clamp = ClampModel.of(clamp)
    nonideal = nonideal or NonIdealities()
    ota = TransconductorModel.of(transconductor)
    S, N = len(batch), roles.n_neurons
    inputs = check_array("inputs", inputs, shape=(None, roles.n_inputs))
    P = inputs.shape[0]
    initial = check_array("initial", initial, shape=(S, P, N))
    if targets is not None:
        targets = check_array("targets", targets, shape=(P, roles.n_outputs))
    nudged = targets is not None and schedule.nudged_steps > 0
    fam = batch.family
    if fam not in ("deep", "deep-leaky", "ep-asym", "ep-sym"):  # pragma: no cover - future families
        raise InvalidInputError(f"No circuit reading for the {fam!r} family.")
    conserving = fam in ("deep", "deep-leaky")
    gamma = float(batch.params.get("gamma", 0.0)) if fam == "deep-leaky" else 0.0

    clamp.check_fits(units)
    g, Vs, tau = units.transconductance, units.v_scale, units.tau
    dt_s = schedule.dt * tau
    free_end = schedule.free_steps * dt_s
    stop = free_end + (schedule.nudged_steps * dt_s if nudged else 0.0)
    step_s = (max_step if max_step is not None else schedule.dt) * tau
    from ..limits import MIN_NETLIST_STEP_SECONDS

    if not min(dt_s, step_s) >= MIN_NETLIST_STEP_SECONDS:
        raise InvalidInputError(
            f"The netlist time step dt * tau = {min(dt_s, step_s):.3g} s is below the limit "
            f"MIN_NETLIST_STEP_SECONDS = {MIN_NETLIST_STEP_SECONDS:g} s (deepcircuit.limits); ngspice cannot "
            "integrate it. Use a larger dt or tau = C / g.")
    names = roles.names
    # Neuron names become node and element names: identifiers only, whatever produced them.
    odd = [n for n in names if not _IDENTIFIER.fullmatch(n)]
    if odd:
        raise InvalidInputError(f"Neuron names must be identifiers ([A-Za-z][A-Za-z0-9_]*) in a netlist; got {odd[0]!r}.")
    free = list(range(roles.n_inputs, N))
    outputs = list(range(N - roles.n_outputs, N))
    W_nom = batch.weights
    with np.errstate(over="ignore", invalid="ignore"):  # inf is refused with a clear message when written (_num)
        W = nonideal.quantize(W_nom) * nonideal.mismatch_factors(S, N, check_int("first_network", first_network, low=0))
    v_os = ota.offsets(S, N, first_network) if ota.kind == "ota" else None
    supplied = ota.kind == "ota" or clamp.kind == "precision"  # active parts: a VDD per array
    mask = batch.mask
    bias = batch.bias

    L: list[str] = []
    add = L.append
    add(_title_line(title or f"deepcircuit {fam} network(s): {S} network(s) x {P} presentation(s)"))
    add(f"* Generated by deepcircuit. Family {fam!r}; neurons {', '.join(names)}.")
    add(f"* Units: V_scale = {_num(Vs)} V (state 1.0), C = {_num(units.capacitance)} F, "
        f"g = {_num(g)} S, tau = C/g = {_num(tau)} s.")
    add(f"* Schedule: dt = {_num(schedule.dt)} tau, free phase {schedule.free_steps} steps "
        f"(0 .. {_num(free_end)} s)" + (f", nudged phase {schedule.nudged_steps} steps with "
                                        f"beta = {_num(schedule.beta)} (.. {_num(stop)} s)" if nudged else ""))
    add(f"* Clamp: {clamp.kind}" + (" (model DCLAMP)" if clamp.kind == "diode"
                                     else f" (B source, stiffness {_num(clamp.stiffness)} g)" if clamp.kind == "limiter"
                                     else f" (op-amp gain {_num(clamp.opamp_gain)} driving model DPREC, "
                                          f"quiescent {_num(clamp.opamp_quiescent)} A per op-amp)"))
    if ota.kind == "ota":
        add(f"* Synapses: OTA, linear range {_num(ota.linear_range)} V_scale, gain gm*r_out {_num(ota.gain)}, "
            f"offset {_num(ota.offset)} V rms (seed {ota.seed}), quiescent {_num(ota.branches)} x I_bias")
    if supplied:
        add(f"* Supply: VDD = {_num(units.vdd)} V, one source V_dd_<copy> per array.")
    if not nonideal.ideal:
        add(f"* Non-idealities: mismatch {_num(nonideal.mismatch)}, bits {nonideal.bits}, weight range "
            f"{_num(nonideal.weight_range)}, parasitic C {_num(nonideal.parasitic_capacitance)} F, "
            f"noise {_num(nonideal.noise)} g*V_scale rms, seed {nonideal.seed}")
    opts = {"method": "gear"}
    if nonideal.noise > 0:
        opts["seed"] = nonideal.seed
    opts.update(options or {})
    add(".options " + " ".join(_option_text(k, v) for k, v in opts.items()))
    if clamp.kind in ("diode", "precision"):
        add(clamp.model_line())
    # beta = 0: the nudged phase runs on with no nudge at all, so no nudge elements (an open
    # circuit), rather than a 1 / 0 resistance.
    nudge_on = nudged and schedule.beta > 0
    if nudge_on:
        r_nudge = 1.0 / (g * schedule.beta) if g * schedule.beta > 0 else float("inf")
        if not np.isfinite(r_nudge):
            raise InvalidInputError(
                f"beta = {schedule.beta!r} is too small for a circuit: the nudge resistance 1/(g*beta) is "
                "not a finite number; use beta = 0 (no nudge) or a larger beta.")
        add(".model SWNUDGE SW(VT=0.5 VH=0 RON=1e-3 ROFF=1e12)")
    add(f"V_rail_hi rail_hi 0 DC {_num(Vs)}")
    if nudge_on:
        rise = _SWITCH_RISE * dt_s
        add(f"* Nudge control: 0 V in the free phase, 1 V from {_num(free_end)} s (closes every S_nudge).")
        add(f"V_nudge_ctl nudge_ctl 0 PWL(0 0 {_num(free_end)} 0 {_num(free_end + rise)} 1)")
    noise_dt = (nonideal.noise_interval or schedule.dt) * tau

    nodes: list[str] = []
    ic_volts: list[float] = []
    ics: list[str] = []
    supplies: list[str] = []  # V_dd source per copy, in (network, presentation) order
    quiescent: list[float] = []  # static supply current per copy (A)
    meas: list[str] = []
    source_ics: list[str] = []
    for s in range(S):
        edges = [(int(i), int(j)) for i, j in np.argwhere(mask[s])]
        for p in range(P):
            cp = copy_prefix(s, p)
            node = [f"{cp}_{n}" for n in names]
            x = inputs[p]
            head = f"* ---- network {s}, presentation {p}: inputs " + " ".join(
                f"{names[k]}={_num(x[k])}" for k in range(roles.n_inputs))
            if nudged:
                head += "; targets " + " ".join(f"{names[o]}={_num(targets[p, k])}" for k, o in enumerate(outputs))
            add(head)
            for k in range(roles.n_inputs):
                kind = "V_bias" if k == roles.bias_index else "V_in"
                elem = f"{kind}_{cp}" if k == roles.bias_index else f"{kind}_{cp}_{names[k]}"
                add(f"{elem} {node[k]} 0 DC {_num(x[k] * Vs)}")
            for j in free:
                add(f"C_{cp}_{names[j]} {node[j]} 0 {_num(units.capacitance)}")
                if nonideal.parasitic_capacitance > 0:
                    add(f"C_par_{cp}_{names[j]} {node[j]} 0 {_num(nonideal.parasitic_capacitance)}")
                if clamp.kind == "diode":
                    add(f"D_lo_{cp}_{names[j]} 0 {node[j]} DCLAMP")
                    add(f"D_hi_{cp}_{names[j]} {node[j]} rail_hi DCLAMP")
                elif clamp.kind == "limiter":
                    add(f"B_lim_{cp}_{names[j]} {node[j]} 0 I = {_num(g * clamp.stiffness)}*"
                        f"(uramp(V({node[j]})-{_num(Vs)}) - uramp(-V({node[j]})))")
                else:
                    L.extend(_precision_clamp(cp, names[j], node[j], Vs, clamp))
                if gamma > 0:
                    add(f"R_leak_{cp}_{names[j]} {node[j]} 0 {_num(1.0 / (g * gamma))}")
                if not conserving:
                    add(f"R_decay_{cp}_{names[j]} {node[j]} 0 {_num(1.0 / g)}")
                    if bias[s, j] != 0:
                        add(f"* bias b[{names[j]}] = {_num(bias[s, j])}")
                        add(f"I_bias_{cp}_{names[j]} 0 {node[j]} DC {_num(g * bias[s, j] * Vs)}")
                if nonideal.noise > 0:
                    add(f"I_noise_{cp}_{names[j]} 0 {node[j]} DC 0 TRNOISE({_num(nonideal.noise * g * Vs)} "
                        f"{_num(noise_dt)} 0 0)")
            g_out = np.zeros(N)  # OTA output conductances at each node (S)
            i_q = 0.0
            for i, j in edges:
                w_nom = W_nom[s, i, j]
                gm = g * W[s, i, j]
                src = node[i] if conserving else "0"
                add(f"* {names[i]} -> {names[j]}: W = {_num(w_nom)}"
                    + ("" if W[s, i, j] == w_nom else f" (realised {_num(W[s, i, j])})"))
                if ota.kind == "vccs":
                    add(f"G_syn_{cp}_{names[i]}_{names[j]} {src} {node[j]} {node[i]} 0 {_num(gm)}")
                    continue
                v_lin = ota.linear_range * Vs
                add(f"B_syn_{cp}_{names[i]}_{names[j]} {src} {node[j]} I = {_num(gm * v_lin)}*"
                    f"tanh((V({node[i]})+{_num(v_os[s, i, j])})/{_num(v_lin)})")
                g_out[j] += abs(gm) / ota.gain
                if conserving:
                    g_out[i] += abs(gm) / ota.gain
                i_q += ota.branches * abs(gm) * v_lin
            for j in free:
                if g_out[j] > 0:
                    add(f"R_out_{cp}_{names[j]} {node[j]} 0 {_num(1.0 / g_out[j])}")
            if supplied:
                if clamp.kind == "precision":
                    i_q += 2 * len(free) * clamp.opamp_quiescent
                    # The lower clamp's op-amp sources the current it pushes into its node from VDD.
                    add(f"B_sup_clamp_{cp} vdd_{cp} 0 I = " + " + ".join(
                        f"max(-i(B_oplo_{cp}_{names[j]}),0)" for j in free))
                add(f"V_dd_{cp} vdd_{cp} 0 DC {_num(units.vdd)}")
                add(f"I_q_{cp} vdd_{cp} 0 DC {_num(i_q)}")
                supplies.append(f"v_dd_{cp}")
                quiescent.append(i_q)
                meas.append(f".meas tran q_free_{cp} INTEG i(V_dd_{cp}) from=0 to={_num(free_end)}")
                if nudged:
                    meas.append(f".meas tran q_nudged_{cp} INTEG i(V_dd_{cp}) from={_num(free_end)} to={_num(stop)}")
            if nudge_on:
                for k, o in enumerate(outputs):
                    add(f"V_target_{cp}_{names[o]} {node[o]}_tgt 0 DC {_num(targets[p, k] * Vs)}")
                    add(f"R_nudge_{cp}_{names[o]} {node[o]} {node[o]}_nsw {_num(r_nudge)}")
                    add(f"S_nudge_{cp}_{names[o]} {node[o]}_nsw {node[o]}_tgt nudge_ctl 0 SWNUDGE")
            ics.append(".ic " + " ".join(f"V({node[j]})={_num(initial[s, p, j] * Vs)}" for j in free))
            # The sources' nodes too: with uic there is no operating point, so a node left out
            # starts at 0 V and its source steps it at t = 0 through the clamp diodes, which
            # ngspice cannot follow at large V_scale ("Timestep too small" at t = 0).
            src_ic = [f"V({node[k]})={_num(x[k] * Vs)}" for k in range(roles.n_inputs)]
            if nudged:
                src_ic += [f"V({node[o]}_tgt)={_num(targets[p, k] * Vs)} V({node[o]}_nsw)="
                           f"{_num(initial[s, p, o] * Vs)}" for k, o in enumerate(outputs)]
            if supplied:  # the supply, and the precision clamps' op-amp outputs at their t = 0 values
                src_ic.append(f"V(vdd_{cp})={_num(units.vdd)}")
            if clamp.kind == "precision":
                src_ic += _precision_clamp_ic(node, free, initial[s, p] * Vs, Vs, clamp)
            source_ics.append(".ic " + " ".join(src_ic))
            nodes.extend(node[j].lower() for j in free)
            ic_volts.extend(initial[s, p, j] * Vs for j in free)
    add("* Initial conditions: the initial states times V_scale.")
    L.extend(ics)
    add("* Initial conditions of the rail, input, bias and target nodes (their sources' values).")
    add(f".ic V(rail_hi)={_num(Vs)}")
    L.extend(source_ics)
    add(".save " + " ".join([f"v({n})" for n in nodes] + [f"i({v})" for v in supplies]))
    if meas:
        add("* Charge drawn from each supply (C; negative = drawn), per phase: energy = -VDD * q.")
        L.extend(meas)
    add(f".tran {_num(dt_s)} {_num(stop)} 0 {_num(step_s)} uic")
    if control:
        add(".control")
        add("set width=100000")
        add("set nobreak")
        add("run")
        add("linearize")
        # ngspice's print takes at most about 1000 vectors ("print: too many args." and no rows
        # above that, with exit status 0): print the nodes in tables of PRINT_CHUNK columns.
        # read_printed_tables() reads them back and checks every row and column.
        for k in range(0, len(nodes), PRINT_CHUNK):
            add("print " + " ".join(f"v({n})" for n in nodes[k:k + PRINT_CHUNK]))
        add("quit")
        add(".endc")
    add(".end")
    _check_inert(L)
    devices = [device_counts(L, copy_prefix(s, 0)) for s in range(S)] if P else []
    return Netlist("\n".join(L) + "\n", nodes, (S, P, N), roles.n_inputs, units, free_end, stop, dt_s,
                   {"clamp": clamp.kind, "family": fam, "initial_volts": np.array(ic_volts),
                    "transconductor": ota.kind, "supplies": supplies, "vdd": units.vdd if supplied else None,
                    "quiescent_current": np.array(quiescent), "devices": devices})


#: Element-name prefixes of the devices of one array, by kind (see :func:`device_counts`).
#: ``R_out`` (an OTA's own output resistance), ``I_q`` / ``B_sup_clamp`` (the quiescent and clamp
#: supply currents) and ``I_noise`` are models of other devices, not devices; ``B_oplo`` / ``B_ophi``
#: (a precision clamp's op-amps) are counted with their diode as one clamp.
DEVICE_PREFIXES = {
    "transconductors": ("G_syn_", "B_syn_"),
    "capacitors": ("C_",),
    "switches": ("S_nudge_",),
    "clamps": ("D_lo_", "D_hi_", "D_plo_", "D_phi_", "B_lim_"),
    "resistors": ("R_nudge_", "R_leak_", "R_decay_"),
    "sources": ("V_in_", "V_bias_", "V_target_", "V_dd_", "I_bias_"),
}


def device_counts(lines, copy: str) -> dict[str, int]:
    """Devices of one array (the elements of copy ``copy``, e.g. ``"s0p0"``), by kind.

    A ``B_lim`` limiter clamps both rails and counts as two clamps (one per rail, like the diodes);
    the shared ``V_rail_hi`` and ``V_nudge_ctl`` count once as sources.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    out = {k: 0 for k in DEVICE_PREFIXES}
    tag_mid, tag_end = f"_{copy}_", f"_{copy}"
    for ln in lines:
        name = ln.split(" ", 1)[0]
        if not name or name[0] in "*." or not (tag_mid in name + "_" or name.endswith(tag_end)):
            continue
        for kind, prefixes in DEVICE_PREFIXES.items():
            if name.startswith(prefixes):
                out[kind] += 2 if name.startswith("B_lim_") else 1
                break
    out["sources"] += sum(1 for ln in lines if ln.startswith(("V_rail_hi ", "V_nudge_ctl ")))
    return out


def _precision_clamp_ic(node, free, volts, v_hi: float, clamp: ClampModel) -> list[str]:
    """``.ic`` terms of the precision clamps' op-amp outputs for node voltages ``volts``."""
    a, sw = clamp.opamp_gain, clamp.opamp_swing
    out = []
    for j in free:
        v = float(volts[j])
        out.append(f"V({node[j]}_oplo)={_num(sw * np.tanh(a * (0.0 - v) / sw))} "
                   f"V({node[j]}_ophi)={_num(v_hi + sw * np.tanh(a * (v_hi - v) / sw))}")
    return out


def _precision_clamp(cp: str, name: str, node: str, v_hi: float, clamp: ClampModel) -> list[str]:
    """The two op-amp driven diodes of a precision clamp at ``node`` (see :class:`ClampModel`)."""
    a, sw = _num(clamp.opamp_gain), _num(clamp.opamp_swing)
    return [f"B_oplo_{cp}_{name} {node}_oplo 0 V = {sw}*tanh({a}*(0-V({node}))/{sw})",
            f"D_plo_{cp}_{name} {node}_oplo {node} DPREC",
            f"B_ophi_{cp}_{name} {node}_ophi 0 V = {_num(v_hi)}+{sw}*tanh({a}*({_num(v_hi)}-V({node}))/{sw})",
            f"D_phi_{cp}_{name} {node} {node}_ophi DPREC"]


def standalone_netlist(network, task, *, schedule=None, seed: int = 0, state_init_high: float = 0.1,
                       nudged: bool = True, units: CircuitUnits | None = None,
                       clamp: "str | ClampModel" = DEFAULT_CLAMP, nonideal: NonIdealities | None = None,
                       title: str | None = None, options: Mapping[str, float] | None = None,
                       transconductor: "str | TransconductorModel | None" = None) -> Netlist:
    """A netlist of one network on every presentation of ``task`` that plain ``ngspice -b`` runs.

    The initial free states are drawn from ``Uniform(0, state_init_high)`` with ``seed`` (as in
    training); the netlist has its own ``.tran`` analysis, ``.ic`` lines and a ``.control`` block
    that prints every free node voltage on the ``dt`` grid. ``nudged=False`` leaves out the nudged
    phase (a free-phase inference circuit).
    """
    from .base import Schedule, initial_states
    from ..data.tasks import get_task

    task = get_task(task)
    schedule = schedule or Schedule()
    roles = network.roles
    if task.n_inputs != roles.n_inputs or task.n_outputs != roles.n_outputs:
        raise InvalidInputError(
            f"Task {task.name!r} has {task.n_inputs} inputs (bias included) and {task.n_outputs} outputs, "
            f"but the network has {roles.n_inputs} and {roles.n_outputs}.")
    s0 = initial_states(np.random.default_rng(check_int("seed", seed, low=0)), 1, task.inputs, roles,
                        state_init_high)
    opts = {"reltol": 1e-4, **dict(options or {})}
    return compile_netlist(network, task.inputs, s0, schedule,
                           targets=task.targets if nudged else None, units=units, clamp=clamp,
                           nonideal=nonideal, title=title, control=True, options=opts,
                           transconductor=transconductor)
