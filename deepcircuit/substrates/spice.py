"""The SPICE substrate: the network as a circuit, simulated in ngspice through PySpice.

The batch is compiled into one netlist (:mod:`deepcircuit.substrates.circuit`): every network and every
presentation is a copy of the circuit, and the nudge is switched on inside the same transient, so
one ngspice run simulates a whole phase pair. The run goes through ngspice's shared library
(``libngspice.so``) with PySpice's ``NgSpiceShared``; node voltages are read back, divided by
``V_scale`` and resampled onto the schedule's uniform grid (times in tau), then returned as the
common :class:`~deepcircuit.substrates.trajectory.Trajectory` form.

Where the pieces live: this module holds the substrate (:class:`SpiceSubstrate`: chunks of a
call as netlists, run here or in Dask workers, ngspice's failures judged and explained) and
:func:`simulate_netlist`; the shared-library session, its quieting of PySpice and Ctrl-C are in
:mod:`.ngspice_shared`, the program runs in :mod:`.ngspice_program`, and reading a run back into
trajectories in :mod:`.spice_results`.
"""

from __future__ import annotations

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
from ..errors import DivergenceError, InvalidInputError, SimulationError
from ..model.network import NetworkBatch
from .ngspice_shared import WallTimeExceeded, load_ngspice
from .spice_results import (RawVectors, failed_part, join_networks, join_presentations, node_waveforms,
                            phase_trajectories)
from .trajectory import PhaseResult
from .base import Schedule, Substrate, check_run_arguments

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


def _fingerprint(batch: NetworkBatch) -> bytes:
    """Identifies a batch's circuits (weights, biases, connections) to remember failures."""
    import hashlib

    h = hashlib.sha1()
    for arr in (batch.weights, batch.bias, batch.mask):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.digest()


#: ``presentations_per_run="auto"``: copies of the circuit in one netlist are limited so that it
#: holds at most this many free nodes. ngspice's cost grows faster than the number of copies
#: (every copy shares the time steps the stiffest one needs), so large circuits run one
#: presentation per netlist (measured in benchmarks/bench_spice_scale.py; docs/spice.md).
AUTO_MAX_FREE_NODES_PER_RUN = 64


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
    t, v = sub._simulate_program(net) if program else sub._simulate(load_ngspice(), net)
    res = phase_trajectories(job.batch, net, job.inputs, t, v, job.schedule, time.perf_counter() - t0,
                             rail_margin=sub.rail_margin, name=sub.name)
    return res, sub._supply, net.meta.get("devices")


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
    t, v = SpiceSubstrate()._simulate(load_ngspice(), net)
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
        The synapse: ideal VCCS (default) or an OTA with a supply (see ``chip.TransconductorModel``).
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
                parts.append(failed_part(sub, inputs, schedule, targets, self.name,
                                         f"still failing: {self._failed[key]}"))
                continue
            got = [next(outputs) for _ in jobs]
            bad = next((o for o in got if isinstance(o, SimulationError)), None)
            if bad is not None:
                # One network (chunk) of a batch failed: it is reported as diverged, with ngspice's
                # reason and the saved netlist, and the other networks go on.
                self._failed[key] = str(bad)
                parts.append(failed_part(sub, inputs, schedule, targets, self.name, str(bad)))
                continue
            supplies = [{**supply, "networks": (a, a + len(sub)), "presentations": (sl.start, sl.stop)}
                        for (sl, _), (_, supply, _) in zip(jobs, got) if supply is not None]
            part = join_presentations([res for res, _, _ in got])
            if supplies and len(supplies) == len(jobs):
                part.free.meta["supply"] = supplies  # one entry per ngspice run, with the block it covers
            part.free.meta["devices"] = got[0][2]
            parts.append(part)
        return parts[0] if len(parts) == 1 else join_networks(parts)

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
        (``supply``: :func:`~.spice_results.read_supply` of that run, None without a supply), or the
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
            except WallTimeExceeded as exc:
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
            t, volts, self._supply = node_waveforms(ng, net, t)
            return t, volts
        finally:
            ng.release()

    def _simulate_program(self, net: Netlist):
        """:meth:`_simulate` with the ngspice program (``ngspice -b``, one process per run: what the
        worker processes use); the same checks and messages."""
        from .ngspice_program import run_program

        run = run_program(net.text, max_seconds=self.max_seconds)
        vec = RawVectors(run)
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
        t, volts, self._supply = node_waveforms(vec, net, t)
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
