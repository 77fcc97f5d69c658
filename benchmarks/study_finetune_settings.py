"""Which settings should an in-situ fine-tune use? (docs/insitu.md, "The fine-tune's settings")

One epoch of ``train(init=MODEL, substrate=ode:mismatch=M;seed=1)`` on chips ``(1, 0..K-1)``
for every arm ``ETA_SCALE/BATCH[/BETA_SCALE]`` (factors on the model file's eta and beta, the
minibatch size), each scored on the whole test split from the deployed arm's initial states
(``studies.insitu.test_scores``). Prints one line per (mismatch, arm); writes the rows as JSON.

    python benchmarks/study_finetune_settings.py runs/ideal/seed0.json 0.3,0.1,0 1/64,0.3/64,0.25/16 [CHIPS] [OUT.json]
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from deepcircuit.data.split import dataset_for_model
from deepcircuit.learning.model_file import load_model
from deepcircuit.learning.training import train
from deepcircuit.studies.insitu import test_scores
from deepcircuit.substrates import get_substrate


def main(argv: list[str]) -> int:
    model = load_model(argv[0])
    mismatches = [float(x) for x in argv[1].split(",")]
    arms = []
    for a in argv[2].split(","):
        parts = [float(v) for v in a.split("/")]
        arms.append(tuple(parts) + (1.0,) * (3 - len(parts)))  # eta x, batch, beta x
    chips = list(range(int(argv[3]) if len(argv) > 3 else 5))
    out = argv[4] if len(argv) > 4 else None
    ds = dataset_for_model(model)
    cfg0 = model.training_config()
    rows = []
    for m in mismatches:
        sub = get_substrate("ode", mismatch=m, seed=1, record="final", max_seconds=None)
        dep = test_scores([model.network] * len(chips), ds.test, sub, chips, cfg0).accuracy * 100
        print(f"mismatch {m}: deployed {np.round(dep, 1)} mean {dep.mean():.2f}", flush=True)
        for eta_x, batch, beta_x in arms:
            t0 = time.perf_counter()
            cfg = cfg0.replace(epochs=1, eval_every=0, eta=cfg0.eta * eta_x, batch_size=int(batch),
                               beta=cfg0.beta * beta_x)
            res = train(ds, init=[model] * len(chips), seeds=chips, config=cfg, substrate=sub)
            acc = test_scores(res.networks, ds.test, sub, chips, cfg0).accuracy * 100
            print(f"mismatch {m}: eta x{eta_x:g} batch {int(batch)} beta x{beta_x:g}: {np.round(acc, 1)} "
                  f"mean {acc.mean():.2f} (gain {(acc - dep).mean():+.2f}; {time.perf_counter() - t0:.0f} s)", flush=True)
            rows.append({"mismatch": m, "eta_x": eta_x, "batch": int(batch), "beta_x": beta_x,
                         "accuracy": acc.tolist(), "deployed": dep.tolist()})
    if out:
        from deepcircuit.atomic_files import write_atomic

        write_atomic(out, json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
