"""The benchmark suite: classification sets available offline, for studying defaults.

Thirteen data sets that need no network access: scikit-learn's bundled sets (iris, wine,
breast_cancer, digits), its generators with fixed seeds and varied feature counts, class counts,
noise, separability and class balance, and ``digits28``, a 5000-image 28x28 digit set made
from scikit-learn's 8x8 digits (each upsampled to 28x28, shifted by up to 2 pixels, lightly
rotated and noised). They load by name as ``suite:NAME`` wherever a built-in data set is
accepted (``deepcircuit train --task suite:wine``, ``deepcircuit.load_dataset("suite:wine")``)
and train with the default derived from their shape (:mod:`deepcircuit.data.defaults`): none
has a table entry. :data:`SUITE` lists the names, :func:`suite_table` describes each.

``digits28`` draws its 5000 images from the 1797 source digits (each source gives 2-3 images),
so a test image's source digit may appear, shifted and noised, among the training rows: its
accuracy is optimistic compared with digits from unseen writers, for every model alike.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .raw import RawData

#: Prefix of suite names where a data set name is accepted.
PREFIX = "suite:"
#: The seed of every generator and of the digits28 augmentation.
SUITE_SEED = 0
#: digits28: image count, side (pixels), largest shift (pixels), rotation sd (degrees), noise sd.
DIGITS28 = {"n": 5000, "side": 28, "shift": 2, "rotate": 8.0, "noise": 0.05}


def _bundled(loader_name: str, name: str) -> Callable[[], RawData]:
    def load() -> RawData:
        import sklearn.datasets as sd

        d = getattr(sd, loader_name)()
        names = tuple(str(n).replace(" ", "_") for n in d.feature_names)
        return RawData(PREFIX + name, d.data.astype(float), d.target.astype(int), names,
                       tuple(str(c) for c in d.target_names))
    return load


def _generated(name: str, make: Callable[[], tuple]) -> Callable[[], RawData]:
    def load() -> RawData:
        x, y = make()
        k = int(y.max()) + 1
        return RawData(PREFIX + name, np.asarray(x, float), np.asarray(y, int),
                       tuple(f"x{i}" for i in range(x.shape[1])), tuple(f"class{c}" for c in range(k)))
    return load


def _classification(**kw) -> Callable[[], tuple]:
    def make():
        from sklearn.datasets import make_classification

        return make_classification(random_state=SUITE_SEED, **kw)
    return make


def _sk(fn: str, **kw) -> Callable[[], tuple]:
    def make():
        import sklearn.datasets as sd

        return getattr(sd, fn)(random_state=SUITE_SEED, **kw)
    return make


def _digits28() -> RawData:
    """5000 28x28 digit images from scikit-learn's 8x8 digits (grey levels 0..1)."""
    from scipy import ndimage
    from sklearn.datasets import load_digits

    d = load_digits()
    p = DIGITS28
    rng = np.random.default_rng(SUITE_SEED)
    src = np.concatenate([rng.permutation(len(d.target)) for _ in range(-(-p["n"] // len(d.target)))])[: p["n"]]
    side = p["side"]
    x = np.empty((p["n"], side * side))
    for row, k in enumerate(src):
        # 8x8 -> 24x24 (bilinear), padded to 28x28, then moved: what an image set's writer variation looks like.
        img = np.pad(ndimage.zoom(d.images[k] / 16.0, 3, order=1), 2)
        img = ndimage.rotate(img, rng.normal(0, p["rotate"]), reshape=False, order=1)
        img = ndimage.shift(img, rng.integers(-p["shift"], p["shift"] + 1, size=2), order=0)
        img = img + rng.normal(0, p["noise"], img.shape)
        x[row] = np.clip(img, 0.0, 1.0).ravel()
    # Pixels at the border stay 0 (black) as in any image set: no noise where no stroke can be.
    border = np.ones((side, side), bool)
    border[4:-4, 4:-4] = False
    x[:, border.ravel()] = 0.0
    return RawData(PREFIX + "digits28", x, d.target[src].astype(int),
                   tuple(f"pixel_{r}_{c}" for r in range(side) for c in range(side)),
                   tuple(str(k) for k in range(10)))


_LOADERS: dict[str, Callable[[], RawData]] = {
    "iris": _bundled("load_iris", "iris"),
    "wine": _bundled("load_wine", "wine"),
    "breast_cancer": _bundled("load_breast_cancer", "breast_cancer"),
    "digits": _bundled("load_digits", "digits"),
    "moons": _generated("moons", _sk("make_moons", n_samples=1000, noise=0.2)),
    "circles": _generated("circles", _sk("make_circles", n_samples=1000, noise=0.1, factor=0.5)),
    "blobs": _generated("blobs", _sk("make_blobs", n_samples=1000, n_features=5, centers=4, cluster_std=3.0)),
    "quantiles": _generated("quantiles", _sk("make_gaussian_quantiles", n_samples=1000, n_features=3, n_classes=3)),
    "clf-easy": _generated("clf-easy", _classification(
        n_samples=1000, n_features=10, n_informative=5, n_redundant=2, n_classes=2, class_sep=1.0)),
    "clf-noisy": _generated("clf-noisy", _classification(
        n_samples=1000, n_features=20, n_informative=8, n_redundant=4, n_classes=4, class_sep=1.0, flip_y=0.05)),
    "clf-imbalanced": _generated("clf-imbalanced", _classification(
        n_samples=1000, n_features=8, n_informative=4, n_redundant=2, n_classes=2, weights=[0.9, 0.1],
        class_sep=0.8)),
    "clf-wide": _generated("clf-wide", _classification(
        n_samples=600, n_features=50, n_informative=10, n_redundant=10, n_classes=3, class_sep=1.5)),
    "digits28": _digits28,
}
#: The suite's names (without the ``suite:`` prefix).
SUITE = tuple(_LOADERS)


def is_suite(name: object) -> bool:
    """Whether ``name`` is ``suite:NAME`` for a member of the suite."""
    return isinstance(name, str) and name.lower().startswith(PREFIX) and name.lower()[len(PREFIX):] in _LOADERS


def load_suite(name: str) -> RawData:
    """The raw data of ``suite:NAME`` (or ``NAME``); the same rows on every call."""
    key = str(name).lower()
    key = key[len(PREFIX):] if key.startswith(PREFIX) else key
    return _LOADERS[key]()


def suite_table() -> list[dict]:
    """One row per member: name, samples, features, classes and the share of the rarest class."""
    rows = []
    for name in SUITE:
        raw = load_suite(name)
        counts = np.bincount(raw.y)
        rows.append({"name": name, "samples": len(raw.y), "features": raw.x.shape[1],
                     "classes": raw.n_classes, "minority": float(counts.min() / counts.sum())})
    return rows
