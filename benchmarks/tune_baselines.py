"""The tuner's check sets and their logistic-regression baselines (docs/tuning.md, "Measured").

Writes scikit-learn's wine (178 x 13, 3 classes) and breast_cancer (569 x 30, 2 classes) as CSV
files (label column ``label``) into ``--out`` and prints logistic regression's test accuracy on
the split ``deepcircuit train --data FILE --target label`` uses (load_dataset: stratified, split
seed 0, 20 % test), on the [0, 1]-scaled inputs DEEP sees and on standardised features. Then::

    deepcircuit train --data OUT/wine.csv --target label --tune --tune-workers 2 --out runs/wine --json
    deepcircuit train --data OUT/wine.csv --target label --out runs/wine-plain --json      # untuned

Usage: python benchmarks/tune_baselines.py [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deepcircuit.data.split import load_dataset

SETS = {"wine": load_wine, "breast_cancer": load_breast_cancer}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/tune_data", help="folder for the CSV files (default runs/tune_data)")
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    for name, loader in SETS.items():
        d = loader()
        df = pd.DataFrame(d.data, columns=[f"f{k}" for k in range(d.data.shape[1])])
        df["label"] = d.target
        path = out / f"{name}.csv"
        df.to_csv(path, index=False)
        ds = load_dataset(path, target="label")
        xtr, ytr = ds.train.inputs[:, :-1], ds.train.labels
        xte, yte = ds.test.inputs[:, :-1], ds.test.labels
        for how, clf in (("[0, 1]-scaled", LogisticRegression(max_iter=5000)),
                         ("standardised", make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)))):
            acc = clf.fit(xtr, ytr).score(xte, yte)
            print(f"{name}: logistic regression on {how} features: {100 * acc:.1f} % test "
                  f"({len(ytr)} train / {len(yte)} test rows); file {path}")


if __name__ == "__main__":
    main()
