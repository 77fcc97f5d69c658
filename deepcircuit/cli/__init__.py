"""The ``deepcircuit`` command line: one module per subcommand.

Each subcommand module defines ``add_parser(subparsers)`` and ``run(args) -> int``. Errors
that deepcircuit raises on purpose are printed as one readable line (exit status 2), never as
a traceback.

Layer: cli, the top. May import every layer; nothing imports it except the package entry
point ``deepcircuit.__main__`` (tests/test_layers.py checks this).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from ..errors import DeepCircuitError

#: Subcommand modules under deepcircuit.cli, in the order --help lists them.
COMMANDS = ["train", "lyapunov", "export", "compare", "gradcheck", "sweep", "sweep-report"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the option, what is allowed) and a
    pointer to ``--help``, exit status 2, instead of a usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from .. import __version__

    parser = _Parser(
        prog="deepcircuit",
        description="Train DEEP networks and run them on ODE, Brian2 and SPICE substrates.")
    parser.add_argument("--version", action="version", version=f"deepcircuit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


class RunState:
    """What a running subcommand has done, for the one line printed when Ctrl-C stops it.

    Subcommands set ``stage`` ("in epoch 3 of 200", "while running substrate 'spice'") and
    append every file they have finished writing to ``written``.
    """

    def __init__(self) -> None:
        self.stage = ""
        self.written: list[str] = []

    def interrupted(self, command: str) -> str:
        where = f" {self.stage}" if self.stage else ""
        from .output import shown_path  # file names may hold newlines: the line stays one line

        kept = (f"kept {len(self.written)} finished file(s): {', '.join(map(shown_path, self.written))}"
                if self.written
                else "no files were written")
        return f"deepcircuit {command}: interrupted{where}; {kept}"


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether Ctrl-C is at the root of ``exc``: a library may turn the ``KeyboardInterrupt`` into
    another exception chained to it (numba's compiled loop: ``SystemError``; a C extension
    interrupted while its module initialises, as scipy's on Python 3.13: ``ImportError:
    initialization failed``)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _forget_unhandled_interrupt() -> None:
    """Clear CPython's "unhandled KeyboardInterrupt" mark once ``main`` has handled one.

    A ``KeyboardInterrupt`` that leaves code run by a string ``exec``/``eval`` (dataclasses and
    namedtuples build their methods that way, so every import of a module defining one does)
    sets a flag in the interpreter even when a caller catches it. Under ``python -m deepcircuit``
    the interpreter checks that flag after the program has finished and then kills itself with
    SIGINT: exit status -2, although ``main`` printed its one line and returned 130. The flag is
    cleared at the start of every string ``exec``, so an empty one clears it (on an interpreter
    without the flag it does nothing).
    """
    exec("pass", {})


class _Interrupts:
    """While ``main`` runs: note every Ctrl-C, and raise again one that Python would drop.

    * A library may turn the ``KeyboardInterrupt`` into another exception and lose the chain
      (numpy's C extension interrupted while it initialises raises ``ImportError: PyCapsule_Import
      could not import module "datetime"``). Python's own SIGINT handler is therefore replaced
      by one that does the same (raises ``KeyboardInterrupt``) and notes that Ctrl-C came:
      ``received``. Only Python's default handler is replaced (an ignored SIGINT stays ignored),
      and only in the main thread; it is given back on exit.
    * A ``KeyboardInterrupt`` raised inside a weakref callback or a ``__del__`` method cannot
      propagate: Python prints "Exception ignored in ..." with a traceback, goes on, and the
      Ctrl-C is lost (seen while the simulators are imported: importlib's module-lock clean-up
      is such a callback). A ``sys.unraisablehook`` has it raised again in the main thread;
      anything else goes to the previous hook.
    """

    def __init__(self) -> None:
        self.received = False
        self.handler_replaced = False
        self._again = None

    def install(self) -> "_Interrupts":
        import signal

        self.previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        try:
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                signal.signal(signal.SIGINT, self._sigint)
                self.handler_replaced = True
        except ValueError:  # not the main thread: signal handlers cannot be changed here
            pass
        return self

    def _sigint(self, signum, frame):
        self.received = True
        raise KeyboardInterrupt

    def _unraisable(self, unraisable) -> None:
        exc_type, exc = unraisable.exc_type, unraisable.exc_value
        if (exc_type is not None and issubclass(exc_type, KeyboardInterrupt)) \
                or (exc is not None and _caused_by_interrupt(exc)):
            import _thread
            import threading

            # As if SIGINT came again, a moment later from another thread: the handler then runs
            # in the main thread once this hook has returned (raised in here, it would be
            # dropped the same way; dropped again, it comes back again).
            self._again = threading.Timer(0.01, _thread.interrupt_main)
            self._again.daemon = True
            self._again.start()
            return
        self.previous_hook(unraisable)

    def restore(self) -> None:
        import signal

        sys.unraisablehook = self.previous_hook
        if self._again is not None:
            self._again.cancel()
        # Given back unless someone wrapped it meanwhile (Brian2's import does; its wrapper calls it).
        if self.handler_replaced and signal.getsignal(signal.SIGINT) == self._sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    import warnings

    state = RunState()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "".join(a for a in argv[:1] if a in COMMANDS) or "?"

    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        # A warning not caught by a subcommand (numpy, a library) is one line too, not two with
        # the source line.
        print(f"deepcircuit {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    shown, warnings.showwarning = warnings.showwarning, one_line_warning
    interrupts = _Interrupts().install()
    try:
        # Inside the try: importing the simulators takes seconds, and Ctrl-C may come then.
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, or a usage error already printed
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        command = args.command
        bad = next((a for a in argv if "\0" in str(a)), None)
        if bad is not None:
            print(f"deepcircuit {command}: error: an argument contains a NUL character: {bad!r}.",
                  file=sys.stderr)
            return 2
        args.run_state = state
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        _forget_unhandled_interrupt()
        print(state.interrupted(command), file=sys.stderr)
        return 130
    except Exception as exc:
        # After a Ctrl-C, an exception is its doing (a library may wrap or replace the interrupt).
        if interrupts.received or _caused_by_interrupt(exc):
            _forget_unhandled_interrupt()
            print(state.interrupted(command), file=sys.stderr)
            return 130
        if isinstance(exc, DeepCircuitError):
            # One line: a message may quote user text with a newline in it.
            print(f"deepcircuit {command}: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
            return 2
        if isinstance(exc, OSError):
            # A file or folder the user named cannot be read or written.
            where = f" {str(exc.filename)!r}" if exc.filename else ""
            reason = " ".join(str(exc.strerror or exc).split())  # one line, whatever the OS says
            print(f"deepcircuit {command}: error: cannot access{where}: {reason}", file=sys.stderr)
            return 2
        raise
    finally:
        interrupts.restore()
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
