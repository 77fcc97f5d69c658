"""The gradient check: implicit gradient vs finite differences, rule alignment, singular cases."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from deepcircuit import Network, NetworkBatch, Roles, Schedule, TrainingConfig, get_substrate, get_task
from deepcircuit.stability.gradient_check import (finite_difference_gradient, gradient_check, loss_gradient,
                                                  polish_equilibria, weight_groups)
from deepcircuit.learning.rule import stdp2_update, stdp_update, weight_update
from deepcircuit.substrates import initial_states
from deepcircuit.learning.initial_networks import make_networks

DC = [sys.executable, "-m", "deepcircuit"]


def _net(family, seed, preset="paper"):
    cfg = TrainingConfig.preset(preset, model=family)
    return make_networks(get_task("xor"), model=family, topology="complete", hidden=5, seeds=[seed], config=cfg)[0]


def _equilibria(net, task, seed=0):
    s0 = initial_states(np.random.default_rng(seed), 1, task.inputs, net.roles, 0.1)
    free = get_substrate("ode").run(NetworkBatch.of(net), task.inputs, s0, Schedule(nudged_steps=0)).free
    return polish_equilibria(net, free.final[0])


# Seeds whose initial network has a non-zero gradient (most random XOR networks start with the
# output held at a bound, where the gradient is exactly 0).
@pytest.mark.parametrize("family,seed,preset", [("ep-sym", 2, "paper"), ("ep-asym", 1, "paper"),
                                                ("deep-leaky", 1, "default"), ("deep", 1, "default")])
def test_implicit_gradient_matches_finite_differences(family, seed, preset):
    xor = get_task("xor")
    net = _net(family, seed, preset)
    eq = _equilibria(net, xor)
    assert eq.usable.any()
    gW, _ = loss_gradient(net, eq, xor.targets)
    assert np.abs(gW).max() > 1e-4, "the case must have a non-zero gradient to be a real check"
    live = [tuple(e) for e in np.argwhere(net.mask)]
    if net.family_.symmetric:
        live = [(i, j) for i, j in live if i < 3 or i < j]
    fd = finite_difference_gradient(net, eq, xor.targets, live)
    an = np.array([gW[i, j] for i, j in live])
    assert np.linalg.norm(fd - an) <= 1e-5 * np.linalg.norm(an)


def test_ep_sym_update_converges_to_the_gradient():
    # The known result (Scellier & Bengio 2017): symmetric EP's update -> -gradient as beta -> 0.
    net = _net("ep-sym", 2)
    rep = gradient_check(net, "xor", betas=[10.0, 1.0, 0.1, 0.01, 0.001], fd_entries=10)
    assert rep.status == "ok" and rep.finite_difference_error < 1e-5
    cos = rep.rules["ep-sym"].cosine
    ratio = rep.rules["ep-sym"].norm_ratio
    assert cos[-1] > 0.9999 and cos[-1] > cos[0]
    assert abs(ratio[-1] - 1.0) < 1e-2          # the update has the gradient's size too
    assert rep.rules["ep-sym"].symmetric["cosine"][-1] > 0.9999


def test_singular_jacobian_is_reported_not_returned():
    # DEEP with no input drive: activity is conserved, every free neuron settles inside (0, 1),
    # so the interior Jacobian has zero column sums: a continuum of equilibria, no gradient.
    roles = Roles(3, (3,), 1)
    net = Network.create(roles, family="deep", rng=0)
    W = np.where(net.mask, 0.3, 0.0)
    W[:3] = 0.0
    net = Network(roles, W, net.topology_mask, net.mask, "deep", {}, None, "complete")
    rep = gradient_check(net, "xor", betas=[1.0], fd_entries=5)
    assert rep.status == "singular" and rep.singular == 4
    assert "continuum of equilibria" in rep.message
    assert np.isnan(rep.finite_difference_error) and np.isnan(rep.rules["deep"].cosine[0])
    assert rep.to_dict()["rules"]["deep"]["cosine"] == [rep.rules["deep"].cosine[0]]


def test_stdp2_is_stdp_minus_the_presynaptic_change(deep_net, xor):
    s0 = initial_states(np.random.default_rng(0), 1, xor.inputs, deep_net.roles, 0.1)
    res = get_substrate("ode").run(NetworkBatch.of(deep_net), xor.inputs, s0,
                                   Schedule(free_steps=50, nudged_steps=50, beta=1.0), targets=xor.targets)
    a, b = stdp_update(res.nudged), stdp2_update(res.nudged)
    n = deep_net.roles.n_inputs
    np.testing.assert_allclose(b[0, :n], a[0, :n])             # clamped pre: DEEP's update
    i, j = n, n + 2
    np.testing.assert_allclose(b[0, i, j], a[0, i, j] - a[0, i, i])
    dW, db = weight_update("stdp2", res, {"beta": 1.0, "beta0": 0.0, "beta1": 1.0, "nudged_steps": 50})
    np.testing.assert_allclose(dW, b) and np.testing.assert_array_equal(db, 0.0)


def test_weight_groups_partition_the_live_weights(deep_net):
    groups = weight_groups(deep_net)
    total = sum(g.astype(int) for g in groups.values())
    np.testing.assert_array_equal(total, deep_net.mask.astype(int))
    assert "output->hidden" in groups and "input->hidden" in groups


def _train(tmp_path):
    p = subprocess.run(DC + ["train", "--task", "xor", "--model", "ep-sym", "--preset", "paper", "--epochs", "3",
                             "--free-steps", "300", "--nudged-steps", "300", "--out", str(tmp_path), "--json",
                             "--quiet"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])["models"][0]


def test_cli_gradcheck_json_and_errors(tmp_path):
    model = _train(tmp_path)
    p = subprocess.run(DC + ["gradcheck", model, "--task", "xor", "--beta", "1", "0.01", "--fd-entries", "8",
                             "--plot", str(tmp_path / "cos.png"), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout.strip().splitlines()[-1])
    assert set(d["rules"]) == {"deep", "deep-stdp2", "deep-stdp2-mirror", "ep-asym", "ep-sym"}
    r = d["rules"]["ep-sym"]
    assert r["beta"] == [1.0, 0.01] and len(r["cosine"]) == len(r["norm_ratio"]) == 2
    assert d["finite_difference_error"] < 1e-5 and r["cosine"][1] > 0.99
    assert (tmp_path / "cos.png").stat().st_size > 1000
    bad = subprocess.run(DC + ["gradcheck", model, "--beta", "-1"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "beta must be a finite number > 0" in bad.stderr
    missing = subprocess.run(DC + ["gradcheck", str(tmp_path / "nope.json")], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_training_with_the_stdp2_rule_and_rule_choice():
    from deepcircuit import InvalidInputError, train

    cfg = TrainingConfig.preset("default").replace(epochs=3, free_steps=100, nudged_steps=100)
    a = train("xor", seeds=[0], config=cfg)
    b = train("xor", seeds=[0], config=cfg.replace(rule="stdp2"))
    assert not np.allclose(a.networks[0].weights, b.networks[0].weights)
    with pytest.raises(InvalidInputError, match="cannot train with rule 'stdp2'"):
        train("xor", model="ep-asym", seeds=[0], config=cfg.replace(rule="stdp2"))
    with pytest.raises(InvalidInputError, match="rule"):
        cfg.replace(rule="hebb")


def test_stdp2_with_synaptic_traces_uses_the_states_for_the_own_term(deep_net, xor):
    # A substrate that measures the STDP sums in its synapses has no i -> i synapse (zero
    # diagonal); the pre-synaptic neuron's own term must still be there.
    from dataclasses import replace

    s0 = initial_states(np.random.default_rng(0), 1, xor.inputs, deep_net.roles, 0.1)
    res = get_substrate("ode").run(NetworkBatch.of(deep_net), xor.inputs, s0,
                                   Schedule(free_steps=50, nudged_steps=50, beta=1.0), targets=xor.targets)
    s = res.nudged.states
    pre_dpost = np.einsum("sptn,sptm->snm", s[:, :, 1:], s[:, :, 1:] - s[:, :, :-1]) * deep_net.mask
    traced = replace(res.nudged, meta={**res.nudged.meta, "synaptic_traces": {
        "pre_dpost": pre_dpost, "pre_post": np.zeros_like(pre_dpost), "samples": 50}})
    np.testing.assert_allclose(stdp2_update(traced) * deep_net.mask, stdp2_update(res.nudged) * deep_net.mask,
                               atol=1e-15)


def test_per_layer_learning_rates_freeze_and_scale_rows():
    from deepcircuit import train

    cfg = TrainingConfig.preset("default").replace(epochs=2, free_steps=100, nudged_steps=100)
    base = train("xor", seeds=[0], config=cfg)
    frozen = train("xor", seeds=[0], config=cfg.replace(eta_input=0.0, eta_feedback=0.0))
    W0 = base.initial_networks[0].weights
    Wf = frozen.networks[0].weights
    np.testing.assert_array_equal(Wf[:3], W0[:3])       # input and bias rows frozen
    np.testing.assert_array_equal(Wf[-1], W0[-1])       # feedback row of the output frozen
    assert not np.allclose(Wf[3:-1], W0[3:-1])          # hidden rows still learn
    assert not np.allclose(base.networks[0].weights[:3], W0[:3])


def test_stdp2_mirror_copies_the_forward_update_to_backward_synapses(deep_net, xor):
    s0 = initial_states(np.random.default_rng(0), 1, xor.inputs, deep_net.roles, 0.1)
    res = get_substrate("ode").run(NetworkBatch.of(deep_net), xor.inputs, s0,
                                   Schedule(free_steps=50, nudged_steps=50, beta=1.0), targets=xor.targets)
    st = {"beta": 1.0, "beta0": 0.0, "beta1": 1.0, "nudged_steps": 50}
    a, _ = weight_update("stdp2", res, st)
    m, _ = weight_update("stdp2-mirror", res, st)
    h, y = 3, 8                                            # h0 -> y0 forward, y0 -> h0 backward
    assert m[0, y, h] == a[0, h, y] and m[0, h, y] == a[0, h, y]
    np.testing.assert_array_equal(m[0, :3], a[0, :3])      # input rows untouched
    assert not np.allclose(m, a)
