"""The studies layer: what is built from trained networks and substrate runs.

Lives here: :mod:`.comparison` (one network on several substrates), :mod:`.report` and
:mod:`.plots`, :mod:`.hardware_figures`, :mod:`.examples_netlists` (regenerates ``netlists/``:
``python -m deepcircuit.studies.examples_netlists``).

May import: every layer below (bottom, model, data, substrates, learning, stability). Never cli
(tests/test_layers.py checks this).
"""
