"""Gradient alignment of the learning rules on XOR: random networks, and during training.

Run: ``python benchmarks/bench_gradient.py [--networks 200] [--train-seeds 10] [--epochs 200]
[--out figures/]``

Part 1, random networks: for ``--networks`` random complete XOR networks (5 hidden, the
project's default initialisation of each family), :func:`deepcircuit.stability.gradient_check.gradient_check`
at beta = 10, 1, 0.1, 0.01; prints the mean and median cosine between each rule's update and the
negative gradient of the settled MSE (over networks with a non-zero gradient), by weight group,
and how many presentations had a singular interior Jacobian (no gradient).

Part 2, during training: ``--train-seeds`` networks trained with the default preset of ``deep``
(rule stdp) and of ``ep-asym``; the cosine of the family's own rule at beta = 0.1 and at the
training beta every ``--every`` epochs. Figures:
cosine against beta (part 1) and against epoch (part 2) in ``--out``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from deepcircuit import TrainingConfig, get_task, train
from deepcircuit.stability.gradient_check import gradient_check
from deepcircuit.learning.initial_networks import make_networks

BETAS = (10.0, 1.0, 0.1, 0.01)
RULES = {"deep": {"deep": "stdp", "deep-stdp2": "stdp2"}, "ep-asym": {"ep-asym": "endpoint"},
         "ep-sym": {"ep-sym": "contrastive"}}


def random_networks(family: str, n: int, substrate: str = "ode") -> dict:
    cfg = TrainingConfig.preset("default", model=family)
    nets = make_networks(get_task("xor"), model=family, topology="complete", hidden=5, seeds=range(n), config=cfg)
    reps = [gradient_check(net, "xor", betas=BETAS, schedule=cfg.schedule, rules=RULES[family], fd_entries=0,
                           substrate=substrate, seed=k) for k, net in enumerate(nets)]
    return {"reports": reps, "singular": sum(r.singular for r in reps), "presentations": sum(r.presentations for r in reps),
            "nonzero": sum(r.gradient_norm > 0 for r in reps)}


def summarise(reps, label: str) -> list[str]:
    lines = []
    for rule in reps[0].rules:
        cos = np.array([r.rules[rule].cosine for r in reps if r.gradient_norm > 0])
        if not len(cos):
            continue
        row = [f"{label}", rule] + [f"{np.nanmean(cos[:, k]):+.2f} / {np.nanmedian(cos[:, k]):+.2f}" for k in range(len(BETAS))]
        lines.append("| " + " | ".join(row) + " |")
        for g in reps[0].rules[rule].groups:
            gc = np.array([r.rules[rule].groups[g] for r in reps if r.gradient_norm > 0])
            row = [f"{label}", f"{rule} {g}"] + [f"{np.nanmean(gc[:, k]):+.2f} / {np.nanmedian(gc[:, k]):+.2f}" for k in range(len(BETAS))]
            lines.append("| " + " | ".join(row) + " |")
    return lines


def during_training(family: str, rule: str | None, seeds: int, epochs: int, every: int) -> dict:
    cfg = TrainingConfig.preset("default", model=family).replace(epochs=epochs, rule=rule)
    rules = {rule or family: rule or RULES[family][family]}
    record: dict = {"epoch": [], "cos_small": [], "cos_train": []}

    def cb(epoch, batch, result):
        if epoch % every and epoch != epochs - 1:
            return None
        cs, ct = [], []
        for k, net in enumerate(batch.networks):
            rep = gradient_check(net, "xor", betas=[0.1, cfg.beta], schedule=cfg.schedule, rules=rules,
                                 fd_entries=0, seed=epoch * 1000 + k, symmetric=False)
            a = next(iter(rep.rules.values()))
            cs.append(a.cosine[0])
            ct.append(a.cosine[1])
        record["epoch"].append(epoch)
        record["cos_small"].append(cs)
        record["cos_train"].append(ct)
        return None

    res = train("xor", model=family, hidden=5, seeds=seeds, config=cfg, callbacks=[cb])
    record["solved"] = res.solved
    return record


def substrates_study(model_path: str, betas=(10.0, 0.1)) -> list[str]:
    """The same trained XOR network's alignment on the ODE, Brian2 and SPICE substrates.

    SPICE with the diode and limiter clamps and 0 / 5 % / 10 % transconductance mismatch (one
    chip, seed 0). The gradient is always the ideal model's; the rules read each substrate's
    trajectories, so the cosine measures how much of the learning signal survives there.
    """
    from deepcircuit.substrates.chip import NonIdealities
    from deepcircuit.learning.model_file import load_model
    from deepcircuit.substrates import get_substrate

    model = load_model(model_path)
    net, cfg = model.network, model.training_config()
    task = model.task_for(None)
    cases = [("ode", get_substrate("ode")), ("brian2", get_substrate("brian2"))]
    for clamp in ("diode", "limiter"):
        for mm in (0.0, 0.05, 0.1):
            cases.append((f"spice {clamp} mismatch {mm:g}",
                          get_substrate("spice", clamp=clamp, nonideal=NonIdealities(mismatch=mm, seed=0))))
    lines = ["| substrate | " + " | ".join(f"{rule} beta {b:g}" for rule in ("stdp", "stdp2") for b in betas) + " |",
             "| --- |" + " --- |" * (2 * len(betas))]
    for name, sub in cases:
        rep = gradient_check(net, task, betas=betas, schedule=cfg.schedule, substrate=sub, fd_entries=0,
                             rules={"deep": "stdp", "deep-stdp2": "stdp2"}, symmetric=False)
        cells = [f"{c:+.3f}" for rule in ("deep", "deep-stdp2") for c in rep.rules[rule].cosine]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        sub.close()
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--networks", type=int, default=200)
    ap.add_argument("--families", nargs="+", default=["deep", "ep-asym"])
    ap.add_argument("--substrate", default="ode")
    ap.add_argument("--train-seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--out", default=None, help="folder for the figures (default: none)")
    ap.add_argument("--substrates-model", default=None, metavar="MODEL_FILE",
                    help="only run the substrate study on this trained XOR model file")
    args = ap.parse_args(argv)
    if args.substrates_model:
        print(f"## Alignment on each substrate: {args.substrates_model} (cosine with -gradient)\n")
        print("\n".join(substrates_study(args.substrates_model)))
        return 0
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    print(f"## Random complete XOR networks (5 hidden, default initialisation), substrate {args.substrate}\n")
    print("cosine(update, -gradient), mean / median over networks with a non-zero gradient\n")
    print("| family | rule (group) | " + " | ".join(f"beta {b:g}" for b in BETAS) + " |")
    print("| --- | --- |" + " --- |" * len(BETAS))
    results = {}
    for fam in args.families:
        r = random_networks(fam, args.networks, args.substrate)
        results[fam] = r
        print("\n".join(summarise(r["reports"], fam)))
    for fam, r in results.items():
        print(f"\n{fam}: {r['nonzero']} of {args.networks} networks with a non-zero gradient; "
              f"{r['singular']} of {r['presentations']} presentations with a singular interior Jacobian")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    curves = {}
    if args.train_seeds:
        print(f"\n## During training (XOR, default preset, {args.train_seeds} seeds, {args.epochs} epochs)\n")
        print("| family / rule | epoch | cosine at beta 0.1 (mean) | cosine at the training beta (mean) |")
        print("| --- | --- | --- | --- |")
        for fam, rule in (("deep", None), ("ep-asym", None)):
            rec = during_training(fam, rule, args.train_seeds, args.epochs, args.every)
            curves[f"{fam}/{rule or RULES[fam][fam]}"] = rec
            for e, cs, ct in zip(rec["epoch"], rec["cos_small"], rec["cos_train"]):
                print(f"| {fam}/{rule or RULES[fam][fam]} | {e} | {np.nanmean(cs):+.2f} | {np.nanmean(ct):+.2f} |")
            print(f"| {fam} solved | | {rec['solved']}/{args.train_seeds} | |")
    if args.out:
        from pathlib import Path

        from deepcircuit.studies.plots import _figure, save_figure
        out = Path(args.out)
        fig, (ax,) = _figure()
        for fam, r in results.items():
            for rule in r["reports"][0].rules:
                cos = np.array([x.rules[rule].cosine for x in r["reports"] if x.gradient_norm > 0])
                ax.semilogx(BETAS, np.nanmean(cos, axis=0), marker="o", label=f"{fam}: {rule}")
        ax.set_xlabel("beta (1/tau)"), ax.set_ylabel("mean cosine(update, -gradient)"), ax.legend()
        save_figure(fig, out / "gradient_cosine_vs_beta.png")
        if curves:
            fig, (ax,) = _figure()
            for name, rec in curves.items():
                ax.plot(rec["epoch"], [np.nanmean(c) for c in rec["cos_small"]], marker="o", label=f"{name}, beta 0.1")
                ax.plot(rec["epoch"], [np.nanmean(c) for c in rec["cos_train"]], ls="--", marker=".", label=f"{name}, training beta")
            ax.set_xlabel("epoch"), ax.set_ylabel("mean cosine(update, -gradient)"), ax.legend(fontsize=7)
            save_figure(fig, out / "gradient_cosine_vs_epoch.png")
        print(f"figures in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
