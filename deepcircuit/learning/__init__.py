"""The learning layer: written once against the common trajectory form.

Lives here: :mod:`.rule` (the DEEP weight update and the other rules), :mod:`.pruning`,
:mod:`.steps` (one training step), :mod:`.training` (``TrainingConfig`` and the loop),
:mod:`.model_file` and :mod:`.model_schema` (model files: they hold a ``TrainingConfig``, so
they live in the layer that defines it).

May import: bottom, model, data and substrates (through ``deepcircuit.substrates`` only, never
branching on which one). Never stability, studies or cli (tests/test_layers.py checks this).
"""
