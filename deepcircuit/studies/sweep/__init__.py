"""Sweeps: grids of ``deepcircuit train`` runs, run in parallel and gathered into a report.

Lives here: :mod:`.spec` (the sweep file and its grid), :mod:`.run` (running and resuming),
:mod:`.worker` (the worker-side set-up), :mod:`.report` (tables and plots of the results).
They live with the CLI because each run is the ``train`` command's own argument parser and
entry point (``deepcircuit.cli.train``).

May import: every layer and ``deepcircuit.cli``.
"""
