"""The learning layer: written once against the common trajectory form.

Lives here: :mod:`.rule` (the DEEP weight update and the other rules), :mod:`.pruning`,
:mod:`.config` (``TrainingConfig`` and its presets), :mod:`.initial_networks`, :mod:`.training`
(``train``: the run's start and its epochs as a list of named steps), :mod:`.loop` (the run's
state and the epoch's steps on it), :mod:`.steps` (the steps on arrays), :mod:`.results`
(``TrainingResult``, ``History``), :mod:`.evaluation` (``evaluate``, ``predict``),
:mod:`.model_file` and :mod:`.model_schema` (model files: they hold a ``TrainingConfig``, so
they live in the layer that defines it).

May import: bottom, model, data and substrates (through ``deepcircuit.substrates`` only, never
branching on which one). Never stability, studies or cli (tests/test_layers.py checks this).
"""
