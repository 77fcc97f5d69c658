"""Sweeps: grids of training runs, run in parallel on Dask and gathered into a report.

Lives here: :mod:`.spec` (the sweep file and its grid of runs), :mod:`.run` (running and
resuming), :mod:`.worker` (the worker-side set-up), :mod:`.estimate` (how long a sweep will
take), :mod:`.report` (tables and plots of the results). A run is data (its ``train``
settings, :meth:`.spec.Run.settings`) trained by :func:`deepcircuit.studies.training_run.run_training`,
the same code ``deepcircuit train`` runs; ``deepcircuit sweep`` and ``sweep-report``
(``deepcircuit/cli``) parse and print.
"""
