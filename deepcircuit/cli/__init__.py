"""The ``deepcircuit`` command line: one module per subcommand.

Each subcommand module defines ``add_parser(subparsers)`` and ``run(args) -> int``. Errors
that deepcircuit raises on purpose are printed as one readable line (exit status 2), never as
a traceback.

Layer: cli, the top. May import every layer; nothing imports it except the package entry
points (``deepcircuit.__main__``) and the sweeps beside it (tests/test_layers.py checks this).
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
    """Whether Ctrl-C is at the root of ``exc`` (a compiled kernel may wrap it in a SystemError)."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


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
        print(state.interrupted(command), file=sys.stderr)
        return 130
    except SystemError as exc:
        if not _caused_by_interrupt(exc):
            raise
        print(state.interrupted(command), file=sys.stderr)
        return 130
    except DeepCircuitError as exc:
        # One line: a message may quote user text with a newline in it.
        print(f"deepcircuit {command}: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A file or folder the user named cannot be read or written.
        where = f" {str(exc.filename)!r}" if exc.filename else ""
        reason = " ".join(str(exc.strerror or exc).split())  # one line, whatever the OS says
        print(f"deepcircuit {command}: error: cannot access{where}: {reason}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
