"""The data layer: logic tasks, built-in and user data sets, scaling and splits.

Lives here: :mod:`.tasks` (the logic tasks and the ``Task`` form every data set takes),
:mod:`.builtin` (built-in data sets), :mod:`.files` (reading user data files; nothing in them is
executed), :mod:`.split` (scaling and train/test splits), :mod:`.defaults` (each data set's
default training settings).

May import: the bottom layer and the model layer. Never substrates, learning, stability,
studies or cli (tests/test_layers.py checks this).
"""
