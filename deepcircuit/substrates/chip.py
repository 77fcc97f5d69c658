"""The chip: one description of a circuit's hardware, read by every solver of it.

The SPICE netlist (:mod:`.circuit`) and the ODE substrate (:mod:`.ode`) read the same objects,
so ``ode:mismatch=0.3;seed=1`` and ``spice:mismatch=0.3;seed=1`` are the same chip (the same
draw per network index and connection):

* :class:`CircuitUnits`: ``V_scale`` (volts of state 1.0), ``C``, ``g`` and the supply.
* :class:`NonIdealities`: transconductance mismatch and its seed, weight quantization (bits,
  range), parasitic capacitance, noise.
* :class:`TransconductorModel`: the synapse's element law, an ideal VCCS or an OTA (tanh
  transfer, per-synapse input offsets, output conductance).
* :class:`Chip`: the three together, built from the flat options a substrate spec writes as
  text (:data:`CHIP_OPTIONS`), with the element laws in state units (1.0 = ``V_scale``, time in
  ``tau = C / g``) that the ODE integrates.

The clamp to the rails (:class:`~deepcircuit.substrates.clamps.ClampModel`) is a circuit
element with no ODE counterpart other than the exact projection onto [0, 1], so it stays with the
netlist compiler; so does noise (the ODE is deterministic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .._validation import check_choice, check_int, check_real
from ..errors import InvalidInputError

TRANSCONDUCTOR_KINDS = ("vccs", "ota")
#: Largest relative transconductance mismatch: a Gaussian error of more would reverse the sign of
#: over 2 % of the devices (``1 + m N(0, 1) < 0``), and no longer describes a device's error.
MAX_MISMATCH = 0.5
#: Families whose synapses take their current out of the presynaptic node (DEEP's inflow minus
#: outflow); the EP families inject it from ground.
CONSERVING_FAMILIES = ("deep", "deep-leaky")


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
        per synapse from ``seed`` and shared by all presentation copies: one chip), at most
        ``MAX_MISMATCH`` (0.5): above it more than 2 % of the draws would reverse a device's sign.
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
        if self.mismatch > MAX_MISMATCH:
            share = 50.0 * math.erfc(1.0 / (self.mismatch * math.sqrt(2.0)))  # P(1 + m N(0,1) < 0), %
            raise InvalidInputError(
                f"A mismatch of {self.mismatch!r} would reverse the sign of {share:.2g} % of the "
                f"transconductors (1 + mismatch * N(0, 1) < 0), which a device error cannot do; "
                f"allowed: 0 <= mismatch <= {MAX_MISMATCH}.")
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
        """Transconductance errors ``max(0, 1 + mismatch * N(0, 1))``, shape ``(S, N, N)``.

        Network ``k`` of a batch (``first + k`` overall) draws from its own generator seeded by
        ``(seed, first + k)``, so its chip does not depend on how the batch is split into runs.
        A draw below 0 would reverse the device's sign, which an error of its transconductance
        cannot do: such a device (1 in 2300 at mismatch 0.3, 2-6 of a digits network's 8620;
        1 in 3.5 million at 0.2) is floored at 0, a transconductor that conducts nothing.
        """
        shape = (n_neurons, n_neurons)
        if self.mismatch == 0:
            return np.ones((n_networks,) + shape)
        return np.stack([np.maximum(0.0, 1.0 + self.mismatch
                                    * np.random.default_rng([self.seed, first + k]).standard_normal(shape))
                         for k in range(n_networks)])

    def effective_weights(self, W: np.ndarray, mask: np.ndarray | None = None, first: int = 0) -> np.ndarray:
        """The weights the chip realises for programmed weights ``W (S, N, N)``: ``quantize(W) *``
        :meth:`mismatch_factors` (network ``k`` of the batch is network ``first + k`` of the draw),
        zero off ``mask``. The netlist's transconductances are ``g`` times these."""
        W = np.asarray(W, dtype=float)
        S, N = W.shape[0], W.shape[-1]
        with np.errstate(over="ignore", invalid="ignore"):  # absurd values are refused where used
            W_eff = self.quantize(W) * self.mismatch_factors(S, N, first)
        return W_eff if mask is None else np.where(mask, W_eff, 0.0)

    def quantize(self, W: np.ndarray) -> np.ndarray:
        """Weights as the circuit realises them (quantized when ``bits`` is set)."""
        if self.bits is None:
            return np.asarray(W, dtype=float)
        r = self.weight_range
        step = 2.0 * r / (2 ** self.bits - 1)
        return np.round((np.clip(W, -r, r) + r) / step) * step - r


#: The options that describe a chip, written flat in a substrate spec (``spice:mismatch=0.3;seed=1``)
#: or as keyword arguments. A substrate that cannot model one of them refuses it by name
#: (:func:`deepcircuit.substrates.check_substrate_options`). ``clamp`` and ``opamp_gain`` are the
#: SPICE clamp's (the ODE's bound is the exact projection).
CHIP_OPTIONS = ("mismatch", "seed", "bits", "weight_range", "parasitic_capacitance", "noise", "noise_interval",
                "transconductor", "ota_linear_range", "ota_gain", "ota_offset", "clamp", "opamp_gain",
                "units", "nonideal")


@dataclass(frozen=True)
class Chip:
    """One chip: its units, non-idealities and synapse model (see the module docstring).

    Build it with :meth:`from_options`, which takes the flat options of a substrate spec. The
    element laws below are in state units: a synapse ``i -> j`` of programmed weight ``W[i, j]``
    puts the current (units of ``g * V_scale``) ``w * s_i`` (VCCS) or
    ``w * L * tanh((s_i + o_ij) / L)`` (OTA, ``L`` = ``linear_range``, ``o_ij`` its input offset
    over ``V_scale``) into ``j``, with ``w = quantize(W) * (1 + mismatch * N(0, 1))`` the realised
    weight; DEEP's synapses take the same current out of ``i``. An OTA's output conductance
    ``|w| / gain`` loads both its nodes (one node for the EP families).
    """

    units: CircuitUnits = field(default_factory=CircuitUnits)
    nonideal: NonIdealities = field(default_factory=NonIdealities)
    transconductor: TransconductorModel = field(default_factory=TransconductorModel)

    @classmethod
    def from_options(cls, *, units: "CircuitUnits | None" = None, nonideal: "NonIdealities | None" = None,
                     transconductor: "str | TransconductorModel | None" = None,
                     mismatch: float | None = None, seed: int | None = None, bits: int | None = None,
                     weight_range: float | None = None, parasitic_capacitance: float | None = None,
                     noise: float | None = None, noise_interval: float | None = None,
                     ota_linear_range: float | None = None, ota_gain: float | None = None,
                     ota_offset: float | None = None) -> "Chip":
        """A chip from objects and/or flat options; a flat option overrides the object's field.

        ``seed`` seeds every draw of the chip: the mismatch and noise (``NonIdealities.seed``) and
        the OTA offsets (``TransconductorModel.seed``). The ``ota_*`` options need
        ``transconductor="ota"``.
        """
        units = units or CircuitUnits()
        nonideal = nonideal or NonIdealities()
        ota = TransconductorModel.of(transconductor)
        flat = {k: v for k, v in {"mismatch": mismatch, "seed": seed, "bits": bits, "weight_range": weight_range,
                                  "parasitic_capacitance": parasitic_capacitance, "noise": noise,
                                  "noise_interval": noise_interval}.items() if v is not None}
        if flat:
            nonideal = replace(nonideal, **flat)
        ota_params = {k: v for k, v in {"linear_range": ota_linear_range, "gain": ota_gain,
                                        "offset": ota_offset, "seed": seed}.items() if v is not None}
        if set(ota_params) - {"seed"} and ota.kind != "ota":
            raise InvalidInputError("The ota_* options (ota_linear_range, ota_gain, ota_offset) need "
                                    "transconductor='ota'.")
        if ota_params:
            ota = replace(ota, **ota_params)
        return cls(units, nonideal, ota)

    @property
    def ideal(self) -> bool:
        """No non-ideality at all: the model's own equations."""
        return self.nonideal.ideal and self.transconductor.kind == "vccs"

    @property
    def nonlinear(self) -> bool:
        """Synapses with a nonlinear law (OTA): the dynamics are no longer ``s @ A + c - d * s``."""
        return self.transconductor.kind == "ota"

    @property
    def rate(self) -> float:
        """``C / (C + C_par)``: parasitic capacitance slows every free node by this factor."""
        c = self.units.capacitance
        return c / (c + self.nonideal.parasitic_capacitance)

    def describe(self) -> dict:
        """The chip's settings as plain values (for JSON and run records)."""
        ni, ota = self.nonideal, self.transconductor
        out = {"mismatch": ni.mismatch, "seed": ni.seed, "bits": ni.bits, "weight_range": ni.weight_range,
               "parasitic_capacitance": ni.parasitic_capacitance, "noise": ni.noise,
               "transconductor": ota.kind, "v_scale": self.units.v_scale}
        if ota.kind == "ota":
            out.update(ota_linear_range=ota.linear_range, ota_gain=ota.gain, ota_offset=ota.offset,
                       ota_seed=ota.seed)
        return out

    def effective_weights(self, W: np.ndarray, mask: np.ndarray, first: int = 0) -> np.ndarray:
        """The realised weights ``(S, N, N)`` of programmed weights ``W`` (zero off ``mask``);
        a non-finite value (an absurd mismatch or range) is refused."""
        W_eff = self.nonideal.effective_weights(W, mask, first)
        if not np.all(np.isfinite(W_eff)):
            raise InvalidInputError(
                f"The chip's realised weights are not finite (mismatch {self.nonideal.mismatch!r}, weight "
                f"range {self.nonideal.weight_range!r}); use a mismatch that is a fraction, like 0.1.")
        return W_eff

    def offsets(self, n_networks: int, n_neurons: int, first: int = 0) -> np.ndarray:
        """The OTA input offsets ``(S, N, N)`` in units of ``V_scale`` (zeros for a VCCS)."""
        if self.transconductor.kind != "ota":
            return np.zeros((n_networks, n_neurons, n_neurons))
        return self.transconductor.offsets(n_networks, n_neurons, first) / self.units.v_scale

    def output_conductance(self, W_eff: np.ndarray, mask: np.ndarray, conserving: bool) -> np.ndarray:
        """The OTAs' lumped output conductance at every node, ``(S, N)`` in units of ``g``
        (zeros for a VCCS): ``sum |w| / gain`` over the synapses whose output is at the node."""
        S, N = W_eff.shape[0], W_eff.shape[-1]
        if self.transconductor.kind != "ota":
            return np.zeros((S, N))
        a = np.where(mask, np.abs(W_eff), 0.0) / self.transconductor.gain
        return a.sum(axis=-2) + (a.sum(axis=-1) if conserving else 0.0)

    def synapse_law(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(f(u), f'(u))`` of the synapse's transfer for input ``u = s_i + o_ij`` (state units):
        ``u`` (VCCS) or ``L * tanh(u / L)`` (OTA); the current is ``w * f(u)``."""
        if self.transconductor.kind != "ota":
            return u, np.ones_like(u)
        L = self.transconductor.linear_range
        t = np.tanh(u / L)
        return L * t, 1.0 - t * t

    def velocity(self, s: np.ndarray, W_eff: np.ndarray, mask: np.ndarray, offsets: np.ndarray,
                 c: np.ndarray, d: np.ndarray, conserving: bool) -> np.ndarray:
        """The unbounded field ``ds/dt`` (1/tau) of the chip for states ``s (S, P, N)``.

        ``W_eff``, ``offsets`` as from :meth:`effective_weights` / :meth:`offsets`; ``c``, ``d``
        ``(S, N)`` the non-synaptic part of the family (bias, decay, leak: its ``linear_form``
        at zero weights) plus the output conductance. Dense numpy (for the adaptive integrator
        and the gradient check; the Euler engine has a compiled twin over the synapses).
        """
        f, _ = self.synapse_law(s[:, :, :, None] + offsets[:, None])  # (S, P, N_pre, N_post)
        cur = np.where(mask[:, None], W_eff[:, None] * f, 0.0)
        v = cur.sum(axis=2) + c[:, None, :] - d[:, None, :] * s
        if conserving:
            v = v - cur.sum(axis=3)
        return self.rate * v
