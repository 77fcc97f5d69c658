"""MNIST-sized data: time and peak memory of loading a 70 000 x 784 file (CSV and NPZ).

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_large_data.py [--rows 70000] [--side 28]
[--dir /tmp/dc-large] [--train-rows 2000]``

Writes a synthetic image set once into ``--dir``: ``rows`` images of ``side x side`` pixels with
integer values 0..255 (uint8-like, as MNIST) inside a zero border of 2 pixels (the border
columns are constant, as in any image set), labels 0..9, as ``images.csv`` (header ``x0..,
label``) and ``images.npz`` (``x`` as uint8, ``y``). Then, each in a fresh process, it runs
``load_dataset`` on each file and reports the wall and CPU time (of all its threads; the
libraries it uses are imported first) and the process's peak RSS above its size after the
imports (``resource.getrusage``: ru_maxrss). With ``--train-rows N`` it also
trains one epoch of minibatches (batch 64, the user-file defaults, a 784-100-10 layered network
plus the sink where the defaults have one) on the first N training rows, and reports its time and peak RSS.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def make_files(folder: Path, rows: int, side: int) -> tuple[Path, Path]:
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    csv, npz = folder / f"images_{rows}x{side * side}.csv", folder / f"images_{rows}x{side * side}.npz"
    if csv.exists() and npz.exists():
        return csv, npz
    rng = np.random.default_rng(0)
    x = np.zeros((rows, side, side), dtype=np.uint8)
    x[:, 2:-2, 2:-2] = rng.integers(0, 256, size=(rows, side - 4, side - 4), dtype=np.uint8)
    x = x.reshape(rows, -1)
    y = rng.integers(0, 10, size=rows)
    np.savez_compressed(npz, x=x, y=y)
    with open(csv, "w") as fh:
        fh.write(",".join([f"x{k}" for k in range(x.shape[1])] + ["label"]) + "\n")
        for start in range(0, rows, 5000):
            block = np.hstack([x[start:start + 5000], y[start:start + 5000, None]])
            np.savetxt(fh, block, fmt="%d", delimiter=",")
    return csv, npz


_CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np
import deepcircuit as dc
from deepcircuit.data.split import load_dataset
path, train_rows = sys.argv[1], int(sys.argv[2])
import sklearn.model_selection, sklearn.preprocessing, pyarrow.csv  # imported before the clock starts
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0, c0 = time.perf_counter(), time.process_time()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ds = load_dataset(path)
load, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {"file": path, "load_seconds": round(load, 2), "load_cpu_seconds": round(cpu, 2),
       "peak_rss_above_imports_mb": round((peak - base) / 1024),
       "train": ds.train.n_presentations, "test": ds.test.n_presentations, "inputs": ds.train.n_inputs,
       "warnings": [str(w.message) for w in caught]}
if train_rows:
    from dataclasses import replace
    small = replace(ds, train=ds.train.subset(slice(0, train_rows)), test=ds.test.subset(slice(0, train_rows // 4)))
    cfg = dc.TrainingConfig.for_task(small).replace(epochs=1, batch_size=64)
    t0, c0 = time.perf_counter(), time.process_time()
    r = dc.train(small, seeds=[0], hidden=(100,), config=cfg, progress=False)
    out.update(train_rows=train_rows, train_seconds=round(time.perf_counter() - t0, 1),
               train_cpu_seconds=round(time.process_time() - c0, 1),
               train_accuracy=round(float(r.train_accuracy[0]), 3), test_accuracy=round(float(r.test_accuracy[0]), 3),
               neurons=int(r.networks[0].roles.n_neurons), peak_rss_after_training_mb=round(
                   (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024))
print(json.dumps(out))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=70_000)
    p.add_argument("--side", type=int, default=28)
    p.add_argument("--dir", default="/tmp/dc-large")
    p.add_argument("--train-rows", type=int, default=0)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    csv, npz = make_files(Path(args.dir), args.rows, args.side)
    print(f"files ready in {time.perf_counter() - t0:.1f} s: {csv} ({csv.stat().st_size / 2**20:.0f} MiB), "
          f"{npz} ({npz.stat().st_size / 2**20:.0f} MiB)", flush=True)
    for path in (csv, npz):
        r = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(args.train_rows if path == npz else 0)],
                           capture_output=True, text=True)
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return r.returncode
        print(r.stdout.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
