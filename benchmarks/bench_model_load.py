"""Cost of the model-file safety checks: load time with and without the schema validation.

Run: ``.venv/bin/python benchmarks/bench_model_load.py [--hidden 96 496 1020] [--repeat 3] [--quick]``

For networks of several sizes, saves a model file and times, side by side in one process:
the whole ``load_model`` (size and depth checks, JSON parse with the integer-size hook, the
schema validation of every field, rebuilding the Network) against the same load with the
schema validation replaced by a no-op. Reports the file size and the ratio. The checks are
linear in the file size; the target is that they at most double the load time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import deepcircuit.learning.model_schema as model_schema
from deepcircuit import Network, Roles
from deepcircuit.learning.model_file import load_model, save_model


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[96, 496, 1020])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="only 100 and 500 neurons")
    args = p.parse_args(argv)
    if args.quick:
        args.hidden = [h for h in args.hidden if h < 1000]
    real = model_schema.validate_model_dict
    print(f"{'neurons':>8} {'file MB':>8} {'load s':>8} {'no schema s':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as d:
        for h in args.hidden:
            net = Network.create(Roles(3, (h,), 1), rng=0)
            path = save_model(Path(d) / f"m{h}.json", net)
            full = best(lambda: load_model(path), args.repeat)
            model_schema.validate_model_dict = lambda *a, **k: None
            try:
                bare = best(lambda: load_model(path), args.repeat)
            finally:
                model_schema.validate_model_dict = real
            print(f"{net.n_neurons:>8} {path.stat().st_size / 2**20:>8.2f} {full:>8.3f} {bare:>12.3f} "
                  f"{full / bare:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
