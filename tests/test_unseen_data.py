"""A user's own file, trained with the command a user types (issue 22).

``deepcircuit train --data FILE.csv --target label`` on scikit-learn's wine data (13 numeric
features, 3 classes, 178 rows) written as a CSV: no option, so the default derived from the
data's shape applies. Before the derived default this command gave 44 % test accuracy where
logistic regression gets 97-99 %. The CI test runs a shortened budget (``--epochs``); the slow
test runs the full default and a generated set that played no part in choosing the rule.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepcircuit.cli import main


def write_csv(path, x, y):
    lines = [",".join([f"f{i}" for i in range(x.shape[1])] + ["label"])]
    lines += [",".join([*(f"{v:.6g}" for v in row), f"c{c}"]) for row, c in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


def train_file(path, capsys, *extra):
    code = main(["train", "--data", str(path), "--target", "label", "--out", str(path.parent / "m"),
                 "--json", "--quiet", *extra])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out.strip().splitlines()[-1])


def test_wine_from_a_csv_learns_with_the_default_command(tmp_path, capsys):
    from sklearn.datasets import load_wine

    w = load_wine()
    csv = write_csv(tmp_path / "wine.csv", w.data, w.target)
    d = train_file(csv, capsys, "--epochs", "10")
    # chance 40 % (the largest class), the old default 44 %, logistic regression 97 %.
    assert min(d["test_accuracy"]) >= 0.85, d["test_accuracy"]


@pytest.mark.slow
def test_unseen_sets_reach_logistic_regression_with_the_full_default(tmp_path, capsys):
    from sklearn.datasets import load_wine, make_classification
    from sklearn.linear_model import LogisticRegression

    from deepcircuit import load_dataset

    w = load_wine()
    # Not in the benchmark suite: a set no choice was made on (5 classes, 12 features).
    x, y = make_classification(n_samples=500, n_features=12, n_informative=6, n_classes=5,
                               n_clusters_per_class=1, class_sep=1.5, random_state=11)
    for name, (xs, ys) in {"wine": (w.data, w.target), "unseen": (x, y)}.items():
        csv = write_csv(tmp_path / f"{name}.csv", xs, ys)
        d = train_file(csv, capsys, "--seeds", "2")
        ds = load_dataset(csv, target="label")
        lab = lambda t: np.asarray(t.labels).reshape(t.n_presentations, -1)[:, 0]
        lr = LogisticRegression(max_iter=5000).fit(ds.train.inputs[:, :-1], lab(ds.train))
        lr_acc = lr.score(ds.test.inputs[:, :-1], lab(ds.test))
        assert np.mean(d["test_accuracy"]) >= lr_acc - 0.05, (name, d["test_accuracy"], lr_acc)
