"""Regenerate the example netlists in ``netlists/``: ``python -m deepcircuit.studies.examples_netlists``.

Everything is deterministic (fixed seeds, the fixed ``paper`` preset, the ODE substrate), so a
test can regenerate the files in a temporary folder and check that the committed ones are
current. Written:

* ``xor_trained.cir``: XOR network of seed 6 (complete graph, 5 hidden neurons) trained 200 epochs
  with the paper preset on the ODE substrate; diode clamps; free and nudged phase.
* ``xor_trained_limiter.cir``, ``xor_trained_precision.cir``: the same network with the stiff
  limiter and with op-amp precision clamps.
* ``xor_pruned.cir``: XOR network of seed 8 trained the same way, then pruned by magnitude
  (connections with ``|W| <= 0.05`` removed: 21 of 48 remain) and still solving XOR; diode clamps.
* ``models/*.json``: the model files the netlists were exported from (``deepcircuit export`` on
  them gives the same netlists).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

#: (file stem, seed, magnitude-pruning threshold or None, clamp)
EXAMPLES = (("xor_trained", 6, None, "diode"), ("xor_trained_limiter", 6, None, "limiter"),
            ("xor_trained_precision", 6, None, "precision"), ("xor_pruned", 8, 0.05, "diode"))


def generate(out: "str | Path" = "netlists") -> list[Path]:
    """Train the example networks and write their netlists and model files under ``out``."""
    from ..substrates.circuit import standalone_netlist
    from ..learning.model_file import ModelFile, save_model
    from ..atomic_files import write_atomic
    from ..learning.pruning import magnitude_prune
    from ..learning.config import TrainingConfig
    from ..learning.evaluation import evaluate
    from ..learning.training import train

    out = Path(out)
    config = TrainingConfig.preset("paper")
    seeds = sorted({seed for _, seed, _, _ in EXAMPLES})
    result = train("xor", seeds=seeds, config=config)
    trained = dict(zip(result.seeds, result.networks))
    written = []
    for stem, seed, tol, clamp in EXAMPLES:
        net = trained[seed]
        how = "trained 200 epochs (paper preset, ODE substrate)"
        if tol is not None:
            net = net.pruned(magnitude_prune(net.weights[None], net.mask[None], tol=tol)[0])
            how += f", then pruned by magnitude (|W| <= {tol})"
        _, err, mse = evaluate(net, "xor", schedule=config.schedule, rng=0)
        model = ModelFile(net, seed=seed, task="xor", substrate="ode", config=config.to_dict(),
                          metrics={"train_error": float(err[0]), "mse": float(mse[0]), "diverged": None})
        mpath = out / "models" / f"{stem}.json"
        written.append(save_model(mpath, model))
        title = (f"deepcircuit example {stem}: XOR, seed {seed}, {how}; "
                 f"{net.n_connections} connections, training error {100 * float(err[0]):.0f} %")
        nl = standalone_netlist(net, "xor", schedule=config.schedule, seed=0,
                                state_init_high=config.state_init_high, clamp=clamp, title=title)
        written.append(write_atomic(out / f"{stem}.cir", nl.text))
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m deepcircuit.studies.examples_netlists", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="netlists", help="folder to write (default: netlists)")
    args = p.parse_args(argv)
    np.seterr(all="ignore")
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
