"""The studies layer: what is built from trained networks and substrate runs.

Lives here: :mod:`.comparison` (one network on several substrates), :mod:`.report` and
:mod:`.plots`, :mod:`.hardware_figures`, :mod:`.examples_netlists` (regenerates ``netlists/``:
``python -m deepcircuit.studies.examples_netlists``); one training run from its settings
(:mod:`.run_options`: the ``train`` options; :mod:`.training_run`: settings checked and trained;
:mod:`.option_checks`, :mod:`.hardware_options`), which ``deepcircuit train`` and :mod:`.sweep`
(grids of runs on Dask) both call.

May import: every layer below (bottom, model, data, substrates, learning, stability). Never cli
(tests/test_layers.py checks this).
"""
