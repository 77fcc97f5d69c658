"""Pruning: never removes a strong connection, never revives a removed one."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deepcircuit import TrainingConfig, train
from deepcircuit.learning.pruning import magnitude_prune, stochastic_sparsify

weights = arrays(np.float64, (2, 6, 6), elements=st.floats(-0.05, 0.05, allow_nan=False))
masks = arrays(np.bool_, (2, 6, 6))


@settings(max_examples=200, deadline=None)
@given(W=weights, mask=masks, seed=st.integers(0, 2**32 - 1), tol=st.floats(0.0, 0.03),
       temperature=st.floats(0.01, 10.0))
def test_stochastic_sparsification_properties(W, mask, seed, tol, temperature):
    W = np.where(mask, W, 0.0)
    keep = stochastic_sparsify(W, mask, tol=tol, temperature=temperature, rng=np.random.default_rng(seed))
    assert not (keep & ~mask).any(), "a removed or absent connection came back"
    assert not (mask & (np.abs(W) > tol) & ~keep).any(), "a connection above tol was removed"


def test_stochastic_sparsification_matches_the_reference_probabilities():
    rng = np.random.default_rng(0)
    W = rng.normal(0, 0.02, size=(1, 5, 5))
    mask = np.ones_like(W, bool)
    u = np.random.default_rng(9).random((1, 5, 5))
    keep = stochastic_sparsify(W, mask, tol=0.01, temperature=5.0, rng=np.random.default_rng(9))
    probs = np.exp(-np.abs(W[0]) / 5) / np.sum(np.exp(-np.abs(W[0]) / 5), axis=0)
    probs[(W[0] < -0.01) | (W[0] > 0.01)] = 0
    change = (probs > u[0]) & (probs != 0)
    np.testing.assert_array_equal(keep[0], ~change)


def test_magnitude_pruning():
    W = np.array([[[0.0, 0.005, -0.02], [0.011, -0.01, 0.3], [0, 0, 0]]])
    mask = W != 0
    keep = magnitude_prune(W, mask, tol=0.01)
    assert keep.tolist() == [[[False, False, True], [True, False, True], [False, False, False]]]


def test_pruned_connections_stay_pruned_during_training():
    cfg = TrainingConfig.preset("paper").replace(epochs=30, free_steps=100, nudged_steps=100,
                                                 prune="stochastic", l1=1e-3, prune_tol=0.03)
    seen = []
    train("xor", seeds=[0, 1], config=cfg,
          callbacks=[lambda e, nets, res: seen.append(nets.mask.copy())])
    for before, after in zip(seen, seen[1:]):
        assert not (after & ~before).any()
    assert seen[-1].sum() < seen[0].sum()
