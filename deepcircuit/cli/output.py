"""Shared output helpers of the subcommands: tables and the final JSON line."""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

# numpy is imported where it is used: the interrupted line (RunState.interrupted) needs
# shown_path from here, also after a Ctrl-C that stopped numpy's own import half-way (numpy's
# C extension then refuses a second import: "cannot load module more than once per process").


def to_jsonable(o: Any) -> Any:
    """Numbers, arrays and containers as plain JSON values (NaN/inf become null)."""
    import numpy as np

    if isinstance(o, dict):
        return {str(k): to_jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [to_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return to_jsonable(o.tolist())
    if isinstance(o, (np.bool_, bool)):
        return bool(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        f = float(o)
        return f if math.isfinite(f) else None
    return o


def print_json_line(obj: Any) -> None:
    """Print ``obj`` as one JSON object on the last line of standard output."""
    print(json.dumps(to_jsonable(obj), separators=(",", ":")), flush=True)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with right-aligned columns."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    import numpy as np

    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def shown_path(path: Any) -> str:
    """A user's path as printed on the terminal: shell-quoted when it is printable, else its
    Python repr, so control characters (newlines, ESC sequences) in a file name are never sent
    raw to the terminal."""
    import shlex

    text = str(path)
    return shlex.quote(text) if text.isprintable() else repr(text)


def print_warnings(caught: Sequence[Any], file: Any = None) -> None:
    """Print recorded warnings to stderr, each distinct message once, in order of first appearance.

    ``caught`` is the list from ``warnings.catch_warnings(record=True)``. A message raised more
    than once (the same final evaluation warning from every substrate of a comparison, say) gets
    its count appended, ``(3 times)``, instead of being repeated.
    """
    import sys

    from ..studies.training_run import warning_lines

    for line in warning_lines(caught):
        print(f"warning: {line}", file=file or sys.stderr)
