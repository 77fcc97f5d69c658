"""The network description: roles, topologies, validation, immutability."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from deepcircuit import (ForbiddenConnectionError, InvalidInputError, Network, NetworkBatch, Roles,
                         get_task)
from deepcircuit.model.topology import build_mask


def reference_constrain(W, layered, N_X, N_H, N_Y):
    """The reference notebook's constrain_weights, kept literally to pin our masks to it."""
    W = W.copy()
    if layered:
        N = [N_X] + N_H + [N_Y]
        for i in range(len(W)):
            W[i, i] = 0
        W[:N[0], :N[0]] = 0
        W[N[0]:, :N[0]] = 0
        N_cum = np.cumsum(N)
        W[:N_cum[0] - 1, N_cum[1]:] = 0
        W[N_cum[-2]:N_cum[-1], N_cum[-2]:N_cum[-1]] = 0
        for i in range(len(N_cum[1:-1])):
            W[N_cum[i]:N_cum[i + 1], N_cum[i]:N_cum[i + 1]] = 0
            W[N_cum[i]:N_cum[i + 1], N_cum[i + 2]:] = 0
        for i in range(2, len(N_cum) - 1):
            W[N_cum[i]:N_cum[i + 1], :N_cum[i - 1]] = 0
    else:
        for i in range(len(W)):
            W[i, i] = 0
        W[:N_X, :N_X] = 0
        W[N_X:, :N_X] = 0
    return W != 0


@pytest.mark.parametrize("hidden", [[5], [4, 3], [2, 2, 2]])
@pytest.mark.parametrize("layered", [False, True])
def test_topologies_match_the_reference(hidden, layered):
    roles = Roles(3, tuple(hidden), 1)
    n = roles.n_neurons
    ref = reference_constrain(np.ones((n, n)), layered, 3, hidden, 1)
    assert np.array_equal(build_mask(roles, "layered" if layered else "complete"), ref)


def test_complete_graph_forbids_self_loops_and_input_targets():
    roles = Roles(3, (5,), 1)
    m = build_mask(roles, "complete")
    assert not m.diagonal().any()
    assert not m[:, :3].any()
    assert m[:, 3:].sum() == 9 * 6 - 6


def test_user_graph_from_edges_names_and_networkx():
    roles = Roles(3, (2,), 1)
    edges = [("x0", "h0"), ("bias", "h1"), (3, 5), ("h1", "y0"), ("y0", "h0")]
    m = build_mask(roles, edges)
    assert m.sum() == 5 and m[0, 3] and m[2, 4] and m[5, 3]
    g = nx.DiGraph([(0, 3), (1, 4), (3, 5), (4, 5)])
    assert build_mask(roles, g).sum() == 4
    net = Network.create(roles, topology=g, rng=0)
    assert net.topology == "custom" and net.n_connections == 4
    assert set(net.to_networkx().edges()) == set(g.edges())


@pytest.mark.parametrize("edge,match", [
    (("h0", "h0"), "h0 -> h0 .* self-loop"),
    (("h0", "x1"), "h0 -> x1 .* into input x1, which is clamped"),
    (("y0", "bias"), "into the bias neuron"),
])
def test_forbidden_user_edges_are_refused(edge, match):
    with pytest.raises(ForbiddenConnectionError, match=match):
        build_mask(Roles(3, (2,), 1), [edge])


def test_bad_topologies_are_refused():
    roles = Roles(3, (2,), 1)
    with pytest.raises(InvalidInputError, match="Unknown topology 'ring'"):
        build_mask(roles, "ring")
    with pytest.raises(InvalidInputError, match="Unknown neuron 'h9'"):
        build_mask(roles, [("h9", "y0")])
    with pytest.raises(TypeError, match="directed"):
        build_mask(roles, nx.Graph([(0, 3)]))


def test_weights_outside_the_mask_nan_and_shapes_are_refused(xor_roles):
    net = Network.create(xor_roles, rng=0)
    W = net.weights.copy()
    W[4, 0] = 0.3
    with pytest.raises(InvalidInputError, match=r"weights\[4, 0\] \(h1 -> x0\)"):
        net.with_weights(W)
    W = net.weights.copy()
    W[3, 4] = np.nan
    with pytest.raises(InvalidInputError, match="finite numbers; entry \\(3, 4\\) is nan"):
        net.with_weights(W)
    with pytest.raises(InvalidInputError, match="shape \\(9, 9\\)"):
        net.with_weights(np.zeros((8, 8)))
    with pytest.raises(InvalidInputError, match="Unknown model family 'deeper'"):
        Network.create(xor_roles, family="deeper")
    with pytest.raises(InvalidInputError, match="Unknown parameter.*'gamma'.*family 'deep'"):
        Network.create(xor_roles, family="deep", params={"gamma": 0.1})


def test_network_is_immutable_and_pruning_returns_a_new_one(xor_roles):
    net = Network.create(xor_roles, rng=0)
    with pytest.raises(ValueError):
        net.weights[3, 4] = 1.0
    keep = np.abs(net.weights) > 0.05
    pruned = net.pruned(keep)
    assert pruned is not net and pruned.n_connections < net.n_connections
    assert np.all(pruned.weights[~pruned.mask] == 0)
    assert 0 < pruned.sparsity < 1 and net.sparsity == 0


def test_initial_weights_follow_the_spec(xor_roles):
    W = np.concatenate([Network.create(xor_roles, rng=s).weights[Network.create(xor_roles, rng=s).mask]
                        for s in range(200)])
    assert abs(W.mean()) < 0.005 and W.std() == pytest.approx(0.05, rel=0.05)


def test_ep_sym_networks_are_symmetric(xor_roles):
    net = Network.create(xor_roles, family="ep-sym", rng=0)
    free = net.weights[3:, 3:]
    np.testing.assert_array_equal(free, free.T)


def test_batch_refuses_mixed_networks(xor_roles):
    a = Network.create(xor_roles, rng=0)
    b = Network.create(Roles(3, (4,), 1), rng=0)
    with pytest.raises(InvalidInputError, match="differs from network 0"):
        NetworkBatch((a, b))


def test_tasks_and_readout():
    xor = get_task("xor")
    assert xor.inputs.tolist() == [[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]]
    assert xor.targets[:, 0].tolist() == [0, 1, 1, 0]
    assert get_task("not").inputs.tolist() == [[0, 1], [1, 1]]
    assert get_task("identity").targets[:, 0].tolist() == [0, 1]
    assert xor.error(np.array([[0.1], [0.9], [0.6], [0.4]])) == 0.0
    assert xor.error(np.array([[0.6], [0.9], [0.6], [0.4]])) == 0.25
    oh = get_task("xor-onehot")
    assert oh.n_outputs == 2 and oh.readout == "argmax"
    assert oh.error(np.array([[0.9, 0.1], [0.2, 0.7], [0.4, 0.5], [0.8, 0.3]])) == 0.0
    with pytest.raises(InvalidInputError, match="Unknown task 'nand'; use one of 'and'"):
        get_task("nand")
