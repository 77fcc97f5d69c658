"""The model layer: the network description, independent of any simulator.

Lives here: :mod:`.network` (weights, biases, masks, batches), :mod:`.roles` (input / hidden /
output / bias neurons), :mod:`.topology` (allowed connections), :mod:`.families` (DEEP and the
other model families).

May import: the bottom layer only (``deepcircuit.errors``, ``deepcircuit._validation``,
``deepcircuit.limits``, ``deepcircuit.atomic_files``). Never data, substrates, learning,
stability, studies or cli (tests/test_layers.py checks this).
"""
