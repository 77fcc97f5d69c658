"""Printing a netlist's node voltages in plain ``ngspice -b``, and reading the tables back.

A stand-alone netlist (``compile_netlist(..., control=True)``, ``standalone_netlist``) ends in a
``.control`` block (:func:`control_block`) that runs the transient, resamples it onto the ``dt``
grid (``linearize``) and prints every free node voltage in tables of at most :data:`PRINT_CHUNK`
columns; :func:`read_printed_tables` parses what ``ngspice -b`` printed and checks that every
node and every point of the grid came back. Times in seconds, voltages in volts.
"""

from __future__ import annotations

import numpy as np

from ..errors import SimulationError

#: Vectors per ``print`` command of a ``.control`` block (ngspice 39 refuses more than ~1000).
PRINT_CHUNK = 500


def control_block(nodes: list[str]) -> list[str]:
    """The ``.control`` block of a stand-alone netlist: run, ``linearize`` onto the ``.tran``
    print step and print the voltages of ``nodes`` (free nodes, lower case)."""
    lines = [".control", "set width=100000", "set nobreak", "run", "linearize"]
    # ngspice's print takes at most about 1000 vectors ("print: too many args." and no rows
    # above that, with exit status 0): print the nodes in tables of PRINT_CHUNK columns.
    # read_printed_tables() reads them back and checks every row and column.
    for k in range(0, len(nodes), PRINT_CHUNK):
        lines.append("print " + " ".join(f"v({n})" for n in nodes[k:k + PRINT_CHUNK]))
    return lines + ["quit", ".endc"]


def read_printed_tables(stdout: str, net) -> tuple[np.ndarray, np.ndarray]:
    """The node voltages a netlist's ``.control`` block printed in plain ``ngspice -b``.

    Parses every ``print`` table of ``stdout`` (a header ``Index v(...) ...``, then rows
    ``index value ...``) and checks that each node of ``net.nodes`` (``net``: the
    :class:`~deepcircuit.substrates.circuit.Netlist` that was run) came back in its order with
    one row per point of the ``linearize`` grid (``0 .. net.stop`` every ``net.step``). Returns ``(time (T,) seconds, volts (nodes, T))``; raises
    :class:`~deepcircuit.errors.SimulationError` naming what is missing otherwise.
    """

    tables: list[tuple[list[str], list[list[float]]]] = []
    cols: list[str] | None = None
    for line in stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].lower() == "index" and words[1].lower().startswith("v("):
            cols = [w.lower() for w in words[1:]]
            if not tables or tables[-1][0] != cols:
                tables.append((cols, []))
        elif cols is not None and words and words[0].isdigit() and len(words) == len(cols) + 1:
            try:
                tables[-1][1].append([float(w) for w in words[1:]])
            except ValueError:
                continue
    if "too many args" in stdout:
        raise SimulationError("ngspice refused a print command ('print: too many args.'); the netlist's "
                              f".control block must print at most {PRINT_CHUNK} vectors per command.")
    expected = round(net.stop / net.step) + 1
    want = [f"v({n})" for n in net.nodes]
    got = {c for cols_, _ in tables for c in cols_}
    missing = [w for w in want if w not in got]
    if missing:
        raise SimulationError(f"ngspice printed no column for {len(missing)} of {len(want)} nodes "
                              f"(first missing: {missing[0]}); the run did not finish or the output was cut.")
    volts = np.empty((len(want), expected))
    index = {w: k for k, w in enumerate(want)}
    for cols_, rows in tables:
        arr = np.asarray(rows, dtype=float).reshape(-1, len(cols_))
        if arr.shape[0] != expected:
            raise SimulationError(f"ngspice printed {arr.shape[0]} rows for {cols_[0]} .. {cols_[-1]}, expected "
                                  f"{expected} (0 .. {net.stop:.4g} s every {net.step:.4g} s).")
        for k, c in enumerate(cols_):
            if c in index:
                volts[index[c]] = arr[:, k]
    # linearize puts the points on this grid; print shows the index, not the time
    return net.step * np.arange(expected), volts
