"""Built-in data sets: raw features and labels, before any split or scaling.

``digits`` (scikit-learn's 8x8 handwritten digits: 1797 samples, 64 features with values
0..16, 10 classes), ``iris`` (150 samples, 4 features in cm, 3 classes), ``moons`` (two
interleaved half circles: 1000 samples, 2 features, noise 0.2, generator seed 0) and
``parity-N`` (every N-bit pattern, label = odd number of ones; N = 2..8). All come with
scikit-learn or are generated here, so nothing needs network access.

Each loader returns a :class:`RawData`: features ``x (n_samples, n_features)`` in their own
units, integer labels ``y (n_samples,)`` in ``0..n_classes-1``, and readable names.
"""

from __future__ import annotations

import itertools
import re

import numpy as np

from ..errors import InvalidInputError
from .raw import RawData

#: The moons data set: sample count, noise (standard deviation, in the units of the features)
#: and the generator seed that fixes it once for every user.
MOONS_SAMPLES, MOONS_NOISE, MOONS_SEED = 1000, 0.2, 0
PARITY_BITS = range(2, 9)


def _digits() -> RawData:
    from sklearn.datasets import load_digits

    d = load_digits()
    return RawData("digits", d.data.astype(float), d.target.astype(int),
                   tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8)),
                   tuple(str(k) for k in range(10)))


def _iris() -> RawData:
    from sklearn.datasets import load_iris

    d = load_iris()
    names = tuple(n.replace(" (cm)", "").replace(" ", "_") for n in d.feature_names)
    return RawData("iris", d.data.astype(float), d.target.astype(int), names, tuple(d.target_names))


def _moons() -> RawData:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=MOONS_SAMPLES, noise=MOONS_NOISE, random_state=MOONS_SEED)
    return RawData("moons", x.astype(float), y.astype(int), ("x", "y"), ("upper", "lower"))


def _parity(n: int) -> RawData:
    x = np.array(list(itertools.product((0, 1), repeat=n)), dtype=float)
    y = (x.sum(axis=1) % 2).astype(int)
    return RawData(f"parity-{n}", x, y, tuple(f"b{i}" for i in range(n)), ("even", "odd"),
                   readout="threshold", whole_table=True)


_LOADERS = {"digits": _digits, "iris": _iris, "moons": _moons}
BUILTIN_DATASETS = tuple(_LOADERS) + tuple(f"parity-{n}" for n in PARITY_BITS)


def is_builtin(name: object) -> bool:
    """Whether ``name`` is a built-in data set (``digits``, ``iris``, ``moons``, ``parity-N``, or a
    benchmark suite member ``suite:NAME``, :mod:`deepcircuit.data.suite`)."""
    from .suite import PREFIX

    # Any suite:NAME is ours: an unknown member fails in load_builtin with the suite's names.
    return isinstance(name, str) and (name.lower() in BUILTIN_DATASETS or name.lower().startswith(PREFIX))


def load_builtin(name: str) -> RawData:
    """The raw data of the built-in data set ``name``; unknown names fail with the choices."""
    from .suite import PREFIX, SUITE, is_suite, load_suite

    key = str(name).lower()
    if is_suite(key):
        return load_suite(key)
    if key.startswith(PREFIX):
        raise InvalidInputError(f"Unknown benchmark suite member {name!r}; the suite is "
                                f"{', '.join(PREFIX + n for n in SUITE)}.")
    m = re.fullmatch(r"parity-(\d+)", key)
    if m:
        n = int(m.group(1))
        if n not in PARITY_BITS:
            raise InvalidInputError(f"parity-N needs N in 2..8; got {name!r}.")
        return _parity(n)
    if key not in _LOADERS:
        raise InvalidInputError(
            f"Unknown data set {name!r}; built-in data sets are {', '.join(BUILTIN_DATASETS)}, the "
            f"benchmark suite {', '.join(PREFIX + n for n in SUITE)} (or give a file with --data FILE.csv / FILE.npz).")
    return _LOADERS[key]()
