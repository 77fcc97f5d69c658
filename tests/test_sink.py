"""The sink neuron of the ``+sink`` topologies: plain DEEP with a learned leak made of its own synapses."""

from __future__ import annotations

import numpy as np
import pytest

from deepcircuit import InvalidInputError, Network, NetworkBatch, Roles, TrainingConfig, train
from deepcircuit.data.split import load_dataset
from deepcircuit.learning.model_file import load_model, save_model
from deepcircuit.learning.rule import mirror_backward
from deepcircuit.learning.initial_networks import make_networks
from deepcircuit.model.topology import build_mask, sink_index
from deepcircuit.substrates import Schedule, get_substrate, initial_states


@pytest.mark.parametrize("base", ["complete", "layered"])
def test_sink_takes_a_connection_from_every_free_neuron_and_gives_none(base):
    roles = Roles(4, (3, 2, 1), 2)
    mask = build_mask(roles, f"{base}+sink")
    k = sink_index(roles)
    assert k == 4 + 6 - 1
    assert mask[roles.n_inputs:, k].sum() == roles.n_neurons - roles.n_inputs - 1  # every free but itself
    assert not mask[: roles.n_inputs, k].any() and not mask[k].any()
    rest = [i for i in range(roles.n_neurons) if i != k]
    assert (mask[np.ix_(rest, rest)] == build_mask(Roles(4, (3, 2), 2), base)).all()


def test_sink_topology_needs_a_last_hidden_layer_of_one():
    with pytest.raises(InvalidInputError, match=r"last hidden layer, of one neuron; got hidden layers \[5\]"):
        Network.create(Roles(3, (5,), 1), topology="layered+sink")


def test_make_networks_adds_the_sink_and_starts_its_connections_at_init_sink():
    ds = load_dataset("digits")
    cfg = TrainingConfig.for_task(ds, model="deep").replace(init_sink=0.7)
    net, = make_networks(ds, model="deep", topology="layered+sink", hidden=(20,), seeds=[3], config=cfg)
    assert net.roles.hidden == (20, 1) and net.topology == "layered+sink"
    k = sink_index(net.roles)
    assert np.all(net.weights[net.roles.n_inputs:, k][np.arange(net.n_neurons - 65) != k - 65] == 0.7)
    with pytest.raises(InvalidInputError, match="init_sink"):
        TrainingConfig(init_sink=-1.0)


def test_sink_keeps_hidden_states_off_the_upper_rail():
    """Measured at initialisation (digits defaults, 100 test samples, 50 tau): without the sink a
    quarter of the hidden states sit at the upper rail, the only place the inputs' activity can go;
    with it none do (the sink drains it)."""
    ds = load_dataset("digits")
    cfg = TrainingConfig.for_task(ds, model="deep")
    x = ds.test.inputs[:100]
    at_top = {}
    for topo in ("layered+sink", "layered"):
        batch = NetworkBatch.of(make_networks(ds, model="deep", topology=topo, hidden=(100,), seeds=[0], config=cfg))
        r = batch.roles
        s0 = initial_states(np.random.default_rng(0), 1, x, r, 0.1)
        res = get_substrate("ode").run(batch, x, s0, Schedule(dt=0.1, free_steps=500, nudged_steps=0))
        assert res.free.settled.all()
        h = res.free.final[0][:, r.n_inputs:r.n_inputs + 100]
        at_top[topo] = float(np.mean(h > 1 - 1e-9))
    assert at_top["layered+sink"] == 0.0
    assert at_top["layered"] > 0.15


def test_mirror_leaves_a_backward_synapse_without_twin_its_own_update():
    rng = np.random.default_rng(0)
    dW = rng.normal(size=(5, 5))
    topo = np.ones((5, 5), bool)
    topo[2, 4] = False  # 4 -> 2 (backward) has no forward twin 2 -> 4
    out = mirror_backward(dW, 1, topo)
    assert out[4, 2] == dW[4, 2]
    assert out[3, 2] == dW[2, 3] and out[4, 1] == dW[1, 4]
    assert np.array_equal(mirror_backward(dW, 1), np.where(np.tril(np.ones((5, 5), bool), -1) & (np.arange(5) >= 1),
                                                            dW.T, dW))


def test_digits_default_is_deep_with_a_sink_and_learns(tmp_path):
    """A short version of the default digits training (2 epochs of 30, tested once at the end)
    learns well above chance and the sink's connections keep their initial weight; the model file
    keeps the topology. The whole training is the slow test below."""
    ds = load_dataset("digits")
    cfg = TrainingConfig.for_task(ds, model="deep").replace(epochs=2, eval_every=0)
    res = train(ds, seeds=[0], config=cfg)
    net = res.networks[0]
    assert net.family == "deep" and net.topology == "layered+sink" and net.roles.hidden == (100, 1)
    assert res.test_accuracy[0] > 0.6  # 70.6 % measured (chance: 10 %)
    k = sink_index(net.roles)
    into_sink = net.weights[net.mask[:, k], k]
    assert np.all(into_sink == cfg.init_sink)  # fixed synapses unless learn_sink
    loaded = load_model(save_model(tmp_path / "m.json", net)).network
    assert loaded.topology == "layered+sink" and np.array_equal(loaded.weights, net.weights)


def test_learn_sink_lets_the_rule_move_the_leaks_and_needs_a_sink():
    # The two-endpoint rule: DEEP's own rule gives a synapse into the saturated sink s_j * 0.
    cfg = TrainingConfig.preset().replace(epochs=20, learn_sink=True, rule="stdp2")
    res = train("xor", topology="complete+sink", seeds=[0], config=cfg)
    net = res.networks[0]
    k = sink_index(net.roles)
    into_sink = net.weights[net.mask[:, k], k]
    assert into_sink.size == net.n_neurons - net.roles.n_inputs - 1
    assert not np.allclose(into_sink, cfg.init_sink) and np.all(np.isfinite(into_sink))
    with pytest.raises(InvalidInputError, match="learn_sink .--learn-sink. applies to a '.sink' topology; "
                                                "this network's topology is 'complete'"):
        train("xor", seeds=[0], config=cfg.replace(epochs=1))


@pytest.mark.slow
def test_digits_default_reaches_the_measured_accuracy():
    """The default digits training, seed 0 (docs/results.md: 5 seeds measured by
    benchmarks/study_results.py). A guard a little under the figure measured here."""
    res = train("digits", seeds=[0])
    assert res.networks[0].topology == "layered+sink"
    assert res.test_accuracy[0] >= 0.94


def test_a_network_labelled_with_a_sink_must_have_one():
    roles = Roles(3, (4,), 1)
    net = Network.create(roles, topology="layered")
    with pytest.raises(InvalidInputError, match=r"labelled 'layered\+sink' must have a sink.*got hidden layers \[4\]\.$"):
        Network(roles, net.weights, net.topology_mask, net.mask, "deep", {}, None, "layered+sink")
    roles = Roles(3, (4, 1), 1)
    full = Network.create(roles, topology="complete")  # the last hidden neuron has connections out
    with pytest.raises(InvalidInputError, match="and connections out of it"):
        Network(roles, full.weights, full.topology_mask, full.mask, "deep", {}, None, "complete+sink")


def test_hidden_zero_with_a_sink_leaves_the_sink_as_the_only_hidden_neuron():
    from deepcircuit.model.topology import with_sink_layer

    assert with_sink_layer((0,), "layered+sink") == (1,) and with_sink_layer((4, 2), "complete+sink") == (4, 2, 1)
    assert with_sink_layer((0,), "layered") == (0,)
    res = train("xor", topology="layered+sink", hidden=0, seeds=[0], config=TrainingConfig.preset().replace(epochs=2))
    assert res.networks[0].roles.hidden == (1,)
