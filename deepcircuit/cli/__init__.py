"""The ``deepcircuit`` command line: one module per subcommand.

Each subcommand module defines ``add_parser(subparsers)`` and ``run(args) -> int``. Errors
that deepcircuit raises on purpose are printed as one readable line (exit status 2), never as
a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from ..errors import DeepCircuitError

#: Subcommand modules under deepcircuit.cli, in the order --help lists them.
COMMANDS = ["train", "lyapunov", "export", "compare"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="deepcircuit",
        description="Train DEEP networks and run them on ODE, Brian2 and SPICE substrates.")
    parser.add_argument("--version", action="version", version=f"deepcircuit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
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
        kept = (f"kept {len(self.written)} finished file(s): {', '.join(self.written)}" if self.written
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
    state = RunState()
    command = "".join(a for a in (argv if argv is not None else sys.argv[1:])[:1] if a in COMMANDS) or "?"
    try:
        # Inside the try: importing the simulators takes seconds, and Ctrl-C may come then.
        parser = build_parser()
        args = parser.parse_args(argv)
        command = args.command
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
        print(f"deepcircuit {command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A file or folder the user named cannot be read or written.
        where = f" {exc.filename!r}" if exc.filename else ""
        print(f"deepcircuit {command}: error: cannot access{where}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
