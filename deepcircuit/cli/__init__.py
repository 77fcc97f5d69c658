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
COMMANDS = ["train", "lyapunov", "export", "compare", "gradcheck"]


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except DeepCircuitError as exc:
        print(f"deepcircuit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A file or folder the user named cannot be read or written.
        where = f" {exc.filename!r}" if exc.filename else ""
        print(f"deepcircuit {args.command}: error: cannot access{where}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deepcircuit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
