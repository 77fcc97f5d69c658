"""Raw data: a data set's features and labels, before any split or scaling.

The one type every data source returns (built-in loaders, the benchmark suite, data files), so
each of them can be read without the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class RawData:
    """Features and labels of a data set, unsplit and unscaled.

    ``whole_table`` marks a data set that is a complete truth table (parity): it is its own
    test set, since no pattern can be held out without removing what is to be learned.
    ``readout`` is ``"argmax"`` (one output per class) or ``"threshold"`` (one output, two classes).
    ``categories`` lists the text columns of a data file that were one-hot encoded, as
    ``((column, (level, ...)), ...)`` in column order (see :mod:`deepcircuit.data.files`).
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    readout: str = "argmax"
    whole_table: bool = False
    categories: tuple = ()

    @property
    def n_classes(self) -> int:
        return len(self.class_names)
