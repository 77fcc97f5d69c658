"""Shared Brian2 pieces of the rate and spiking substrates, runtime and compiled alike.

* Brian2 itself: importing it quietly (:func:`import_brian2`), its code-generation target
  (:func:`brian2_target`, :func:`check_target`) and the wall-time budget of a runtime run
  (:func:`deadline`, :func:`run_before`, :func:`over_budget`);
* the layout of ``S * P`` network copies in one group (:func:`block_diagonal_synapses`);
* the model as Brian2 code: the rate neuron and synapse equations with projected Euler and the
  learning rule's accumulators (:func:`neuron_equations`, :func:`synapse_equations`,
  :func:`euler_code`), and the spiking neuron with its Poisson spikes and spike-based STDP
  (:func:`spiking_equations`, :func:`stdp_on_pre`, :func:`synaptic_sums`).

The runtime substrates (:mod:`~deepcircuit.substrates.brian2_rate`,
:mod:`~deepcircuit.substrates.brian2_spiking`) and the compiled programs
(:mod:`~deepcircuit.substrates.brian2_standalone`,
:mod:`~deepcircuit.substrates.brian2_spiking_training`) all take their equations from here, so
every target simulates the same model; this module imports no other ``brian2_*`` module.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings

import numpy as np

from ..errors import InvalidInputError, SimulationError, SubstrateUnavailableError

INSTALL_FIX = ("pip install brian2==2.9.0 (Brian2 2.9.0 also needs numpy < 2.4: "
               "pip install 'numpy<2.4')")


def import_brian2():
    """Import Brian2 quietly, or raise :class:`SubstrateUnavailableError` naming the fix."""
    try:
        # Brian2 2.9.0 builds its parsers at import with pyparsing names that pyparsing 3
        # deprecates; those warnings are not the user's concern.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            # Brian2's __init__ runs `from pylab import *` (matplotlib's pyplot: a third of its
            # import time, a fixed cost of every command on a brian2 substrate) and falls back to
            # numpy's names when pylab is missing; nothing deepcircuit uses from Brian2 needs
            # pyplot, so pylab is hidden while Brian2 imports (a later `import pylab` works).
            hide = "brian2" not in sys.modules and "pylab" not in sys.modules
            if hide:
                sys.modules["pylab"] = None  # type: ignore[assignment]
            try:
                import brian2
                from brian2.utils.logger import BrianLogger
            finally:
                if hide:
                    sys.modules.pop("pylab", None)
    except Exception as exc:  # ImportError, or AttributeError/TypeError from an incompatible numpy
        raise SubstrateUnavailableError(
            f"The Brian2 substrates need Brian2, which could not be imported "
            f"({type(exc).__name__}: {exc}). Fix: {INSTALL_FIX}.") from exc
    # Brian2 reports its automatic choices at INFO level on the console; the substrate makes
    # every choice explicitly, so only errors are worth showing to the user.
    BrianLogger.log_level_error()
    # Brian2 turns Ctrl-C during a run into "stop at this time step" and returns normally, with
    # the phase cut short; a Ctrl-C must stop deepcircuit, so it stays a KeyboardInterrupt.
    brian2.prefs.core.stop_on_keyboard_interrupt = False
    _unwrap_ignored_sigint(brian2)
    return brian2


def _unwrap_ignored_sigint(brian2) -> None:
    """Undo Brian2's SIGINT wrapper where it wraps an ignored SIGINT (a background job, nohup):
    calling ``SIG_IGN`` there ends in ``TypeError: 'Handlers' object is not callable``, a
    traceback instead of the ignored signal the process was started with."""
    import signal

    handler = signal.getsignal(signal.SIGINT)
    previous = getattr(handler, "previous_handler", None)
    if type(handler).__module__.startswith("brian2") and previous is not None and not callable(previous):
        try:
            signal.signal(signal.SIGINT, previous)
        except ValueError:  # not the main thread: signal handlers cannot be changed here
            pass


def block_diagonal_synapses(topology_mask: np.ndarray, P: int):
    """Synapse indices of S*P copies of the networks in one group (copy ``s*P + p`` of network s).

    ``topology_mask (S, N, N)``. Returns ``(pre, post, net, i, j)``: group indices (int32) of
    each synapse's source and target, and the network and neuron indices it stands for, in
    row-major (copy, i, j) order, so every target sums its inflow over i in increasing order as
    the ODE substrate's loop does.
    """
    S, N, _ = topology_mask.shape
    pre, post, net_of, ii, jj = [], [], [], [], []
    for s in range(S):
        i, j = np.nonzero(topology_mask[s])
        for p in range(P):
            off = (s * P + p) * N
            pre.append(i + off)
            post.append(j + off)
            net_of.append(np.full(i.size, s))
            ii.append(i)
            jj.append(j)
    return (np.concatenate(pre).astype(np.int32), np.concatenate(post).astype(np.int32),
            np.concatenate(net_of), np.concatenate(ii), np.concatenate(jj))


def check_target(brian2, target: str) -> None:
    """Raise :class:`SubstrateUnavailableError` when the code-generation ``target`` cannot work here."""
    if target == "cython":
        from brian2.codegen.runtime.cython_rt import CythonCodeObject

        if not CythonCodeObject.is_available():  # compiles a tiny test module (cached)
            raise SubstrateUnavailableError(
                "Brian2's 'cython' target is not available: it needs Cython and a working C compiler "
                "(pip install cython; apt-get install build-essential). Use target='numpy' "
                "(--brian2-target numpy), which works everywhere.")


@contextlib.contextmanager
def brian2_target(brian2, target: str):
    """Set Brian2's code-generation target for the duration of a block, then restore it.

    Inside the block, deprecation warnings are silenced: Brian2 2.9.0's equation parser uses
    pyparsing names that pyparsing 3 deprecates, which would otherwise reach the user's console.
    """
    prefs = brian2.prefs
    old = prefs["codegen.target"]
    prefs["codegen.target"] = target
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            yield
    finally:
        prefs["codegen.target"] = old


def over_budget(what: str, max_seconds: float) -> SimulationError:
    """The one-line error of a Brian2 run stopped at its wall-time budget ``max_seconds``."""
    return SimulationError(
        f"{what} ran past its wall-time budget of max_seconds = {max_seconds:g} s and was stopped; "
        f"give the substrate a larger max_seconds (None = no limit), or run fewer epochs, seeds or steps.")


def deadline(max_seconds: float | None) -> float | None:
    """The ``time.monotonic()`` by which a run started now must end (None: no budget)."""
    return None if max_seconds is None else time.monotonic() + max_seconds


def run_before(b2, net, duration, until: float | None, what: str, max_seconds: float | None) -> None:
    """``net.run(duration)`` on a runtime target, stopped at the wall-time deadline ``until``.

    Brian2 calls the report function between time steps (at most every ``report_period`` of wall
    time); past the deadline it stops the network there, and the run is reported as
    :func:`over_budget` instead of returning a partial phase.
    """
    if until is None:
        net.run(duration, namespace={})
        return
    stopped = []

    def check(elapsed, completed, start, length):
        if time.monotonic() > until:
            stopped.append(completed)
            net.stop()

    net.run(duration, namespace={}, report=check, report_period=_REPORT_PERIOD * b2.second)
    if stopped or time.monotonic() > until:
        raise over_budget(what, max_seconds)


#: Wall time (seconds) between two deadline checks of a runtime Brian2 run.
_REPORT_PERIOD = 0.05


def neuron_equations(family: str, method: str = "euler") -> str:
    """Brian2 equations of one neuron of ``family`` (state ``s`` dimensionless, time in ``tau``).

    ``v`` is the unbounded velocity ds/dt in units of 1/tau, written in the ODE substrate's
    order of operations. ``inflow`` (and ``wout`` for the DEEP families) are summed variables
    written by the synapses; ``free`` is 0 for clamped inputs and 1 otherwise; ``beta`` is the
    nudging strength (1/tau) of this neuron, non-zero only on outputs in the nudged phase; ``y``
    is its target. ``sold`` and ``dstep`` hold the previous state and the last projected step.
    With ``method="euler"`` the step itself is :func:`euler_code` (``s`` is a parameter);
    otherwise ``ds/dt = v / tau`` is integrated by Brian2's ``method``.
    """
    if family in ("deep", "deep-leaky"):
        v = "free * (inflow - s * (wout + leak) + beta * (y - s))"
        extra = ("wout : 1  # sum_k W[j, k], summed onto the pre-synaptic neuron\n"
                 "leak : 1 (constant)  # gamma of deep-leaky, 0 for deep\n")
    elif family in ("ep-asym", "ep-sym"):
        v = "free * (inflow + b - s + beta * (y - s))"
        extra = "b : 1 (constant)  # learned bias vector\n"
    else:  # pragma: no cover - families are validated by the network description
        raise InvalidInputError(f"No Brian2 equations for family {family!r}.")
    state = "s : 1\n" if method == "euler" else "ds/dt = v / tau : 1\n"
    return (state +
            f"v = {v} : 1\n"
            "inflow : 1  # sum_i W[i, j] s_i, summed onto the post-synaptic neuron\n"
            + extra +
            "free : 1 (constant)\n"
            "beta : 1\n"
            "y : 1 (constant)\n"
            "sold : 1\n"
            "dstep : 1\n")


def synapse_equations(family: str) -> str:
    """Brian2 synapse model of ``family``: weight, summed variables and the STDP accumulators."""
    out = "w : 1\ninflow_post = w * s_pre : 1 (summed)\n"
    if family in ("deep", "deep-leaky"):
        out += "wout_pre = w : 1 (summed)\n"
    return out + "acc_dpost : 1\nacc_coact : 1\n"


#: The projection, run right after each integration step: clip to [0, 1], remember the step.
PROJECTION_CODE = "s = clip(s, 0, 1)\ndstep = s - sold\nsold = s"


def euler_code(family: str) -> str:
    """Projected Euler as one custom state update (``dt_tau`` = the step in units of tau).

    The velocity is built from two-operand statements in the ODE substrate's order of
    operations, ``((inflow + c) - s * d) + beta * (y - s)``, because Brian2 passes each statement
    through sympy, which may reassociate longer sums; two-operand sums and products are exact
    whatever their order. The step is then ``clip(s + dt * v, 0, 1)`` as in the ODE substrate.
    """
    if family in ("deep", "deep-leaky"):
        vin = "vin = inflow - s * (wout + leak)\n"
    else:
        vin = "vin = inflow + b\nvin = vin - s\n"
    return (vin + "vel = free * (vin + beta * (y - s))\n"
            "s = clip(s + dt_tau * vel, 0, 1)\n"
            "dstep = s - sold\nsold = s")
#: The learning rule's per-synapse accumulators (run after the projection, nudged phase only).
TRACE_CODE = "acc_dpost += s_pre * dstep_post\nacc_coact += s_pre * s_post"


def spiking_equations(family: str) -> str:
    """Brian2 equations of one spiking neuron of ``family`` (``s`` dimensionless, rate-coded)."""
    if family in ("deep", "deep-leaky"):
        rhs = "free * (I - O - leak * s + beta * (y - s)) / tau"
        extra = ("dO/dt = -O / tau_s : 1  # filtered own spikes x outgoing weights (outflow)\n"
                 "leak : 1 (constant)\n")
    elif family in ("ep-asym", "ep-sym"):
        rhs = "free * (I + b - s + beta * (y - s)) / tau"
        extra = "b : 1 (constant)\n"
    else:  # pragma: no cover - families are validated by the network description
        raise InvalidInputError(f"No Brian2 equations for family {family!r}.")
    return (f"ds/dt = {rhs} : 1\n"
            "dI/dt = -I / tau_s : 1  # filtered incoming spikes x weights (inflow)\n"
            + extra +
            "free : 1 (constant)\n"
            "beta : 1\n"
            "y : 1 (constant)\n"
            "dhz/dt = s * max_rate : 1  # integrated firing intensity (spikes expected so far)\n"
            "theta : 1  # value of hz at which the next spike fires, Exp(1) after the last one\n"
            "dxf/dt = -xf / tau_f : 1  # fast trace of this neuron's own spikes (STDP)\n"
            "dxl/dt = -xl / tau_l : 1  # slow trace of this neuron's own spikes (STDP)\n"
            "learn : 1  # 1 while the synapses accumulate the learning rule (nudged phase)\n")


#: Pair-based STDP with traces (see :func:`stdp_on_pre`): a post-synaptic spike adds 1 to both
#: of its traces.
STDP_RESET = "xf += 1\nxl += 1"

#: Poisson spikes by time rescaling: a neuron fires when its integrated intensity
#: ``hz = int s * max_rate dt`` passes ``theta``; the excess carries over and the next threshold is
#: a fresh Exp(1) draw (``1 - rand()`` is in (0, 1], so the logarithm is finite). The intervals
#: of ``hz`` between spikes are then independent Exp(1): the spike train is a Poisson process of
#: rate ``s(t) * max_rate``, up to the Brian2 step (a spike fires at the end of the step in which
#: the threshold was passed, at most one per step; a second crossing in the same step fires in
#: the next). Per-step Bernoulli draws (``rand() < s * max_rate * dt``) give the same mean rate but
#: cost one random number per neuron and step: 30 % of a compiled XOR run's time.
SPIKE_THRESHOLD = "hz > theta"
POISSON_RESET = "hz -= theta\ntheta = -log(1 - rand())"
#: A neuron's first threshold in a run (before its first spike).
FIRST_THRESHOLD = "-log(1 - rand())"


def stdp_on_pre() -> str:
    """What a pre-synaptic spike adds to the synapse's learning accumulators.

    All-to-all pair-based STDP, post-before-pre side, with the biphasic window
    ``K(u) = exp(-u/tau_f)/tau_f - exp(-u/tau_l)/tau_l`` (``u`` = time since the post spike),
    read from two traces of the post-synaptic neuron. For Poisson spikes of rates ``nu_i(t)``,
    ``nu_j(t)`` that vary slowly on the scale of ``tau_l``,
    ``E[x/tau] = nu_j - tau * dnu_j/dt + O(tau^2)``, so each pre spike adds on average
    ``(tau_l - tau_f) * dnu_j/dt`` and the sum over a phase has expectation
    ``(tau_l - tau_f) * max_rate^2 * int s_i ds_j``: DEEP's rule, pre-synaptic activity times
    the post-synaptic rate of change. ``acc_c`` (pre spikes times the slow trace) estimates
    ``max_rate^2 * int s_i s_j dt``, the rule's ``beta0`` term.
    """
    return ("acc_d += learn_post * (xf_post / tau_f - xl_post / tau_l)\n"
            "acc_c += learn_post * (xl_post / tau_l)")


def spiking_on_pre(family: str) -> str:
    """What a pre-synaptic spike does: move ``w * q`` of activity from pre to post."""
    if family in ("deep", "deep-leaky"):
        return "I_post += w * q\nO_pre += w * q"
    return "I_post += w * q"


def synaptic_sums(acc: dict, net, samples: int, dt_seconds: float, repeats: int) -> dict:
    """The rule's sums per network ``(S, N, N)`` from the synapses' accumulators ``acc_d`` and
    ``acc_c`` (one value per synapse, synapses of ``block_diagonal_synapses`` order), scaled as
    :meth:`~deepcircuit.substrates.brian2_spiking._SpikingNetwork.synaptic_traces` says and
    summed over presentations. ``net``: the spiking network or program the accumulators come
    from (its sizes ``S, P, N``, ``max_rate``, ``tau_f``, ``tau_l`` and synapse indices). With
    ``repeats = K > 1`` the run's ``net.P`` presentations are K repetitions of ``net.P / K``
    patterns (rows ``r * P/K + p``) and ``pre_dpost_each (K, S, N, N)`` keeps each repetition's
    sum as well.
    """
    r2 = net.max_rate ** 2
    out = {}
    for key, var, scale in (("pre_dpost", "acc_d", r2 * (net.tau_l - net.tau_f)),
                            ("pre_post", "acc_c", r2 * dt_seconds)):
        total = np.zeros((net.S, net.N, net.N))
        np.add.at(total, (net.syn_net, net.syn_i, net.syn_j), np.asarray(acc[var]) / scale)
        out[key] = total
    if repeats > 1:
        rep = (net._pre // net.N) % net.P // (net.P // repeats)  # repetition of each synapse's copy
        each = np.zeros((repeats, net.S, net.N, net.N))
        np.add.at(each, (rep, net.syn_net, net.syn_i, net.syn_j),
                  np.asarray(acc["acc_d"]) / (r2 * (net.tau_l - net.tau_f)))
        out["pre_dpost_each"] = each
    out["samples"] = samples
    return out
