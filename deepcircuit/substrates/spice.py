"""The SPICE substrate: the network as a circuit, simulated in ngspice through PySpice.

The batch is compiled into one netlist (:mod:`deepcircuit.substrates.circuit`): every network and every
presentation is a copy of the circuit, and the nudge is switched on inside the same transient, so
one ngspice run simulates a whole phase pair. The run goes through ngspice's shared library
(``libngspice.so``) with PySpice's ``NgSpiceShared``; node voltages are read back, divided by
``V_scale`` and resampled onto the schedule's uniform grid (times in tau), then returned as the
common :class:`~deepcircuit.substrates.trajectory.Trajectory` form.

Two PySpice 1.5 behaviours are worked around here:

* PySpice marks every stderr line of ngspice that does not start with ``Warning:`` as an error and
  then raises on the next command, although ngspice prints harmless notes there ("Using SPARSE 1.3
  as Direct Linear Solver" since ngspice 42, "Note: ..."; PySpice issues #379, #392, #399). The
  callback is replaced: stderr is collected and judged here, after the run, by what it says.
* Simulation results stay in ngspice's memory until destroyed (PySpice issues #246, #373). After
  each run the plot is destroyed and the circuit removed (``destroy all``, ``remcirc``); the one
  shared-library instance is reused for the life of the process.

Ctrl-C: a foreground ``run`` executes inside the C library, where Python's signal handler only
runs in PySpice's callbacks and cffi drops the ``KeyboardInterrupt`` raised there. Each
transient therefore runs in ngspice's background thread while Python waits (and checks the
wall-time budget ``max_seconds``); short foreground calls hold a Ctrl-C and raise it after.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._validation import check_choice, check_int, check_real
from .chip import Chip, CircuitUnits, NonIdealities, TransconductorModel
from .circuit import Netlist, compile_netlist
from .clamps import DEFAULT_CLAMP, ClampModel
from ..errors import DivergenceError, InvalidInputError, SimulationError, SubstrateUnavailableError
from ..model.network import NetworkBatch
from .trajectory import PhaseResult, Trajectory, phase_status
from .base import Schedule, Substrate, check_run_arguments

INSTALL_HINT = "apt-get install libngspice0-dev ngspice"

#: stderr lines of ngspice that mean the run failed (matched case-insensitively).
_FATAL = re.compile(r"timestep too small|error|aborted|singular matrix|gmin stepping failed|"
                    r"source stepping failed|iteration limit reached|no convergence", re.I)
#: Lines ngspice prints while parsing a netlist it cannot use (the echoed title is not one).
_PARSE_ERROR = re.compile(r"^\s*(error|fatal)|unknown (model|subckt|device|parameter)|could not find|"
                          r"no such|unable to find", re.I)
#: Likely causes, by what ngspice said, for the error message.
_CAUSES = [
    (re.compile(r"swnudge", re.I),
     "the nudge switch closing at the end of the free phase: the tolerances are too tight for its "
     "step (loosen trtol/reltol)"),
    (re.compile(r"timestep too small", re.I),
     "the time step collapsed: usually a very stiff clamp (limiter stiffness or a diode with a tiny "
     "emission coefficient) together with large weights, or a network whose states run away; try "
     "clamp='diode', smaller weights, or looser .options (reltol)"),
    (re.compile(r"singular matrix", re.I),
     "a node has no DC path (check parasitic capacitance / floating nodes)"),
    (re.compile(r"iteration limit|no convergence|gmin|source stepping", re.I),
     "Newton iterations did not converge at a time point (stiff clamp or diverging network)"),
]


def _stopped_at(lines) -> float:
    """The time (s) at which ngspice gave up, from its "time = ..." message (0 if not said)."""
    for ln in lines:
        m = re.search(r"time\s*=\s*([-+0-9.eE]+)", ln)
        if m:
            try:
                return float(m.group(1))
            except ValueError:
                pass
    return 0.0


class _DeferredInterrupt:
    """Hold Ctrl-C while the main thread is inside a foreground ngspice call, raise it after.

    Inside the C library Python's handler would run in one of PySpice's callbacks, where cffi
    prints and drops the ``KeyboardInterrupt``: the Ctrl-C would be lost. Loading a large
    netlist or freeing a large plot takes long enough for that to happen.
    """

    def __enter__(self):
        import signal
        import threading

        self.hit = False
        self.old = None
        if threading.current_thread() is threading.main_thread():
            old = signal.getsignal(signal.SIGINT)
            if callable(old):  # not SIG_IGN / SIG_DFL: someone (Python) handles Ctrl-C
                self.old = old
                signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum, frame):
        self.hit = True

    def __exit__(self, *exc):
        import signal

        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
        if self.hit and exc[0] is None:
            raise KeyboardInterrupt
        return False


class _WallTimeExceeded(Exception):
    """Internal: a transient ran past its wall-time budget (seconds elapsed in ``args[0]``)."""


_shared = None  # the one NgSpiceShared instance of this process (ngspice keeps global state)


def _load_ngspice():
    """The process's ngspice shared-library instance, created on first use."""
    global _shared
    if _shared is not None:
        return _shared
    try:
        from PySpice.Spice.NgSpice import Shared as shared_mod
    except ImportError as exc:  # pragma: no cover - PySpice is a declared dependency
        raise SubstrateUnavailableError(
            f"The spice substrate needs PySpice 1.5 (pip install PySpice==1.5) and ngspice's shared "
            f"library ({INSTALL_HINT}): {exc}") from None
    lib = shared_mod.NgSpiceShared.LIBRARY_PATH.format("")
    try:
        ctypes.CDLL(lib)  # fail early and clearly, before PySpice declares its C interface
    except OSError as exc:
        raise SubstrateUnavailableError(
            f"ngspice's shared library {lib!r} was not found ({exc}); install it with "
            f"`{INSTALL_HINT}` (or point NGSPICE_LIBRARY_PATH at libngspice.so).") from None
    # PySpice logs "Unsupported Ngspice version" and every stderr line at warning/error level.
    logging.getLogger("PySpice").setLevel(logging.CRITICAL)
    try:
        _shared = _quiet_class()(ngspice_id=0, send_data=False)
    except Exception as exc:  # cffi / ngspice initialisation failures
        raise SubstrateUnavailableError(
            f"ngspice's shared library could not be initialised through PySpice ({exc}); "
            f"reinstall it with `{INSTALL_HINT}`.") from None
    return _shared


def _quiet_class():
    """PySpice's NgSpiceShared with our output callback and lean run/read helpers (imported lazily)."""
    from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi, ffi_string_utf8

    class QuietNgSpice(NgSpiceShared):
        """NgSpiceShared whose stderr lines are collected, not treated as errors on arrival."""

        @staticmethod
        def _send_char(message_c, ngspice_id, user_data):
            self = ffi.from_handle(user_data)
            prefix, _, content = ffi_string_utf8(message_c).partition(" ")
            (self._stderr if prefix == "stderr" else self._stdout).append(content)
            return 0

        def command(self, cmd: str) -> list[str]:
            """Run an ngspice command; returns its stderr lines (judged by the caller)."""
            # ngspice keeps every command in its control structures; free them now and then
            # (what PySpice's exec_command does every 10 000 commands).
            self._number_of_exec_calls += 1
            if self._number_of_exec_calls > 300:
                self._ngspice_shared.ngSpice_Command(ffi.NULL)
                self._number_of_exec_calls = 0
            self.clear_output()
            with _DeferredInterrupt():
                rc = self._ngspice_shared.ngSpice_Command(cmd.encode("ascii"))
            if rc:
                raise SimulationError(f"ngspice refused the command {cmd!r} (return code {rc}).")
            return list(self._stderr)

        @staticmethod
        def _background_thread_running(not_running, ngspice_id, user_data):
            # ngspice calls this from its thread as a background run starts (False) and when it
            # has ended (True): the flag means "not running" (measured with ngspice 42; PySpice
            # reads it the other way round).
            self = ffi.from_handle(user_data)
            self._is_running = not not_running
            if not_running and hasattr(self, "_bg_done"):
                self._bg_done.set()
            return 0

        def run_transient(self, max_seconds: float | None) -> list[str]:
            """Run the loaded circuit in ngspice's background thread; returns its stderr lines.

            The main thread waits here (short lock waits), so Ctrl-C reaches Python as a
            ``KeyboardInterrupt`` at once (a foreground ``run`` executes inside the C library,
            where a Python signal handler only runs in PySpice's callbacks, which swallow the
            exception). On Ctrl-C or when ``max_seconds`` (wall time) is exceeded, the run is
            halted with ``bg_halt`` before this returns or raises; a timeout raises
            :class:`_WallTimeExceeded`.
            """
            import threading

            self.clear_output()
            lib = self._ngspice_shared
            if not hasattr(self, "_bg_done"):
                self._bg_done = threading.Event()
            self._bg_done.clear()
            rc = lib.ngSpice_Command(b"bg_run")
            if rc:
                raise SimulationError(f"ngspice refused the command 'bg_run' (return code {rc}).")
            start = time.monotonic()
            try:
                # Short waits: a lock wait is interrupted by Ctrl-C, and the budget is checked.
                # `while True` loops: on Python 3.13 a Ctrl-C raised at the backward jump of a
                # `while <condition>` loop skips this frame's handlers (CPython issue 130279),
                # which would leave ngspice's thread running.
                while True:
                    if self._bg_done.wait(0.05):
                        break
                    if max_seconds is not None and time.monotonic() - start > max_seconds:
                        raise _WallTimeExceeded(time.monotonic() - start)
                    if time.monotonic() - start > 2.0 and not lib.ngSpice_running():
                        break  # no thread is running and none said it ended: never wait for ever
                while True:  # the thread's last steps after its callback
                    if not lib.ngSpice_running():
                        break
                    time.sleep(1e-4)
            except BaseException:
                self._halt()
                raise
            return list(self._stderr)

        def _halt(self) -> None:
            """Stop a background run and wait for ngspice's thread to end (Ctrl-C is held off)."""
            import signal

            lib = self._ngspice_shared
            old = None
            try:  # a second Ctrl-C while halting must not leave ngspice's thread running
                old = signal.signal(signal.SIGINT, signal.SIG_IGN)
            except ValueError:  # not the main thread
                pass
            try:
                halted = False
                for _ in range(1000):  # up to ~10 s; ngspice stops within a time step
                    if self._bg_done.is_set() and not lib.ngSpice_running():
                        break
                    if not halted and lib.ngSpice_running():  # (it may not have started yet)
                        lib.ngSpice_Command(b"bg_halt")
                        halted = True
                    time.sleep(0.01)
            finally:
                if old is not None:
                    signal.signal(signal.SIGINT, old)

        def release(self) -> None:
            """Free the results and the circuit, so memory stays flat over many runs (both
            commands run even if Ctrl-C comes in between; it is raised after them)."""
            self._number_of_exec_calls += 2  # counted as in command()
            with _DeferredInterrupt():
                for cmd in (b"destroy all", b"remcirc"):
                    self._ngspice_shared.ngSpice_Command(cmd)

        def circuit(self, text: str) -> list[str]:
            """Load a netlist; returns the stdout and stderr lines ngspice printed while parsing."""
            lines = [ln for ln in text.splitlines() if ln] + [""]
            keep = [ffi.new("char[]", ln.encode("utf8")) for ln in lines] + [ffi.NULL]
            self.clear_output()
            with _DeferredInterrupt():
                rc = self._ngspice_shared.ngSpice_Circ(ffi.new("char *[]", keep))
            if rc:
                raise SimulationError(f"ngspice could not load the netlist (return code {rc}).")
            return list(self._stdout) + list(self._stderr)

        def vector(self, name: str, missing_ok: bool = False) -> "np.ndarray | None":
            """A real vector of the current plot as a float array (copied)."""
            info = self._ngspice_shared.ngGet_Vec_Info(name.encode("utf8"))
            if info == ffi.NULL or info.v_realdata == ffi.NULL:
                if missing_ok:
                    return None
                raise SimulationError(f"ngspice has no result vector {name!r}.")
            n = info.v_length
            return np.frombuffer(ffi.buffer(info.v_realdata, n * 8), dtype=np.float64).copy()

    return QuietNgSpice


def _concat(parts: list[PhaseResult]) -> PhaseResult:
    """Phase results of consecutive network chunks joined along the network axis."""
    def join(trajs):
        first = trajs[0]
        meta = dict(next((t.meta for t in trajs if "units" in t.meta), first.meta))  # a run that worked
        meta["clamp_overshoot_max"] = max(t.meta["clamp_overshoot_max"] for t in trajs)
        meta["clamp_overshoot_final"] = max(t.meta["clamp_overshoot_final"] for t in trajs)
        for key in ("clamp_overshoot_per_network", "final_speed"):
            meta[key] = np.concatenate([np.asarray(t.meta[key]) for t in trajs])
        meta["time_points"] = [t.meta["time_points"] for t in trajs]
        meta["seconds"] = sum(t.meta["seconds"] for t in trajs)
        meta["peak_rss_mb"] = trajs[-1].meta["peak_rss_mb"]
        meta["diverged_why"] = [w for t in trajs for w in t.meta.get("diverged_why", [""] * t.n_networks)]
        meta["magnitude"] = max(float(t.meta.get("magnitude", 0.0)) for t in trajs)
        sup = [t.meta.get("supply") for t in trajs]
        meta.pop("supply", None)
        if all(x is not None for x in sup):  # energies only when every run had its supply read
            meta["supply"] = [x for part in sup for x in part]
        devs = [t.meta.get("devices") for t in trajs]
        meta.pop("devices", None)
        if all(d is not None for d in devs):
            meta["devices"] = [d for part in devs for d in part]
        msgs = "; ".join(t.message for t in trajs if t.message)
        return Trajectory(first.times, np.concatenate([t.states for t in trajs]), first.roles, first.phase,
                          first.substrate, np.concatenate([t.settled for t in trajs]), first.settle_tol,
                          np.concatenate([t.diverged for t in trajs]), msgs, meta)

    free = join([p.free for p in parts])
    nudged = join([p.nudged for p in parts]) if parts[0].nudged is not None else None
    return PhaseResult(free, nudged)


def _read_supply(ng, net: Netlist, t: np.ndarray) -> "dict | None":
    """The supply currents and ``.meas`` charges of a run (None when the netlist has no supply).

    Returns ``{"vdd": V, "time_s": (T,), "current_A": (S, P, T) drawn from VDD (positive),
    "quiescent_A": (S, P), "meas_charge_C": {name: C}}``; the ``.meas`` results are parsed from
    ngspice's output ("q_free_s0p0 = -4.8e-08 from= ..."), negative = drawn from the source.
    """
    names = net.meta.get("supplies") or []
    if not names:
        return None
    S, P, _ = net.shape
    cur = np.stack([-ng.vector(f"i({v})") for v in names]).reshape(S, P, -1)
    meas = {}
    for ln in ng._stdout:
        m = re.match(r"\s*(q_(?:free|nudged)_\S+)\s*=\s*([-+0-9.eE]+)", ln)
        if m:
            meas[m.group(1).lower()] = float(m.group(2))
    return {"vdd": float(net.meta["vdd"]), "time_s": np.asarray(t, dtype=float), "current_A": cur,
            "quiescent_A": np.asarray(net.meta["quiescent_current"]).reshape(S, P), "meas_charge_C": meas}


def _fingerprint(batch: NetworkBatch) -> bytes:
    """Identifies a batch's circuits (weights, biases, connections) to remember failures."""
    import hashlib

    h = hashlib.sha1()
    for arr in (batch.weights, batch.bias, batch.mask):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.digest()


def _failed_part(batch: NetworkBatch, inputs, schedule: Schedule, targets, name: str, why: str) -> PhaseResult:
    """The phases of networks whose ngspice run failed: non-finite states, marked diverged."""
    roles = batch.roles
    S, P, N = len(batch), inputs.shape[0], roles.n_neurons
    out = []
    phases = [("free", schedule.free_steps)]
    if targets is not None and schedule.nudged_steps > 0:
        phases.append(("nudged", schedule.nudged_steps))
    for phase, steps in phases:
        states = np.full((S, P, steps + 1, N), np.nan)
        states[..., :roles.n_inputs] = inputs[None, :, None, :]
        meta = {"clamp_overshoot_max": 0.0, "clamp_overshoot_final": 0.0,
                "clamp_overshoot_per_network": np.zeros(S), "final_speed": np.full((S, P), np.inf),
                "time_points": 0, "seconds": 0.0, "peak_rss_mb": _rss_peak_mb(), "magnitude": float("inf"),
                "diverged_why": [why] * S}
        out.append(Trajectory(schedule.dt * np.arange(steps + 1), states, roles, phase, name,
                              np.zeros((S, P), dtype=bool), schedule.settle_tol, np.ones(S, dtype=bool),
                              f"{phase} phase diverged: {why}", meta))
    return PhaseResult(*out)


def _join_presentations(parts: list[PhaseResult]) -> PhaseResult:
    """Phase results of consecutive presentation chunks (same networks) joined along the presentation axis."""
    def join(trajs):
        first = trajs[0]
        meta = dict(first.meta)
        meta["clamp_overshoot_max"] = max(t.meta["clamp_overshoot_max"] for t in trajs)
        meta["clamp_overshoot_final"] = max(t.meta["clamp_overshoot_final"] for t in trajs)
        meta["clamp_overshoot_per_network"] = np.max([t.meta["clamp_overshoot_per_network"] for t in trajs], axis=0)
        meta["final_speed"] = np.concatenate([np.asarray(t.meta["final_speed"]) for t in trajs], axis=1)
        meta["time_points"] = [t.meta["time_points"] for t in trajs]
        meta["seconds"] = sum(t.meta["seconds"] for t in trajs)
        meta["peak_rss_mb"] = max(t.meta["peak_rss_mb"] for t in trajs)
        meta["ngspice_runs"] = sum(t.meta.get("ngspice_runs", 1) for t in trajs)
        meta["magnitude"] = max(float(t.meta.get("magnitude", 0.0)) for t in trajs)
        S = first.n_networks
        whys = [t.meta.get("diverged_why", [""] * S) for t in trajs]
        meta["diverged_why"] = ["; ".join(sorted({w[k] for w in whys if w[k]})) for k in range(S)]
        msgs = "; ".join(t.message for t in trajs if t.message)
        diverged = np.any([t.diverged for t in trajs], axis=0)  # a network diverged in any chunk
        settled = np.concatenate([t.settled for t in trajs], axis=1) & ~diverged[:, None]
        return Trajectory(first.times, np.concatenate([t.states for t in trajs], axis=1), first.roles,
                          first.phase, first.substrate, settled, first.settle_tol, diverged, msgs, meta)

    if len(parts) == 1:
        return parts[0]
    free = join([p.free for p in parts])
    nudged = join([p.nudged for p in parts]) if parts[0].nudged is not None else None
    return PhaseResult(free, nudged)


#: ``presentations_per_run="auto"``: copies of the circuit in one netlist are limited so that it
#: holds at most this many free nodes. ngspice's cost grows faster than the number of copies
#: (every copy shares the time steps the stiffest one needs), so large circuits run one
#: presentation per netlist (measured in benchmarks/bench_spice_scale.py; docs/spice.md).
AUTO_MAX_FREE_NODES_PER_RUN = 64


class _RawVectors:
    """The vectors and output of an ``ngspice -b`` run, read as from the shared library
    (``vector(name)``, ``_stdout``) so that :func:`_read_supply` serves both."""

    def __init__(self, run) -> None:
        self.vectors, self._stdout = run.vectors, run.stdout

    def vector(self, name: str, missing_ok: bool = False) -> "np.ndarray | None":
        key = name.lower()
        v = self.vectors.get(key, self.vectors.get(f"v({key})"))
        if v is None and not missing_ok:
            raise SimulationError(f"ngspice wrote no result vector {name!r}.")
        return v


@dataclass(frozen=True)
class _Chunk:
    """One netlist's worth of a call: networks ``batch`` (the first is number ``first_network`` of
    the call) on presentations ``inputs``, with the call's schedule, chip and ``.options``."""

    batch: NetworkBatch
    inputs: np.ndarray
    initial: np.ndarray
    schedule: Schedule
    targets: "np.ndarray | None"
    nonideal: NonIdealities
    options: dict
    first_network: int


def _run_chunk(job: _Chunk, sub: "SpiceSubstrate", program: bool = False):
    """Compile, run and resample one netlist with ``sub``'s settings, in this process (shared
    library) or, with ``program``, in the ngspice program (what the worker processes do);
    returns ``(PhaseResult, supply, devices)`` or raises SimulationError."""
    net = compile_netlist(job.batch, job.inputs, job.initial, job.schedule, targets=job.targets, units=sub.units,
                          clamp=sub.clamp, nonideal=job.nonideal, options=job.options,
                          first_network=job.first_network, transconductor=sub.transconductor)
    t0 = time.perf_counter()
    t, v = sub._simulate_program(net) if program else sub._simulate(_load_ngspice(), net)
    res = sub._trajectories(job.batch, net, job.inputs, t, v, job.schedule, time.perf_counter() - t0)
    return res, sub._supply, net.meta.get("devices")


def _rss_peak_mb() -> float:
    """Peak resident set size of this process (MB), from /proc or resource."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:  # pragma: no cover - non-Linux
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def simulate_netlist(text: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run a netlist text (for example an exported ``.cir`` file) in ngspice's shared library.

    Any ``.control`` block is dropped (the transient is run by this function). Returns
    ``(time (T,) seconds, {node: voltage (T,) volts})`` for the nodes of the ``.save`` line.
    """
    lines, skip = [], False
    for ln in text.splitlines():
        low = ln.strip().lower()
        if low.startswith(".control"):
            skip = True
        elif low.startswith(".endc"):
            skip = False
        elif not skip:
            lines.append(ln)
    saves = [ln for ln in lines if ln.lower().startswith(".save ")]
    nodes = [m.group(1) for ln in saves for tok in ln.split()[1:] if (m := re.match(r"^v\((.*)\)$", tok.lower()))]
    tran = next((ln.split() for ln in lines if ln.lower().startswith(".tran ")), None)
    if tran is None:
        raise SimulationError("The netlist has no .tran line; simulate_netlist runs transients only.")
    stop = float(tran[2])
    ic = {}
    for ln in lines:
        if ln.lower().startswith(".ic "):
            ic.update({m.group(1).lower(): float(m.group(2))
                       for m in re.finditer(r"v\((\S+?)\)\s*=\s*(\S+)", ln, re.I)})
    meta = {"initial_volts": [ic[n] for n in nodes]} if all(n in ic for n in nodes) else {}
    net = Netlist("\n".join(lines) + "\n", nodes, (0, 0, 0), 0, CircuitUnits(), stop, stop, float(tran[1]), meta)
    t, v = SpiceSubstrate()._simulate(_load_ngspice(), net)
    return t, dict(zip(nodes, v))


class SpiceSubstrate(Substrate):
    """Networks as circuits in ngspice (through PySpice's shared-library interface).

    Parameters
    ----------
    clamp : "diode", "limiter", "precision" or ClampModel
        The [0, 1] bound: diode clamps (default, model ``DCLAMP``), a stiff behavioural limiter, or
        op-amp precision clamps (the most faithful; see docs/hardware.md).
    units : CircuitUnits
        ``V_scale`` (V), ``C`` (F), ``g`` (S); ``tau = C / g``.
    nonideal : NonIdealities
        Mismatch, quantization, parasitic capacitance, noise (the noise seed advances every run so
        successive epochs see fresh noise; the mismatch is fixed hardware).
    reltol : float
        ngspice's relative tolerance (``.options reltol``).
    options : dict
        Further ``.options`` for ngspice.
    netlist_dir : str or Path, optional
        Where a failing netlist is saved (default: the system temporary folder).
    rail_margin : float
        How far (units of ``V_scale``) a node may go outside the rails [0, ``V_scale``] before its
        network counts as diverged (default 0.25). A working clamp holds a node within a diode
        drop of its rail, about 1 % of ``V_scale`` at the default 10 V (reported per run as
        ``meta["clamp_overshoot_max"]``); a stiff or runaway circuit leaves the rails by volts.
    max_seconds : float or None
        Wall-time budget of one ngspice transient (seconds; default 600, None = no limit). A run
        past it is halted and raises :class:`~deepcircuit.errors.SimulationError` (a stiff or
        runaway circuit takes ever smaller time steps rather than failing).
    ota_linear_range, ota_gain, ota_offset, opamp_gain : float, optional
        Change one parameter of the OTA or of the precision clamp's op-amps (for substrate specs
        such as ``"spice:transconductor=ota;ota_gain=50"``).
    mismatch, seed, bits, weight_range, parasitic_capacitance, noise, noise_interval : optional
        The chip's non-idealities as flat options (``"spice:mismatch=0.3;seed=1"``), overriding
        the fields of ``nonideal``; ``seed`` seeds every draw of the chip (mismatch, noise, OTA
        offsets). The ode substrate reads the same chip (:mod:`deepcircuit.substrates.chip`).
    transconductor : "vccs", "ota" or TransconductorModel
        The synapse: ideal VCCS (default) or an OTA with a supply (see ``circuit.TransconductorModel``).
        With an OTA or a precision clamp the supply currents are read back and the free trajectory's
        ``meta["supply"]`` holds them, one entry per ngspice run with the ``networks`` and
        ``presentations`` (start, stop) it covers (``deepcircuit.studies.hardware_figures`` turns
        them into energies).
    networks_per_run : int or None
        How many networks of a batch share one netlist (both phases run in one transient;
        ``presentations_per_run`` splits the presentations). 1 (default): one ngspice run per
        network, since networks in one transient share its time steps and a batch of seeds runs
        1.4-3.7x faster split (measured in benchmarks/bench_spice.py). None: the whole batch in
        one netlist.
    presentations_per_run : int, "auto" or None
        How many presentations share one netlist. "auto" (default): as many as keep a netlist at
        most :data:`AUTO_MAX_FREE_NODES_PER_RUN` free nodes (all of them for logic gates, one
        for a 64-100-10 network); None: all.
    workers : int
        Dask worker processes running the netlists of one call in parallel (1: in this process).
        ngspice is not thread-safe, so parallel runs are separate processes: a
        ``distributed.LocalCluster`` started on first use and stopped by :meth:`close` (see
        "The in-loop runner" in docs/spice.md: retries, worker deaths, Ctrl-C).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``) whose workers run the netlists
        instead (as ``sweep --scheduler``); ``workers`` is then ignored.
    restart_after : str, optional
        Restart each local worker gracefully after this long (``"30 minutes"``), bounding the
        memory ngspice gains over many transients.
    worker_engine : "program" or "library"
        How a worker runs a netlist: ``ngspice -b`` as a process of its own (default; nothing
        accumulates in the worker, and ngspice never waits for the worker's interpreter) or
        the shared library as in this process. The same netlists and checks either way.
    """

    name = "spice"

    def __init__(self, *, clamp: "str | ClampModel" = DEFAULT_CLAMP, units: CircuitUnits | None = None,
                 nonideal: NonIdealities | None = None, reltol: float = 1e-4,
                 options: dict | None = None, netlist_dir: "str | Path | None" = None,
                 networks_per_run: int | None = 1, max_seconds: float | None = 600.0,
                 rail_margin: float = 0.25,
                 transconductor: "str | TransconductorModel | None" = None,
                 ota_linear_range: float | None = None, ota_gain: float | None = None,
                 ota_offset: float | None = None, opamp_gain: float | None = None,
                 presentations_per_run: "int | str | None" = "auto", workers: int = 1,
                 scheduler: str | None = None, restart_after: str | None = None,
                 mismatch: float | None = None, seed: int | None = None, bits: int | None = None,
                 weight_range: float | None = None, parasitic_capacitance: float | None = None,
                 noise: float | None = None, noise_interval: float | None = None,
                 worker_engine: str = "program") -> None:
        from dataclasses import replace

        self.clamp = ClampModel.of(clamp)
        if opamp_gain is not None:
            self.clamp = replace(self.clamp, opamp_gain=opamp_gain)
        # The chip, as the ode substrate reads it too (deepcircuit.substrates.chip).
        self.chip = Chip.from_options(
            units=units, nonideal=nonideal, transconductor=transconductor, mismatch=mismatch, seed=seed, bits=bits,
            weight_range=weight_range, parasitic_capacitance=parasitic_capacitance, noise=noise,
            noise_interval=noise_interval, ota_linear_range=ota_linear_range, ota_gain=ota_gain,
            ota_offset=ota_offset)
        self.transconductor = self.chip.transconductor
        self.units = self.chip.units
        self.clamp.check_fits(self.units)  # a clamp that cannot clamp at these units is refused
        self.nonideal = self.chip.nonideal
        self.reltol = check_real("reltol", reltol, low=0.0, low_open=True)
        self.options = dict(options or {})
        self.netlist_dir = Path(netlist_dir) if netlist_dir is not None else Path(tempfile.gettempdir())
        self.networks_per_run = None if networks_per_run is None else check_int("networks_per_run", networks_per_run, low=1)
        self.max_seconds = None if max_seconds is None else check_real("max_seconds", max_seconds, low=0.0,
                                                                       low_open=True)
        self.rail_margin = check_real("rail_margin", rail_margin, low=0.0, low_open=True)
        if presentations_per_run not in ("auto", None):
            presentations_per_run = check_int("presentations_per_run", presentations_per_run, low=1)
        self.presentations_per_run = presentations_per_run
        self.workers = check_int("workers", workers, low=1)
        if scheduler is not None and not isinstance(scheduler, str):
            raise InvalidInputError(f"scheduler must be a Dask scheduler address such as 'tcp://host:8786'; got {scheduler!r}.")
        self.scheduler = scheduler or None
        self.restart_after = restart_after
        self.worker_engine = check_choice("worker_engine", worker_engine, ("program", "library"))
        self._runner = None
        self.epoch: int | None = None  # set by callers that know it, for error messages
        self.runs = 0
        self._failed: dict[bytes, str] = {}  # networks of a batch whose run failed, by fingerprint
        self._supply: dict | None = None  # supply currents of the last ngspice run (None: no supply)

    def __repr__(self) -> str:
        return (f"SpiceSubstrate(clamp={self.clamp.kind!r}, transconductor={self.transconductor.kind!r}, "
                f"units={self.units})")

    # -- public ------------------------------------------------------------------------
    def run(self, networks, inputs, initial, schedule: Schedule, *, targets=None) -> PhaseResult:
        batch = NetworkBatch.of(networks)
        inputs, initial, targets = check_run_arguments(batch, inputs, initial, targets, schedule)
        if not (np.all(np.isfinite(batch.weights)) and np.all(np.isfinite(batch.bias))):
            raise DivergenceError("The weights contain non-finite values; the network has diverged.",
                                  phase="free", magnitude=float("inf"))
        run_index = self.runs
        self.runs += 1
        nonideal = self.nonideal
        opts = {"reltol": self.reltol, **self.options}
        if nonideal.noise > 0:
            # A new noise seed every run (for an ngspice that honours .options seed); the chip's
            # mismatch and offsets keep their seed, so every run is the same chip.
            opts.setdefault("seed", nonideal.seed + run_index)
        S, P = len(batch), inputs.shape[0]
        k = self.networks_per_run or S
        q = self._presentations_per_run(P, min(k, S), batch.roles)
        # Every (network chunk, presentation chunk) is one netlist; all of them are run at once
        # (in this process, or compiled, run and resampled in the worker processes), then
        # assembled per network chunk.
        chunks = []  # (first network, networks, fingerprint, [(presentations, job)] or None)
        for a in range(0, S, k):
            sub = NetworkBatch(batch.networks[a:a + k])
            key = _fingerprint(sub)
            if S > k and key in self._failed:
                chunks.append((a, sub, key, None))  # frozen by the training loop after failing
                continue
            jobs = []
            for c in range(0, P, q):
                sl = slice(c, min(c + q, P))
                jobs.append((sl, _Chunk(sub, inputs[sl], initial[a:a + len(sub), sl], schedule,
                                        None if targets is None else targets[sl], nonideal, opts, a)))
            chunks.append((a, sub, key, jobs))
        runs = [(n, c[0], len(c[1]), sl, job) for n, c in enumerate(chunks) if c[3] is not None for sl, job in c[3]]
        where = [(f"network {a}" if m == 1 else f"networks {a}..{a + m - 1}") +
                 f", presentations {sl.start}..{sl.stop - 1} of this call" for _, a, m, sl, _ in runs]
        outputs = iter(self._simulate_all([r[-1] for r in runs], [r[0] for r in runs], where,
                                          raise_first=S <= k))
        parts = []
        for a, sub, key, jobs in chunks:
            if jobs is None:  # the same circuit fails again
                parts.append(_failed_part(sub, inputs, schedule, targets, self.name,
                                          f"still failing: {self._failed[key]}"))
                continue
            got = [next(outputs) for _ in jobs]
            bad = next((o for o in got if isinstance(o, SimulationError)), None)
            if bad is not None:
                # One network (chunk) of a batch failed: it is reported as diverged, with ngspice's
                # reason and the saved netlist, and the other networks go on.
                self._failed[key] = str(bad)
                parts.append(_failed_part(sub, inputs, schedule, targets, self.name, str(bad)))
                continue
            supplies = [{**supply, "networks": (a, a + len(sub)), "presentations": (sl.start, sl.stop)}
                        for (sl, _), (_, supply, _) in zip(jobs, got) if supply is not None]
            part = _join_presentations([res for res, _, _ in got])
            if supplies and len(supplies) == len(jobs):
                part.free.meta["supply"] = supplies  # one entry per ngspice run, with the block it covers
            part.free.meta["devices"] = got[0][2]
            parts.append(part)
        return parts[0] if len(parts) == 1 else _concat(parts)

    def _presentations_per_run(self, P: int, networks: int, roles) -> int:
        if self.presentations_per_run is None:
            return P
        if self.presentations_per_run == "auto":
            n_free = roles.n_neurons - roles.n_inputs
            return max(1, min(P, AUTO_MAX_FREE_NODES_PER_RUN // max(1, networks * n_free)))
        return min(P, self.presentations_per_run)

    @property
    def distributed(self) -> bool:
        """Whether netlists run in Dask worker processes (``workers > 1`` or a ``scheduler``)."""
        return self.scheduler is not None or self.workers > 1

    def _simulate_all(self, jobs: list["_Chunk"], owner: list[int], where: list[str], *,
                      raise_first: bool) -> list:
        """``(PhaseResult, supply, devices)`` of every job (one netlist each), in order
        (``supply``: :func:`_read_supply` of that run, None without a supply), or the
        :class:`~deepcircuit.errors.SimulationError` of a job that failed (raised at once with
        ``raise_first``). ``owner[i]``: the network chunk of job ``i``; after a failure in this
        process the chunk's other jobs are not run (their network is failed anyway).
        ``where[i]``: which networks and presentations job ``i`` holds (for messages).

        In the workers (:attr:`distributed`) each job is compiled, run and resampled there (the
        netlist text and the raw waveforms never travel); a failing job is retried once, then
        reported with its networks and presentations; a worker that dies is replaced and its jobs
        run again (:class:`~deepcircuit.substrates.cluster.ProcessRunner`).
        """
        if not jobs:
            return []
        if not self.distributed:
            out, failed = [], {}
            for job, chunk in zip(jobs, owner):
                if chunk in failed:
                    out.append(failed[chunk])
                    continue
                try:
                    out.append(_run_chunk(job, self))
                except SimulationError as exc:
                    if raise_first:
                        raise
                    failed[chunk] = exc
                    out.append(exc)
            return out
        from .cluster import TaskFailed

        out = self.runner.map(_run_chunk, jobs, self, self.worker_engine == "program", raise_failures=False)
        for k, o in enumerate(out):
            if isinstance(o, TaskFailed):
                epoch = f" of epoch {self.epoch}" if self.epoch is not None else ""
                out[k] = SimulationError(f"the ngspice run{epoch} of {where[k]} failed twice in the Dask "
                                         f"workers (retried once): {o.reason}")
                if raise_first:
                    raise out[k]
        return out

    @property
    def runner(self):
        """The Dask runner of this instance's worker processes (started on first use)."""
        if self._runner is None:
            from .cluster import ProcessRunner

            self._runner = ProcessRunner(workers=self.workers, scheduler=self.scheduler, retries=1,
                                         restart_after=self.restart_after)
        return self._runner

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_runner"] = None  # worker processes stay with the instance that started them
        return state

    def close(self) -> None:
        """Stop this instance's worker processes, if any (the in-process shared library is reused
        by every SpiceSubstrate). Safe to call twice."""
        runner, self._runner = getattr(self, "_runner", None), None
        if runner is not None:
            runner.close()

    # -- internals -----------------------------------------------------------------------
    def _simulate(self, ng, net: Netlist):
        """Run the netlist; returns ``(time (T,) seconds, volts (nodes, T))`` or raises."""
        try:
            parse = ng.circuit(net.text)
            bad = [ln for ln in parse if _PARSE_ERROR.search(ln)]
            if bad:
                self._fail(net, 0.0, "ngspice rejected the netlist", bad)
            try:
                err = ng.run_transient(self.max_seconds)
            except _WallTimeExceeded as exc:
                t = ng.vector("time", missing_ok=True)
                end = float(t[-1]) if t is not None and t.size else 0.0
                self._fail(net, end, f"the transient ran past its wall-time budget of max_seconds = "
                           f"{self.max_seconds:g} s ({exc.args[0]:.1f} s) at t = {end:.4g} s of "
                           f"{net.stop:.4g} s", [], cause="too many time steps: a stiff or diverging "
                           "circuit; try clamp='diode', smaller weights, looser reltol, or a larger "
                           "max_seconds")
            fatal = [ln for ln in err if _FATAL.search(ln)]
            fatal += [ln for ln in ng._stdout if re.search(r"error|aborted", ln, re.I)]
            t = ng.vector("time", missing_ok=True)
            end = float(t[-1]) if t is not None and t.size else _stopped_at(fatal)
            if fatal or t is None or end < net.stop * (1 - 1e-9):
                self._fail(net, end, f"ngspice stopped at t = {end:.4g} s of {net.stop:.4g} s", fatal or err)
            return self._node_waveforms(ng, net, t)
        finally:
            ng.release()

    def _simulate_program(self, net: Netlist):
        """:meth:`_simulate` with the ngspice program (``ngspice -b``, one process per run: what the
        worker processes use); the same checks and messages."""
        from .ngspice_program import run_program

        run = run_program(net.text, max_seconds=self.max_seconds)
        vec = _RawVectors(run)
        t = vec.vector("time", missing_ok=True)
        end = float(t[-1]) if t is not None and t.size else 0.0
        said = run.stdout + run.stderr
        bad = [ln for ln in said if _PARSE_ERROR.search(ln) and not ln.lower().startswith("circuit:")]
        if bad and t is None:
            self._fail(net, 0.0, "ngspice rejected the netlist", bad)
        if run.timed_out:
            self._fail(net, end, f"the transient ran past its wall-time budget of max_seconds = {self.max_seconds:g} s",
                       [], cause="too many time steps: a stiff or diverging circuit; try clamp='diode', smaller "
                       "weights, looser reltol, or a larger max_seconds")
        fatal = [ln for ln in run.stderr if _FATAL.search(ln)]
        fatal += [ln for ln in run.stdout if re.search(r"error|aborted", ln, re.I) and not ln.lower().startswith("circuit:")]
        if t is None:
            end = _stopped_at(fatal)
        # ngspice exits 0 even when the run failed: judge it by what it said and the rows it wrote.
        if fatal or t is None or end < net.stop * (1 - 1e-9):
            self._fail(net, end, f"ngspice stopped at t = {end:.4g} s of {net.stop:.4g} s (exit status "
                       f"{run.returncode})", fatal or run.stderr)
        return self._node_waveforms(vec, net, t)

    def _node_waveforms(self, source, net: Netlist, t: np.ndarray):
        """``(t, volts (nodes, T))`` of the free nodes read from ``source`` (the shared library or
        the program's raw file: anything with ``vector(name)``), the supply currents kept in
        ``self._supply``; ngspice's first stored point is its first step, so the ``.ic`` state is
        prepended at t = 0."""
        volts = np.empty((len(net.nodes), t.size))
        for k, node in enumerate(net.nodes):
            volts[k] = source.vector(node)
        self._supply = _read_supply(source, net, t)
        ic = net.meta.get("initial_volts")
        if t[0] > 0 and ic is not None and len(ic) == len(net.nodes):
            t = np.concatenate([[0.0], t])
            volts = np.concatenate([np.asarray(ic, dtype=float)[:, None], volts], axis=1)
        return t, volts

    def _fail(self, net: Netlist, end: float, what: str, lines, cause: str | None = None) -> None:
        path = self._save_netlist(net)
        phase = "free" if end < net.free_end or net.stop <= net.free_end else "nudged"
        said = " | ".join(ln.strip() for ln in lines if ln.strip())[:600] or "nothing on stderr"
        cause = cause or next((c for rx, c in _CAUSES if rx.search(said)), "see the ngspice messages")
        # train() calls run() once per epoch on a substrate it created, so the run index is the
        # epoch there; a caller that knows better sets ``self.epoch``.
        epoch = (f" of epoch {self.epoch}" if self.epoch is not None else
                 f" of run {self.runs - 1} of this substrate (the training epoch, when train() made it)"
                 if self.runs else "")
        raise SimulationError(
            f"ngspice failed in the {phase} phase{epoch}: {what}. ngspice said: {said}. Likely cause: "
            f"{cause}. The netlist is saved in {path} (run it with `ngspice -b {path}`).")

    def _save_netlist(self, net: Netlist) -> Path:
        from ..atomic_files import write_atomic

        self.netlist_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="deepcircuit-failed-", suffix=".cir", dir=self.netlist_dir)
        os.close(fd)
        return write_atomic(name, net.text)

    def _trajectories(self, batch, net: Netlist, inputs, t_s, volts, schedule, seconds) -> PhaseResult:
        roles = batch.roles
        S, P, N = net.shape
        Vs, tau = net.units.v_scale, net.units.tau
        nf = N - roles.n_inputs
        free_v = volts.reshape(S, P, nf, -1) / Vs
        over = np.maximum(np.maximum(free_v - 1.0, -free_v), 0.0)  # outside [0, 1], units of V_scale
        t_tau = t_s / tau
        t_free = net.free_end / tau
        out = []
        phases = [("free", 0.0, schedule.free_steps)]
        if net.stop > net.free_end * (1 + 1e-12):
            phases.append(("nudged", t_free, schedule.nudged_steps))
        for phase, start, steps in phases:
            grid = start + schedule.dt * np.arange(steps + 1)
            grid[-1] = min(grid[-1], t_tau[-1])
            res = np.empty((S, P, steps + 1, N))
            res[..., :roles.n_inputs] = inputs[None, :, None, :]
            flat = free_v.reshape(-1, t_tau.size)
            tgt = res[..., roles.n_inputs:]
            tmp = np.empty((flat.shape[0], steps + 1))
            for k in range(flat.shape[0]):
                tmp[k] = np.interp(grid, t_tau, flat[k])
            tgt[...] = np.moveaxis(tmp.reshape(S, P, nf, steps + 1), 2, 3)
            in_phase = (t_tau >= start - 1e-12) & (t_tau <= grid[-1] + 1e-12)
            dev = over[..., in_phase]
            speed = np.abs(res[:, :, -1, roles.n_inputs:] - res[:, :, -2, roles.n_inputs:]).max(axis=-1) / schedule.dt \
                if steps >= 1 else np.full((S, P), np.inf)
            settled, diverged, msg = phase_status(phase, res, speed, schedule.settle_tol, schedule.dt * steps)
            # A clamped node stays within a diode drop (or J / stiffness) of its rail; a node far
            # outside the rails is a runaway circuit, not a state: the same verdict as non-finite.
            worst = dev.max(axis=(1, 2, 3)) if dev.size else np.zeros(S)
            runaway = worst > self.rail_margin
            if runaway.any():
                diverged = diverged | runaway
                settled = settled & ~diverged[:, None]
                msg = (f"{phase} phase diverged for network(s) {np.flatnonzero(runaway).tolist()}: node "
                       f"voltages {float(worst.max()):.3g} V_scale outside the rails [0, V_scale] (allowed: "
                       f"rail_margin = {self.rail_margin:g} V_scale)")
            why = [f"node voltages {w:.3g} V_scale outside the rails (allowed {self.rail_margin:g})" if r
                   else ("non-finite states" if d else "") for w, r, d in zip(worst, runaway, diverged)]
            meta = {
                "simulator": "ngspice (shared library, PySpice)", "clamp": net.meta["clamp"],
                "units": {"v_scale": Vs, "capacitance": net.units.capacitance,
                          "transconductance": net.units.transconductance, "tau": tau},
                # The clamp's deviation from the ideal projection: how far node voltages went
                # outside [0, V_scale] during the phase, in units of V_scale.
                "clamp_overshoot_max": float(dev.max()) if dev.size else 0.0,
                "clamp_overshoot_final": float(over[..., np.searchsorted(t_tau, grid[-1] - 1e-12)].max()),
                "clamp_overshoot_per_network": worst,
                **({"magnitude": float(worst.max()) + 1.0} if runaway.any() else {}),
                "diverged_why": why,
                "time_points": int(in_phase.sum()), "seconds": seconds, "final_speed": speed,
                "peak_rss_mb": _rss_peak_mb(),
            }
            out.append(Trajectory(grid - start, res, roles, phase, self.name, settled, schedule.settle_tol,
                                  diverged, msg, meta))
        return PhaseResult(*out)
