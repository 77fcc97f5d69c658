"""Running a netlist in the ngspice *program* (``ngspice -b``) and reading its binary raw file.

The SPICE substrate's worker processes use this instead of the shared library: each run is a
process of its own, so nothing accumulates in the worker between runs, and ngspice's callbacks
never wait for the worker's Python interpreter (in a Dask worker the shared library's status
and output callbacks need the interpreter lock the worker's own threads also take; on the
loaded 2-core machine a digits run took 1.6-9x longer there than in a plain process, see
docs/spice.md). The netlist gets a ``.control`` block that runs the transient, prints the
``.meas`` results (``-r`` would suppress them) and writes every saved vector to a raw file.

ngspice exits with status 0 even when the transient fails, so the caller judges the run by what
it printed and by the rows that came out (:func:`run_program` returns both).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SubstrateUnavailableError


@dataclass
class ProgramRun:
    """What one ``ngspice -b`` run left: its vectors (name -> array, lower-case names such as
    ``time``, ``v(s0p0_h0)``, ``i(v_dd_s0p0)``; empty when no raw file was written), its stdout
    and stderr lines, its exit status, and whether it ran past the wall-time budget."""

    vectors: dict
    stdout: list
    stderr: list
    returncode: int
    timed_out: bool = False


def program_path() -> str:
    """The ngspice program, or SubstrateUnavailableError naming the install."""
    path = shutil.which("ngspice")
    if path is None:
        raise SubstrateUnavailableError("The ngspice program was not found on PATH; install it with "
                                        "`apt-get install ngspice`.")
    return path


def read_raw(path: "str | Path") -> dict:
    """The vectors of the first real-valued plot of an ngspice binary raw file ({} if unreadable).

    Format: ASCII header lines (``No. Variables:``, ``No. Points:``, ``Variables:`` then one
    ``index name type`` line per vector), ``Binary:``, then the points, each one float64 per
    vector (little-endian on the machines ngspice writes it on).
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        return {}
    mark = data.find(b"Binary:\n")
    if mark < 0:
        return {}
    head = data[:mark].decode("latin-1")
    nv = re.search(r"No\. Variables:\s*(\d+)", head)
    npts = re.search(r"No\. Points:\s*(\d+)", head)
    if not (nv and npts) or "complex" in head.split("Variables:")[0].lower():
        return {}
    n, m = int(nv.group(1)), int(npts.group(1))
    names = []
    for ln in head.split("Variables:", 2)[-1].splitlines():
        parts = ln.split()
        if len(parts) >= 3 and parts[0].isdigit():
            names.append(parts[1].lower())
    body = data[mark + len(b"Binary:\n"):]
    if len(names) != n or len(body) < n * m * 8:
        return {}  # a raw file cut short: the run did not finish writing it
    values = np.frombuffer(body[:n * m * 8], dtype="<f8").reshape(m, n)
    return {name: values[:, k].copy() for k, name in enumerate(names)}


def run_program(text: str, *, max_seconds: "float | None" = None, workdir: "str | Path | None" = None) -> ProgramRun:
    """Run netlist ``text`` (no ``.control`` block of its own) with ``ngspice -b``.

    The run's files live in a temporary folder under ``workdir`` (default: the system's) that is
    removed afterwards. ``max_seconds`` (wall time): the process is killed past it and the result
    says ``timed_out``.
    """
    exe = program_path()
    with tempfile.TemporaryDirectory(prefix="deepcircuit-ngspice-", dir=workdir) as tmp:
        cir, raw = os.path.join(tmp, "run.cir"), os.path.join(tmp, "run.raw")
        body = text.rstrip()
        if body.lower().endswith(".end"):
            body = body[:-4].rstrip()
        with open(cir, "w", encoding="ascii", errors="replace") as fh:
            fh.write(f"{body}\n.control\nset filetype=binary\nrun\nwrite {raw}\nquit\n.endc\n.end\n")
        try:
            p = subprocess.run([exe, "-b", cir], capture_output=True, text=True, errors="replace",
                               timeout=max_seconds, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            return ProgramRun(read_raw(raw), out.splitlines(), err.splitlines(), -9, True)
        return ProgramRun(read_raw(raw), p.stdout.splitlines(), p.stderr.splitlines(), p.returncode)
