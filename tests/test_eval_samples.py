"""``eval_samples`` / ``--eval-samples``: each epoch's held-out evaluation on a fixed sample, the
whole split at the last epoch and in the final figures (evaluation must not cost more than
training when the substrate is costly)."""

from __future__ import annotations

import pytest

from deepcircuit import load_dataset, train
from deepcircuit.errors import InvalidInputError
from deepcircuit.learning.config import TrainingConfig
from deepcircuit.substrates.ode import OdeSubstrate


class Counting(OdeSubstrate):
    """The ODE substrate, counting the presentations it simulates per call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def run(self, networks, inputs, initial, schedule, *, targets=None):
        self.calls.append((inputs.shape[0], targets is not None))
        return super().run(networks, inputs, initial, schedule, targets=targets)


def test_epochs_evaluate_a_sample_and_the_end_the_whole_split():
    ds = load_dataset("iris")
    n_test = ds.test.n_presentations
    cfg = TrainingConfig.for_task(ds).replace(epochs=3, eval_samples=7, batch_size=None)
    sub = Counting()
    res = train(ds, config=cfg, substrate=sub)
    evals = [n for n, nudged in sub.calls if not nudged]
    # epochs 1, 2: the sample; epoch 3: the whole test split (reused as the final test figure);
    # then the final train-split figure, on a sample of the train split as well.
    assert evals == [7, 7, n_test, 7]
    h = res.histories[0]
    assert all(abs(e * 7 - round(e * 7)) < 1e-9 for e in h.test_error[:2])  # k wrong out of 7
    assert h.test_error[-1] == pytest.approx(res.test_error[0])
    # without it: the whole split every epoch
    sub = Counting()
    train(ds, config=cfg.replace(eval_samples=None), substrate=sub)
    assert [n for n, nudged in sub.calls if not nudged] == [n_test] * 3 + [ds.train.n_presentations, n_test]


def test_eval_samples_is_checked():
    with pytest.raises(InvalidInputError, match="eval_samples"):
        TrainingConfig(eval_samples=0)
