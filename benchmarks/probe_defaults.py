"""Probe the derived default on one suite member: named changes, validation split only.

For ``suite:NAME`` with 20 % of the training rows held out (the test split plays no part), train
the derived default (``data/defaults.py``) and each variant, and print validation and training
accuracy next to logistic regression's. A variant is ``+``-joined changes: ``hidden=32``,
``epochs=60``, ``batch_size=16``, ``xeta=0.3`` (a factor on a TrainingConfig field), ``beta=0.5``
(a value); ``base`` is the default itself. A probe for the next study, not a choice: the default
is chosen by ``benchmarks/study_defaults.py`` over the whole suite (docs/results.md).

    python benchmarks/probe_defaults.py digits28 0 base,epochs=30,epochs=60
    python benchmarks/probe_defaults.py blobs 0,1 base,hidden=32,epochs=60,xeta=0.3
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def variant(base_cfg, hidden, text: str):
    """(hidden, config) of one variant text (see the module docstring)."""
    cfg = base_cfg
    for part in text.split("+"):
        if part == "base":
            continue
        key, val = part.split("=")
        if key == "hidden":
            hidden = (int(val),)
        elif key in ("epochs", "batch_size"):
            cfg = cfg.replace(**{key: int(val)})
        elif key.startswith("x"):
            cfg = cfg.replace(**{key[1:]: getattr(cfg, key[1:]) * float(val)})
        else:
            cfg = cfg.replace(**{key: float(val)})
    return hidden, cfg


def main(argv: list[str]) -> int:
    import study_defaults as sd
    from deepcircuit import TrainingConfig, load_dataset, train
    from deepcircuit.data.defaults import DataShape, derived_defaults

    name, seeds, variants = argv[0], [int(s) for s in argv[1].split(",")], argv[2].split(",")
    ds = load_dataset("suite:" + name, validation_fraction=0.2)
    e = derived_defaults(DataShape.of(ds))
    base = TrainingConfig.preset("default", model="deep").replace(**e.settings)
    print(f"{name}: derived hidden {e.hidden}, " + ", ".join(
        f"{k} {e.settings[k]}" for k in ("eta", "eta_input", "init_scale", "batch_size", "epochs")))
    print(f"logistic regression, validation: {100 * sd.baseline(ds, 'logistic-regression', 1, 'validation')[0]:.1f} %")
    for text in variants:
        hidden, cfg = variant(base, e.hidden, text)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = train(ds, model="deep", topology=e.topology, hidden=hidden, seeds=seeds, config=cfg.replace(eval_every=0))
        val = 100 * (1 - np.asarray(r.validation_error))
        tr = 100 * (1 - np.asarray(r.train_error))
        print(f"{text:32s} validation {val.mean():.1f} % {np.round(val, 1)}  train {tr.mean():.1f} %  "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
