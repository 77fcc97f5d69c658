"""The study behind DEEP's derived default (issue 22): which rule, and how it does on the suite.

Run: ``python benchmarks/study_defaults.py --screen [--sets NAME ...] [--seeds 2]
[--epochs 20]``, then ``--final [--sets ...] [--seeds 3]``; ``--render-only`` rewrites
``docs/results.md``.

``--screen`` chooses the rule. Every candidate of :data:`deepcircuit.data.defaults.SCALINGS`
(how learning rates and initial input weights follow the data) trains on every screened suite
member with 20 % of the training rows held out for validation (``--validation-fraction 0.2``:
the test split plays no part), seeds 0..1 and at most ``--epochs`` epochs (a short budget, the
same for every candidate). Logistic regression is fitted on the same rows. A candidate more than
10 points below it on 2 sets is dropped (not run on the remaining sets). The choice: the
candidate within 2 points of logistic regression's validation accuracy on the most sets, ties
broken by the mean validation accuracy. iris and moons also run their table entries (the
``table`` candidate): a built-in keeps its entry only where the chosen rule's validation accuracy
is more than 1 point below it. digits (the rule's reference) and digits28 (the held-out image
check) are not screened.

``--keep-table`` runs the derived default and iris's and moons's table entries at their full
budgets on the validation split (seeds 0..2): an entry stays only if the default loses > 1 point.

``--final`` measures what a user gets: ``deepcircuit train --task suite:NAME --seeds 3`` (the
default command: derived default, no validation split, full budget), test accuracy mean +- sd
over seeds 0..2, beside scikit-learn's LogisticRegression and MLPClassifier(100) fitted on the
same scaled training split (seeds 0..2). Rows accumulate in
``benchmarks/results/defaults.jsonl`` (the newest per key wins); ``docs/results.md`` gets the
section rendered by :func:`render_section` (``benchmarks/study_results.py`` includes it).
Compute here is scarce: run it nice'd; every row is stored as soon as it is measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import study_results  # noqa: E402  (the results store, its format and docs/results.md's renderer)

STORE = ROOT / "benchmarks" / "results" / "defaults.jsonl"
VALIDATION = 0.2
#: Suite members the screen runs (digits is the reference, digits28 the held-out image check).
SCREEN_EXCLUDE = ("digits", "digits28")
#: Built-in data sets with a table entry for deep, and the suite member with the same rows.
TABLE_SETS = {"iris": "iris", "moons": "moons"}
BASELINES = ("logistic-regression", "mlp-100")
#: What the session measured of the digits28 run besides its row (`/usr/bin/time -v`).
DIGITS28_NOTE = ("digits28: seed 0 ran alone (`python benchmarks/study_defaults.py --final --sets digits28 --seeds 1` "
                 "under `/usr/bin/time -v`: the whole process, LR and MLP included, 350 s of CPU and 45 min of wall "
                 "time at 13 % of a core on the shared machine, DEEP's training and evaluation 1246 s of it), seeds 1-2 "
                 "together later (the same default, `train(ds, seeds=[1, 2])`: 578 s wall, 560 s CPU on a quieter "
                 "machine); a seed's result does not depend on the seeds beside it. The target for it, >= 90 % test "
                 "accuracy, is missed (84.4 +- 0.8 %). For comparison only (a test-split figure, no choice made on it; "
                 "`--final --sets digits28 --seeds 1 --scaling fixed`): the `fixed` candidate (digits' initial input "
                 "weights unscaled, 0.1 instead of 0.0385) reached 83.5 % on the same split, seed 0, 11 epochs (395 s "
                 "wall, 173 s CPU).\n\n"
                 "digits28's learning curve, on its validation split (20 % of the training rows held out, seed 0; "
                 "`python benchmarks/probe_defaults.py digits28 0 base,epochs=30,epochs=60,xeta_input=0.25,xeta_input=3`, "
                 "each 2-3 min of one core): the derived default (14 epochs on the 3200 remaining rows) 85.8 % "
                 "validation, 89.8 % train; 30 epochs 88.8 / 94.7 %; 60 epochs 89.0 / 96.1 %; the input weights' rate "
                 "x 0.25 or x 3 81.8 and 82.2 % (LR: 81.4 %). More epochs than the derived 690 updates help this set by "
                 "3 points and then stop short of 90 %; the same change costs blobs 1.8 points on its test split "
                 "(`--epochs 56`), so it is not a default without the whole suite's study.")
#: Which DEEP rows were measured before an epoch's minibatches were cut equal (learning/steps.py).
BEFORE_EQUAL_MINIBATCHES = ("Measured before an epoch's minibatches were cut equal (`learning/steps.py: epoch_batches`): "
                            "only digits was re-measured since (95.5 +- 0.2 %, the same mean); the other DEEP rows may "
                            "move within their spread.")
#: Successive halving of the screen: a candidate more than DROP_POINTS below logistic regression
#: on DROP_AFTER sets is not run on the rest (it cannot be the choice).
DROP_POINTS, DROP_AFTER = 10.0, 2


def store(row: dict) -> None:
    study_results.store(row, STORE)


def load_rows() -> dict:
    return study_results.load_rows(STORE)


fmt = study_results.fmt


def _labels(task) -> np.ndarray:
    return np.asarray(task.labels).reshape(task.n_presentations, -1)[:, 0]


def baseline(ds, kind: str, seeds: int, split: str) -> list[float]:
    """Accuracy of LogisticRegression or MLPClassifier(100) fitted on ``ds``'s training rows,
    on its ``split`` (``validation`` or ``test``), one entry per seed."""
    xtr, ytr = ds.train.inputs[:, :-1], _labels(ds.train)
    ev = getattr(ds, split)
    return [float(study_results.fit_baseline(kind, s, xtr, ytr).score(ev.inputs[:, :-1], _labels(ev)))
            for s in range(seeds)]


def candidate(ds, scaling: str, table_name: str | None = None):
    """(topology, hidden, TrainingConfig) of a candidate rule, or of a built-in's table entry."""
    from deepcircuit import TrainingConfig
    from deepcircuit.data.defaults import FORMER_ENTRIES, DataShape, derived_defaults

    if scaling == "table":
        e = FORMER_ENTRIES[table_name]
    else:
        e = derived_defaults(DataShape.of(ds), scaling=scaling)
    return e.topology, e.hidden, TrainingConfig.preset("default", model="deep").replace(**e.settings)


def screen(sets, seeds: int, epochs: int) -> None:
    from deepcircuit import load_dataset, train
    from deepcircuit.data.defaults import SCALINGS

    rows = load_rows()
    for name in sets:
        ds = load_dataset("suite:" + name, validation_fraction=VALIDATION)
        key = f"screen|{name}|logistic-regression"
        if key not in rows:
            store({"key": key, "validation_accuracy": baseline(ds, "logistic-regression", 1, "validation")})
        cands = [sc for sc in SCALINGS if sc not in dropped(rows)] + (["table"] if name in TABLE_SETS else [])
        for sc in cands:
            key = f"screen|{name}|{sc}"
            if key in rows and rows[key]["seeds"] == list(range(seeds)) and rows[key]["epoch_cap"] == epochs:
                continue
            topology, hidden, cfg = candidate(ds, sc, TABLE_SETS.get(name))
            # eval_every=0: validation read once, at the end (evaluations never change training).
            cfg = cfg.replace(epochs=min(cfg.epochs, epochs), eval_every=0)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = train(ds, model="deep", topology=topology, hidden=hidden, seeds=list(range(seeds)), config=cfg)
            val = [float(v) for v in 1 - np.asarray(r.validation_error)]
            store({"key": key, "validation_accuracy": val, "seeds": list(range(seeds)), "epoch_cap": epochs,
                   "epochs": cfg.epochs, "topology": str(topology), "hidden": list(hidden),
                   "diverged": [d is not None for d in r.diverged], "seconds": time.perf_counter() - t0})
            print(f"screen {name} {sc}: validation {fmt(val)} % in {time.perf_counter() - t0:.0f} s", flush=True)
            rows = load_rows()


def keep_table(seeds: int) -> None:
    """Built-ins with a table entry for deep: the derived default against the entry, both at their
    full budget, on the validation split. The entry stays only if the default loses > 1 point."""
    from deepcircuit import load_dataset, train

    for name in TABLE_SETS:
        ds = load_dataset(name, validation_fraction=VALIDATION)
        for which in ("derived", "table"):
            topology, hidden, cfg = candidate(ds, "table" if which == "table" else _default_scaling(), name)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = train(ds, model="deep", topology=topology, hidden=hidden, seeds=list(range(seeds)),
                          config=cfg.replace(eval_every=0))
            val = [float(v) for v in 1 - np.asarray(r.validation_error)]
            store({"key": f"keep|{name}|{which}", "validation_accuracy": val, "seeds": list(range(seeds)),
                   "epochs": cfg.epochs, "topology": str(topology), "hidden": list(hidden),
                   "eta": cfg.eta, "seconds": time.perf_counter() - t0})
            print(f"keep {name} {which}: validation {fmt(val)} % in {time.perf_counter() - t0:.0f} s", flush=True)


def _default_scaling() -> str:
    from deepcircuit.data.defaults import DEFAULT_SCALING

    return DEFAULT_SCALING


def dropped(rows: dict) -> list[str]:
    """Candidates the screen stops running (compute is scarce): those more than ``DROP_POINTS``
    below logistic regression's validation accuracy on ``DROP_AFTER`` of the sets measured."""
    from deepcircuit.data.defaults import SCALINGS

    out = []
    for sc in SCALINGS:
        bad = 0
        for name in screened_sets(rows):
            r, lr = rows.get(f"screen|{name}|{sc}"), rows.get(f"screen|{name}|logistic-regression")
            if r is not None and np.mean(r["validation_accuracy"]) < np.mean(lr["validation_accuracy"]) - DROP_POINTS / 100:
                bad += 1
        if bad >= DROP_AFTER:
            out.append(sc)
    return out


def choice(rows: dict) -> tuple[str | None, dict]:
    """The screen's choice and each candidate's score ``(sets within 2 points of LR, mean val acc)``."""
    from deepcircuit.data.defaults import SCALINGS

    scores = {}
    for sc in [c for c in SCALINGS if c not in dropped(rows)]:
        within, accs = 0, []
        for name in screened_sets(rows):
            r, lr = rows.get(f"screen|{name}|{sc}"), rows.get(f"screen|{name}|logistic-regression")
            if r is None or lr is None:
                break
            acc = float(np.mean(r["validation_accuracy"]))
            accs.append(acc)
            within += acc >= float(np.mean(lr["validation_accuracy"])) - 0.02
        else:
            if accs:
                scores[sc] = (within, float(np.mean(accs)))
    best = max(scores, key=lambda s: scores[s]) if scores else None
    return best, scores


def screened_sets(rows: dict) -> list[str]:
    from deepcircuit.data.suite import SUITE

    return [n for n in SUITE if f"screen|{n}|logistic-regression" in rows]


def final(sets, seeds: int, *, deep: bool = True, scaling: str | None = None) -> None:
    """The default command per set beside LR and the MLP; with ``scaling``, a candidate rule
    instead of the default, stored apart (``ablation|SET|SCALING``, for comparison only)."""
    from deepcircuit import TrainingConfig, load_dataset, train

    for name in sets:
        ds = load_dataset("suite:" + name)
        if scaling is not None:
            topology, hidden, cfg = candidate(ds, scaling)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = train(ds, model="deep", topology=topology, hidden=hidden, seeds=list(range(seeds)),
                          config=cfg.replace(eval_every=0))
            store({"key": f"ablation|{name}|{scaling}", "test_accuracy": [float(a) for a in r.test_accuracy],
                   "seeds": list(range(seeds)), "epochs": cfg.epochs, "seconds": time.perf_counter() - t0})
            print(f"ablation {name} {scaling}: DEEP test {fmt(r.test_accuracy)} %", flush=True)
            continue
        for b in BASELINES:
            store({"key": f"final|{name}|{b}", "test_accuracy": baseline(ds, b, seeds, "test"),
                   "seeds": list(range(seeds))})
        if not deep:
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The command's configuration; eval_every=0 only skips the per-epoch test evaluations
            # (they never change training: the same networks, the same final accuracy).
            r = train(ds, seeds=list(range(seeds)), config=TrainingConfig.for_task(ds).replace(eval_every=0))
        row = {"key": f"final|{name}|deep", "test_accuracy": [float(a) for a in r.test_accuracy],
               "train_accuracy": [float(a) for a in r.train_accuracy], "seeds": list(range(seeds)),
               "epochs": r.config.epochs, "topology": str(r.networks[0].topology),
               "hidden": list(r.networks[0].roles.hidden), "batch_size": r.config.batch_size,
               "diverged": [d is not None for d in r.diverged], "seconds": time.perf_counter() - t0,
               "command": f"deepcircuit train --task suite:{name} --seeds {seeds}"}
        store(row)
        print(f"final {name}: DEEP test {fmt(row['test_accuracy'])} % in {row['seconds']:.0f} s", flush=True)


def import_digits() -> None:
    """digits' rows from ``benchmarks/results/results.jsonl``: the derived default on digits' shape
    is exactly the configuration measured there (``tests/test_derived_defaults.py``), by the same
    command, so the suite's digits row is that measurement (5 seeds), not a new run."""
    res = {}
    for line in (ROOT / "benchmarks" / "results" / "results.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            res[r["key"]] = r
    d = res["digits|deep|trained"]
    store({"key": "final|digits|deep", "test_accuracy": d["test_accuracy"], "train_accuracy": d["train_accuracy"],
           "seeds": d["seeds"], "epochs": d["epochs"], "topology": "layered+sink", "hidden": [100, 1],
           "batch_size": 64, "seconds": d["wall_seconds"], "diverged": [],
           "command": "deepcircuit train --task digits --seeds 5",
           "note": "benchmarks/results/results.jsonl (study_results.py), the same configuration"})
    for b in BASELINES:
        store({"key": f"final|digits|{b}", "test_accuracy": res[f"digits|{b}|baseline"]["test_accuracy"],
               "seeds": res[f"digits|{b}|baseline"]["seeds"]})


def render_section() -> list[str]:
    """The docs/results.md section of this study (from ``benchmarks/results/defaults.jsonl``)."""
    from deepcircuit.data.defaults import SCALINGS
    from deepcircuit.data.suite import SUITE

    rows = load_rows()
    L = ["## The derived default on the benchmark suite (issue 22)", "",
         "Written by `python benchmarks/study_defaults.py` from `benchmarks/results/defaults.jsonl`. "
         "DEEP's default for every data set but logic tasks and parity tables is derived from the data's "
         "shape (`deepcircuit/data/defaults.py`, `docs/data.md`); the suite is `deepcircuit/data/suite.py` "
         "(`--task suite:NAME`). Wall times were measured on 2 cores shared with several other runs.", ""]
    best, scores = choice(rows)
    sets = screened_sets(rows)
    if sets:
        L += ["### Choosing the rule (validation split only)", "",
              f"Each candidate trains with 20 % of the training rows held out for validation, seeds 0-1, at "
              f"most {max(rows[f'screen|{n}|{SCALINGS[0]}'].get('epoch_cap', 0) for n in sets if f'screen|{n}|{SCALINGS[0]}' in rows)} "
              "epochs (`python benchmarks/study_defaults.py --screen`); the test split plays no part. "
              "Validation accuracy in %. The choice: the candidate within 2 points of logistic regression "
              "(LR, same rows) on the most sets, then the best mean; a candidate more than 10 points below LR on "
              "2 sets is dropped (not run on the sets after). `table`: the built-in's own table entry, at the "
              "same epoch cap.", "",
              "| set | LR | " + " | ".join(SCALINGS) + " | table |", "|---" * (len(SCALINGS) + 3) + "|"]
        for n in sets:
            cells = []
            for sc in list(SCALINGS) + ["table"]:
                r = rows.get(f"screen|{n}|{sc}")
                cells.append(fmt(r["validation_accuracy"]) if r else "")
            L.append(f"| {n} | {fmt(rows[f'screen|{n}|logistic-regression']['validation_accuracy'])} | "
                     + " | ".join(cells) + " |")
        L += ["", "Score (sets within 2 points of LR, mean validation accuracy): "
              + "; ".join(f"`{s}` {w}/{len(sets)}, {100 * m:.1f} %" for s, (w, m) in scores.items())
              + (f". Chosen: `{best}`." if best else "."), ""]
    keep = [n for n in TABLE_SETS if f"keep|{n}|derived" in rows and f"keep|{n}|table" in rows]
    if keep:
        L += ["### Built-ins with their own entry (validation split, full budget)", "",
              "`python benchmarks/study_defaults.py --keep-table`: the derived default and the built-in's table "
              "entry (chosen on the same validation split by `study_results.py --select`), each at its full "
              "budget, seeds 0-2, 20 % of the training rows held out. The entry stays only where the derived "
              "default is more than 1 point below it.", "",
              "| data set | derived default | table entry | entry kept |", "|---|---|---|---|"]
        for n in keep:
            d, t = rows[f"keep|{n}|derived"], rows[f"keep|{n}|table"]
            lose = np.mean(d["validation_accuracy"]) < np.mean(t["validation_accuracy"]) - 0.01
            L.append(f"| {n} | {fmt(d['validation_accuracy'])} ({d['topology']} {d['hidden']}, {d['epochs']} epochs) | "
                     f"{fmt(t['validation_accuracy'])} ({t['topology']} {t['hidden']}, eta {t['eta']:g}, "
                     f"{t['epochs']} epochs) | {'yes' if lose else 'no'} |")
        L.append("")
    fin = [n for n in SUITE if f"final|{n}|deep" in rows]
    if fin:
        fin = list(SUITE)
        L += ["### The default against logistic regression and an MLP (test split)", "", BEFORE_EQUAL_MINIBATCHES, "",
              "Test accuracy in % (20 % of the rows, stratified, split seed 0), mean +- sd over seeds 0-2 (digits: "
              "0-4, the `study_results.py` measurement of the same configuration; digits28: the seeds listed); DEEP "
              "with the command in the row (the derived default, no option), LR = LogisticRegression, "
              "MLP = MLPClassifier(100), scikit-learn, fitted on the same scaled training rows. "
              "\"gap\": DEEP minus LR in points, where LR is below 99 % (the target: no gap below -2).", "",
              "| set | DEEP default | LR | MLP | gap | DEEP config | seconds | command |",
              "|---|---|---|---|---|---|---|---|"]
        for n in fin:
            d, lr, mlp = (rows.get(f"final|{n}|{k}") for k in ("deep", "logistic-regression", "mlp-100"))
            if d is None:
                L.append(f"| {n} | *not measured in the session's time* | {fmt(lr['test_accuracy']) if lr else ''} | "
                         f"{fmt(mlp['test_accuracy']) if mlp else ''} |  |  |  | `deepcircuit train --task suite:{n} --seeds 3` |")
                continue
            lr_m = float(np.mean(lr["test_accuracy"])) if lr else float("nan")
            gap = (100 * (float(np.mean(d["test_accuracy"])) - lr_m)) if lr_m < 0.99 else None
            L.append(f"| {n} | {fmt(d['test_accuracy'])} ({len(d['test_accuracy'])} seeds) | {fmt(lr['test_accuracy']) if lr else ''} | "
                     f"{fmt(mlp['test_accuracy']) if mlp else ''} | {'' if gap is None else f'{gap:+.1f}'} | "
                     f"{d['topology']} {d['hidden']}, batch {d['batch_size']}, {d['epochs']} epochs | "
                     f"{d['seconds']:.0f} | `{d['command']}` |")
        L += ["", DIGITS28_NOTE, ""]
    return L


def write_doc() -> None:
    """Rewrite docs/results.md (study_results.py renders it, this study's section included)."""
    study_results.write_atomic(study_results.DOC, study_results.render(5))


def main(argv=None) -> int:
    from deepcircuit.data.suite import SUITE

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--screen", action="store_true", help="compare the candidate rules on validation splits")
    ap.add_argument("--final", action="store_true", help="the default command against LR and an MLP (test split)")
    ap.add_argument("--sets", nargs="+", default=None, choices=list(SUITE), help="suite members (default: all)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds (screen: 2, final: 3)")
    ap.add_argument("--epochs", type=int, default=20, help="screen: at most this many epochs")
    ap.add_argument("--keep-table", action="store_true",
                    help="the derived default against iris's and moons's table entries (validation split)")
    ap.add_argument("--scaling", default=None, help="with --final: a candidate rule instead of the default "
                    "(stored as an ablation row, for comparison only)")
    ap.add_argument("--baselines-only", action="store_true", help="--final's LR and MLP rows only")
    ap.add_argument("--import-digits", action="store_true",
                    help="digits' row from benchmarks/results/results.jsonl (the same configuration)")
    ap.add_argument("--render-only", action="store_true", help="only rewrite docs/results.md")
    args = ap.parse_args(argv)
    if args.screen:
        sets = args.sets or [n for n in SUITE if n not in SCREEN_EXCLUDE]
        screen(sets, args.seeds or 2, args.epochs)
    if args.import_digits:
        import_digits()
    if args.keep_table:
        keep_table(args.seeds or 3)
    if args.final or args.baselines_only:
        final(args.sets or list(SUITE), args.seeds or 3, deep=not args.baselines_only, scaling=args.scaling)
    write_doc()
    best, scores = choice(load_rows())
    print(f"screen scores {scores}; choice {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
