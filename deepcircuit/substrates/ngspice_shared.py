"""ngspice's shared library (``libngspice.so``) through PySpice: one quiet session per process.

The SPICE substrate (:mod:`.spice`) runs its netlists here when it runs them in this process.
:func:`load_ngspice` gives the process's one ``NgSpiceShared`` instance (ngspice keeps global
state), created on first use with a clear error naming the install when the library is missing.

Two PySpice 1.5 behaviours are worked around here:

* PySpice marks every stderr line of ngspice that does not start with ``Warning:`` as an error and
  then raises on the next command, although ngspice prints harmless notes there ("Using SPARSE 1.3
  as Direct Linear Solver" since ngspice 42, "Note: ..."; PySpice issues #379, #392, #399). The
  callback is replaced: stderr is collected and judged by the caller, after the run, by what it says.
* Simulation results stay in ngspice's memory until destroyed (PySpice issues #246, #373). After
  each run the plot is destroyed and the circuit removed (``destroy all``, ``remcirc``:
  ``release()``); the one shared-library instance is reused for the life of the process.

Ctrl-C: a foreground ``run`` executes inside the C library, where Python's signal handler only
runs in PySpice's callbacks and cffi drops the ``KeyboardInterrupt`` raised there. Each
transient therefore runs in ngspice's background thread while Python waits (and checks the
wall-time budget ``max_seconds``, seconds); short foreground calls hold a Ctrl-C and raise it
after (:class:`DeferredInterrupt`).
"""

from __future__ import annotations

import ctypes
import logging
import time

import numpy as np

from ..errors import SimulationError, SubstrateUnavailableError

INSTALL_HINT = "apt-get install libngspice0-dev ngspice"


class DeferredInterrupt:
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


class WallTimeExceeded(Exception):
    """A transient ran past its wall-time budget (seconds elapsed in ``args[0]``)."""


_shared = None  # the one NgSpiceShared instance of this process (ngspice keeps global state)


def load_ngspice():
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


class _BackgroundRun:
    """The transient of the session in ngspice's background thread (mixed into PySpice's
    ``NgSpiceShared`` by :func:`_quiet_class`: it uses the instance's ``_ngspice_shared``
    library handle, ``clear_output`` and the collected ``_stderr``)."""

    def run_transient(self, max_seconds: float | None) -> list[str]:
        """Run the loaded circuit in ngspice's background thread; returns its stderr lines.

        The main thread waits here (short lock waits), so Ctrl-C reaches Python as a
        ``KeyboardInterrupt`` at once (a foreground ``run`` executes inside the C library,
        where a Python signal handler only runs in PySpice's callbacks, which swallow the
        exception). On Ctrl-C or when ``max_seconds`` (wall time) is exceeded, the run is
        halted with ``bg_halt`` before this returns or raises; a timeout raises
        :class:`WallTimeExceeded`.
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
                    raise WallTimeExceeded(time.monotonic() - start)
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


def _quiet_class():
    """PySpice's NgSpiceShared with our output callback and lean run/read helpers (imported lazily)."""
    from PySpice.Spice.NgSpice.Shared import NgSpiceShared, ffi, ffi_string_utf8

    class QuietNgSpice(_BackgroundRun, NgSpiceShared):
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
            with DeferredInterrupt():
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

        def release(self) -> None:
            """Free the results and the circuit, so memory stays flat over many runs (both
            commands run even if Ctrl-C comes in between; it is raised after them)."""
            self._number_of_exec_calls += 2  # counted as in command()
            with DeferredInterrupt():
                for cmd in (b"destroy all", b"remcirc"):
                    self._ngspice_shared.ngSpice_Command(cmd)

        def circuit(self, text: str) -> list[str]:
            """Load a netlist; returns the stdout and stderr lines ngspice printed while parsing."""
            lines = [ln for ln in text.splitlines() if ln] + [""]
            keep = [ffi.new("char[]", ln.encode("utf8")) for ln in lines] + [ffi.NULL]
            self.clear_output()
            with DeferredInterrupt():
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
