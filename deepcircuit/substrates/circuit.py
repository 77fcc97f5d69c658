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
* Non-idealities (:class:`~deepcircuit.substrates.chip.NonIdealities`, the chip description
  the ODE substrate reads too): ``C_par_...`` parasitic capacitance, ``I_noise_...``
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

Where the pieces live: this module assembles the netlist (:func:`compile_netlist`, in named steps:
checked plan, header, one block per copy, footer) and exports one network on a task
(:func:`standalone_netlist`); the clamp models and their elements are in :mod:`.clamps`, safe
SPICE text (numbers, comments, ``.options``) in :mod:`.netlist_text`, the ``.control`` block of a
stand-alone netlist and reading its printed tables in :mod:`.printed_tables`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .._validation import check_array, check_int
from ..errors import InvalidInputError
from ..model.network import NetworkBatch
from .base import Schedule, initial_states
from .chip import CONSERVING_FAMILIES, CircuitUnits, NonIdealities, TransconductorModel
from .clamps import DEFAULT_CLAMP, ClampModel, clamp_elements, precision_clamp_ic
from .netlist_text import IDENTIFIER, check_inert, option_text, spice_number, title_line
from .printed_tables import control_block

#: Rise time of the nudge switch's control, as a fraction of the sampling interval dt.
_SWITCH_RISE = 1e-3


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


def copy_prefix(s: int, p: int) -> str:
    """Prefix of the nodes and elements of network ``s``, presentation ``p``."""
    return f"s{s}p{p}"


@dataclass(frozen=True, eq=False)
class _Plan:
    """Everything :func:`compile_netlist` derives from its arguments, checked, before writing a line.

    Times in seconds (``dt_s``, ``free_end``, ``stop``, ``step_s``, ``noise_dt``); ``W`` the chip's
    realised weights (``W_nom`` the programmed ones); ``v_os`` the OTAs' input offsets (volts);
    ``r_nudge`` the nudge resistance (ohm, ``inf`` when ``g * beta`` is not a usable number: refused
    when the header is written, so errors come in the order they always did).
    """

    batch: NetworkBatch
    units: CircuitUnits
    clamp: ClampModel
    nonideal: NonIdealities
    ota: TransconductorModel
    schedule: Schedule
    inputs: np.ndarray
    initial: np.ndarray
    targets: "np.ndarray | None"
    nudged: bool
    family: str
    conserving: bool
    gamma: float
    dt_s: float
    free_end: float
    stop: float
    step_s: float
    names: list
    free: list
    outputs: list
    W_nom: np.ndarray
    W: np.ndarray
    v_os: "np.ndarray | None"
    supplied: bool
    mask: np.ndarray
    bias: np.ndarray
    nudge_on: bool
    r_nudge: float
    noise_dt: float

    @property
    def roles(self):
        return self.batch.roles

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(S, P, N)``: networks, presentations, neurons."""
        return len(self.batch), self.inputs.shape[0], self.roles.n_neurons


def _plan(networks, inputs, initial, schedule, targets, units, clamp, nonideal, max_step, first_network,
          transconductor) -> _Plan:
    """The arguments of :func:`compile_netlist` checked, and the quantities its lines are made of."""
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
    gamma = float(batch.params.get("gamma", 0.0)) if fam == "deep-leaky" else 0.0

    clamp.check_fits(units)
    g, tau = units.transconductance, units.tau
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
    odd = [n for n in names if not IDENTIFIER.fullmatch(n)]
    if odd:
        raise InvalidInputError(f"Neuron names must be identifiers ([A-Za-z][A-Za-z0-9_]*) in a netlist; got {odd[0]!r}.")
    W_nom = batch.weights
    # The chip's realised weights (the ODE substrate reads the same; inf is refused when written, spice_number).
    W = nonideal.effective_weights(W_nom, None, check_int("first_network", first_network, low=0))
    # beta = 0: the nudged phase runs on with no nudge at all, so no nudge elements (an open
    # circuit), rather than a 1 / 0 resistance.
    nudge_on = nudged and schedule.beta > 0
    return _Plan(
        batch, units, clamp, nonideal, ota, schedule, inputs, initial, targets, nudged, fam,
        fam in CONSERVING_FAMILIES, gamma, dt_s, free_end, stop, step_s, names,
        free=list(range(roles.n_inputs, N)), outputs=list(range(N - roles.n_outputs, N)), W_nom=W_nom, W=W,
        v_os=ota.offsets(S, N, first_network) if ota.kind == "ota" else None,
        supplied=ota.kind == "ota" or clamp.kind == "precision",  # active parts: a VDD per array
        mask=batch.mask, bias=batch.bias, nudge_on=nudge_on,
        r_nudge=1.0 / (g * schedule.beta) if nudge_on and g * schedule.beta > 0 else float("inf"),
        noise_dt=(nonideal.noise_interval or schedule.dt) * tau)


def _header(plan: _Plan, title: str | None, options: Mapping[str, float] | None) -> list[str]:
    """Title, the comments that say what the netlist is, ``.options``, models and shared sources."""
    S, P, _ = plan.shape
    units, clamp, ota, nonideal, schedule = plan.units, plan.clamp, plan.ota, plan.nonideal, plan.schedule
    g, Vs, fam, free_end = units.transconductance, units.v_scale, plan.family, plan.free_end
    L = [title_line(title or f"deepcircuit {fam} network(s): {S} network(s) x {P} presentation(s)")]
    add = L.append
    add(f"* Generated by deepcircuit. Family {fam!r}; neurons {', '.join(plan.names)}.")
    add(f"* Units: V_scale = {spice_number(Vs)} V (state 1.0), C = {spice_number(units.capacitance)} F, "
        f"g = {spice_number(g)} S, tau = C/g = {spice_number(units.tau)} s.")
    add(f"* Schedule: dt = {spice_number(schedule.dt)} tau, free phase {schedule.free_steps} steps "
        f"(0 .. {spice_number(free_end)} s)" + (f", nudged phase {schedule.nudged_steps} steps with "
                                                f"beta = {spice_number(schedule.beta)} (.. {spice_number(plan.stop)} s)"
                                                if plan.nudged else ""))
    add(f"* Clamp: {clamp.kind}" + (" (model DCLAMP)" if clamp.kind == "diode"
                                     else f" (B source, stiffness {spice_number(clamp.stiffness)} g)" if clamp.kind == "limiter"
                                     else f" (op-amp gain {spice_number(clamp.opamp_gain)} driving model DPREC, "
                                          f"quiescent {spice_number(clamp.opamp_quiescent)} A per op-amp)"))
    if ota.kind == "ota":
        add(f"* Synapses: OTA, linear range {spice_number(ota.linear_range)} V_scale, gain gm*r_out "
            f"{spice_number(ota.gain)}, offset {spice_number(ota.offset)} V rms (seed {ota.seed}), quiescent "
            f"{spice_number(ota.branches)} x I_bias")
    if plan.supplied:
        add(f"* Supply: VDD = {spice_number(units.vdd)} V, one source V_dd_<copy> per array.")
    if not nonideal.ideal:
        add(f"* Non-idealities: mismatch {spice_number(nonideal.mismatch)}, bits {nonideal.bits}, weight range "
            f"{spice_number(nonideal.weight_range)}, parasitic C {spice_number(nonideal.parasitic_capacitance)} F, "
            f"noise {spice_number(nonideal.noise)} g*V_scale rms, seed {nonideal.seed}")
    opts = {"method": "gear"}
    if nonideal.noise > 0:
        opts["seed"] = nonideal.seed
    opts.update(options or {})
    add(".options " + " ".join(option_text(k, v) for k, v in opts.items()))
    if clamp.kind in ("diode", "precision"):
        add(clamp.model_line())
    if plan.nudge_on:
        if not np.isfinite(plan.r_nudge):
            raise InvalidInputError(
                f"beta = {schedule.beta!r} is too small for a circuit: the nudge resistance 1/(g*beta) is "
                "not a finite number; use beta = 0 (no nudge) or a larger beta.")
        add(".model SWNUDGE SW(VT=0.5 VH=0 RON=1e-3 ROFF=1e12)")
    add(f"V_rail_hi rail_hi 0 DC {spice_number(Vs)}")
    if plan.nudge_on:
        rise = _SWITCH_RISE * plan.dt_s
        add(f"* Nudge control: 0 V in the free phase, 1 V from {spice_number(free_end)} s (closes every S_nudge).")
        add(f"V_nudge_ctl nudge_ctl 0 PWL(0 0 {spice_number(free_end)} 0 {spice_number(free_end + rise)} 1)")
    return L


@dataclass
class _Gathered:
    """What the copies contribute to the end of the netlist and to :class:`Netlist`, in copy order."""

    nodes: list = field(default_factory=list)
    ic_volts: list = field(default_factory=list)
    ics: list = field(default_factory=list)
    source_ics: list = field(default_factory=list)
    supplies: list = field(default_factory=list)  # V_dd source per copy, in (network, presentation) order
    quiescent: list = field(default_factory=list)  # static supply current per copy (A)
    meas: list = field(default_factory=list)


def _copy_lines(plan: _Plan, s: int, p: int, edges: list, got: _Gathered) -> list[str]:
    """The elements of network ``s`` on presentation ``p``; its nodes, ``.ic`` values, supply
    and ``.meas`` lines go to ``got``."""
    roles, names, Vs = plan.roles, plan.names, plan.units.v_scale
    cp = copy_prefix(s, p)
    node = [f"{cp}_{n}" for n in names]
    x = plan.inputs[p]
    head = f"* ---- network {s}, presentation {p}: inputs " + " ".join(
        f"{names[k]}={spice_number(x[k])}" for k in range(roles.n_inputs))
    if plan.nudged:
        head += "; targets " + " ".join(f"{names[o]}={spice_number(plan.targets[p, k])}"
                                        for k, o in enumerate(plan.outputs))
    L = [head]
    for k in range(roles.n_inputs):
        kind = "V_bias" if k == roles.bias_index else "V_in"
        elem = f"{kind}_{cp}" if k == roles.bias_index else f"{kind}_{cp}_{names[k]}"
        L.append(f"{elem} {node[k]} 0 DC {spice_number(x[k] * Vs)}")
    for j in plan.free:
        L.extend(_node_elements(plan, s, cp, node[j], names[j], j))
    synapses, g_out, i_q = _synapses(plan, s, cp, node, edges)
    L.extend(synapses)
    for j in plan.free:
        if g_out[j] > 0:
            L.append(f"R_out_{cp}_{names[j]} {node[j]} 0 {spice_number(1.0 / g_out[j])}")
    if plan.supplied:
        L.extend(_supply(plan, cp, i_q, got))
    if plan.nudge_on:
        for k, o in enumerate(plan.outputs):
            L.append(f"V_target_{cp}_{names[o]} {node[o]}_tgt 0 DC {spice_number(plan.targets[p, k] * Vs)}")
            L.append(f"R_nudge_{cp}_{names[o]} {node[o]} {node[o]}_nsw {spice_number(plan.r_nudge)}")
            L.append(f"S_nudge_{cp}_{names[o]} {node[o]}_nsw {node[o]}_tgt nudge_ctl 0 SWNUDGE")
    _initial_conditions(plan, s, p, node, got)
    return L


def _node_elements(plan: _Plan, s: int, cp: str, node: str, name: str, j: int) -> list[str]:
    """Free neuron ``j``'s own elements: capacitor(s), clamp, leak or decay and bias, noise."""
    g, Vs, nonideal = plan.units.transconductance, plan.units.v_scale, plan.nonideal
    L = [f"C_{cp}_{name} {node} 0 {spice_number(plan.units.capacitance)}"]
    if nonideal.parasitic_capacitance > 0:
        L.append(f"C_par_{cp}_{name} {node} 0 {spice_number(nonideal.parasitic_capacitance)}")
    L.extend(clamp_elements(plan.clamp, cp, name, node, Vs, g))
    if plan.gamma > 0:
        L.append(f"R_leak_{cp}_{name} {node} 0 {spice_number(1.0 / (g * plan.gamma))}")
    if not plan.conserving:
        L.append(f"R_decay_{cp}_{name} {node} 0 {spice_number(1.0 / g)}")
        b = plan.bias[s, j]
        if b != 0:
            L.append(f"* bias b[{name}] = {spice_number(b)}")
            L.append(f"I_bias_{cp}_{name} 0 {node} DC {spice_number(g * b * Vs)}")
    if nonideal.noise > 0:
        L.append(f"I_noise_{cp}_{name} 0 {node} DC 0 TRNOISE({spice_number(nonideal.noise * g * Vs)} "
                 f"{spice_number(plan.noise_dt)} 0 0)")
    return L


def _synapses(plan: _Plan, s: int, cp: str, node: list, edges: list) -> tuple[list[str], np.ndarray, float]:
    """The synapses of network ``s`` in copy ``cp``: ``(lines, OTA output conductance at each node
    (S), quiescent current of the OTAs (A))``."""
    g, Vs, ota, names = plan.units.transconductance, plan.units.v_scale, plan.ota, plan.names
    L = []
    g_out = np.zeros(len(names))  # OTA output conductances at each node (S)
    i_q = 0.0
    for i, j in edges:
        w_nom = plan.W_nom[s, i, j]
        w = plan.W[s, i, j]
        gm = g * w
        src = node[i] if plan.conserving else "0"
        L.append(f"* {names[i]} -> {names[j]}: W = {spice_number(w_nom)}"
                 + ("" if w == w_nom else f" (realised {spice_number(w)})"))
        if ota.kind == "vccs":
            L.append(f"G_syn_{cp}_{names[i]}_{names[j]} {src} {node[j]} {node[i]} 0 {spice_number(gm)}")
            continue
        v_lin = ota.linear_range * Vs
        L.append(f"B_syn_{cp}_{names[i]}_{names[j]} {src} {node[j]} I = {spice_number(gm * v_lin)}*"
                 f"tanh((V({node[i]})+{spice_number(plan.v_os[s, i, j])})/{spice_number(v_lin)})")
        g_out[j] += abs(gm) / ota.gain
        if plan.conserving:
            g_out[i] += abs(gm) / ota.gain
        i_q += ota.branches * abs(gm) * v_lin
    return L, g_out, i_q


def _supply(plan: _Plan, cp: str, i_q: float, got: _Gathered) -> list[str]:
    """Copy ``cp``'s supply ``V_dd`` with the quiescent current ``i_q`` (A) of its OTAs (and
    op-amps) and the current of its precision clamps; its charge ``.meas`` lines go to ``got``."""
    L = []
    if plan.clamp.kind == "precision":
        i_q += 2 * len(plan.free) * plan.clamp.opamp_quiescent
        # The lower clamp's op-amp sources the current it pushes into its node from VDD.
        L.append(f"B_sup_clamp_{cp} vdd_{cp} 0 I = " + " + ".join(
            f"max(-i(B_oplo_{cp}_{plan.names[j]}),0)" for j in plan.free))
    L.append(f"V_dd_{cp} vdd_{cp} 0 DC {spice_number(plan.units.vdd)}")
    L.append(f"I_q_{cp} vdd_{cp} 0 DC {spice_number(i_q)}")
    got.supplies.append(f"v_dd_{cp}")
    got.quiescent.append(i_q)
    got.meas.append(f".meas tran q_free_{cp} INTEG i(V_dd_{cp}) from=0 to={spice_number(plan.free_end)}")
    if plan.nudged:
        got.meas.append(f".meas tran q_nudged_{cp} INTEG i(V_dd_{cp}) from={spice_number(plan.free_end)} "
                        f"to={spice_number(plan.stop)}")
    return L


def _initial_conditions(plan: _Plan, s: int, p: int, node: list, got: _Gathered) -> None:
    """The ``.ic`` lines of one copy (free nodes; source, target and op-amp nodes) into ``got``."""
    roles, Vs, free, initial = plan.roles, plan.units.v_scale, plan.free, plan.initial
    x = plan.inputs[p]
    got.ics.append(".ic " + " ".join(f"V({node[j]})={spice_number(initial[s, p, j] * Vs)}" for j in free))
    # The sources' nodes too: with uic there is no operating point, so a node left out
    # starts at 0 V and its source steps it at t = 0 through the clamp diodes, which
    # ngspice cannot follow at large V_scale ("Timestep too small" at t = 0).
    src_ic = [f"V({node[k]})={spice_number(x[k] * Vs)}" for k in range(roles.n_inputs)]
    if plan.nudged:
        src_ic += [f"V({node[o]}_tgt)={spice_number(plan.targets[p, k] * Vs)} V({node[o]}_nsw)="
                   f"{spice_number(initial[s, p, o] * Vs)}" for k, o in enumerate(plan.outputs)]
    if plan.supplied:  # the supply, and the precision clamps' op-amp outputs at their t = 0 values
        src_ic.append(f"V(vdd_{copy_prefix(s, p)})={spice_number(plan.units.vdd)}")
    if plan.clamp.kind == "precision":
        src_ic += precision_clamp_ic(node, free, initial[s, p] * Vs, Vs, plan.clamp)
    got.source_ics.append(".ic " + " ".join(src_ic))
    got.nodes.extend(node[j].lower() for j in free)
    got.ic_volts.extend(initial[s, p, j] * Vs for j in free)


def _footer(plan: _Plan, got: _Gathered, control: bool) -> list[str]:
    """Initial conditions, ``.save``, ``.meas``, ``.tran``, the ``.control`` block if asked, ``.end``."""
    Vs = plan.units.v_scale
    L = ["* Initial conditions: the initial states times V_scale."]
    L.extend(got.ics)
    L.append("* Initial conditions of the rail, input, bias and target nodes (their sources' values).")
    L.append(f".ic V(rail_hi)={spice_number(Vs)}")
    L.extend(got.source_ics)
    L.append(".save " + " ".join([f"v({n})" for n in got.nodes] + [f"i({v})" for v in got.supplies]))
    if got.meas:
        L.append("* Charge drawn from each supply (C; negative = drawn), per phase: energy = -VDD * q.")
        L.extend(got.meas)
    L.append(f".tran {spice_number(plan.dt_s)} {spice_number(plan.stop)} 0 {spice_number(plan.step_s)} uic")
    if control:
        L.extend(control_block(got.nodes))
    L.append(".end")
    return L


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
        See :class:`CircuitUnits`, :class:`~deepcircuit.substrates.clamps.ClampModel`,
        :class:`NonIdealities`.
    title : str, optional
        First line of the netlist.
    control : bool
        Add a ``.control`` block that runs the transient, resamples it onto the ``dt`` grid
        (``linearize``) and prints every free node voltage: for plain ``ngspice -b``
        (:mod:`deepcircuit.substrates.printed_tables`).
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
    plan = _plan(networks, inputs, initial, schedule, targets, units, clamp, nonideal, max_step, first_network,
                 transconductor)
    S, P, N = plan.shape
    L = _header(plan, title, options)
    got = _Gathered()
    for s in range(S):
        edges = [(int(i), int(j)) for i, j in np.argwhere(plan.mask[s])]
        for p in range(P):
            L.extend(_copy_lines(plan, s, p, edges, got))
    L.extend(_footer(plan, got, control))
    check_inert(L)
    devices = [device_counts(L, copy_prefix(s, 0)) for s in range(S)] if P else []
    return Netlist("\n".join(L) + "\n", got.nodes, (S, P, N), plan.roles.n_inputs, plan.units, plan.free_end,
                   plan.stop, plan.dt_s,
                   {"clamp": plan.clamp.kind, "family": plan.family, "initial_volts": np.array(got.ic_volts),
                    "transconductor": plan.ota.kind, "supplies": got.supplies,
                    "vdd": plan.units.vdd if plan.supplied else None,
                    "quiescent_current": np.array(got.quiescent), "devices": devices})


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
