"""Learning with spikes: the spike-based rule's expectation is DEEP's rate rule; energy counts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import cosine, xor_networks_in_training
from deepcircuit import Schedule, get_substrate, get_task, initial_states
from deepcircuit.studies.comparison import energy_counts
from deepcircuit.learning.rule import stdp_update
from deepcircuit.substrates.ode import OdeSubstrate
from deepcircuit.learning.config import TrainingConfig
from deepcircuit.learning.training import train

brian2 = pytest.importorskip("brian2")
pytestmark = pytest.mark.brian2


@pytest.fixture(scope="module")
def case():
    """Two XOR networks a few ODE epochs into training (their nudged phases move the states)."""
    task = get_task("xor")
    nets = xor_networks_in_training()
    s0 = initial_states(np.random.default_rng(0), 2, task.inputs, nets[0].roles)
    return task, nets, s0


def test_spike_rule_recovers_the_rate_rule(case):
    """Pair-based STDP (pre spike x (fast - slow post trace)) estimates sum_t s_i (s_j(t) - s_j(t-1)).

    Measured against the ODE's rate rule for the same networks and initial states: the
    direction (cosine over the live connections) and the size (norm ratio, which checks the
    derived scale 1 / (max_rate^2 (tau_slow - tau_fast))) of the update.
    """
    task, nets, s0 = case
    sch = Schedule(free_steps=500, nudged_steps=200)
    sub = get_substrate("brian2-spiking", max_rate=10000.0, substeps=20, stdp_window=10.0, seed=1)
    res = sub.run(nets, task.inputs, s0, sch, targets=task.targets)
    ref = OdeSubstrate().run(nets, task.inputs, s0, sch, targets=task.targets)
    spk = stdp_update(res.nudged, nominal_steps=200)
    rate = stdp_update(ref.nudged, nominal_steps=200)
    assert res.nudged.meta["stdp_window_steps"] == 200
    for k, net in enumerate(nets):
        m = net.mask
        assert cosine(spk[k][m], rate[k][m]) > 0.8
        assert 0.6 < np.linalg.norm(spk[k][m]) / np.linalg.norm(rate[k][m]) < 1.7
    # Only pre-synaptic spikes feed the accumulators: no synapse, no measurement.
    assert np.all(res.nudged.meta["synaptic_traces"]["pre_dpost"][:, :, :3] == 0)


def test_energy_counts(case):
    task, nets, s0 = case
    sch = Schedule(free_steps=40, nudged_steps=20)
    sub = get_substrate("brian2-spiking", max_rate=2000.0, substeps=10, seed=2)
    res = sub.run(nets[:1], task.inputs, s0[:1], sch, targets=task.targets)
    f = res.free.meta
    # The bias neuron alone fires at max_rate: 2000 Hz x 2 tau x 10 ms = 40 spikes on average.
    assert f["spikes_per_presentation"] > 20
    live_out = (nets[0].weights != 0).sum(axis=1)
    assert f["synaptic_events"] >= f["spikes"]  # every neuron here has outgoing synapses
    assert f["synaptic_events"] <= f["spikes"] * live_out.max()
    e = energy_counts(res)
    assert e["spikes_per_training_step"] > e["spikes_per_inference"] > 0
    assert e["synaptic_events_per_second"] == pytest.approx(
        f["synaptic_events"] / (4 * f["simulated_seconds"]))
    assert energy_counts(OdeSubstrate().run(nets[:1], task.inputs, s0[:1], sch, targets=task.targets)) == {}


@pytest.mark.skipif(not __import__("deepcircuit.substrates.brian2_build", fromlist=["x"]).compiler_available(),
                    reason="needs make and a C++ compiler")
def test_compiled_spiking_runs_both_phases_and_learns(case):
    """The cpp_standalone spiking program: spikes at the encoded rates, counted per phase, and a
    spike-based update pointing where the rate rule points (seeded, but the bounds were set
    for unseeded spike trains, so they are loose)."""
    task, nets, s0 = case
    sch = Schedule(free_steps=500, nudged_steps=200)
    sub = get_substrate("brian2-spiking", target="cpp_standalone", max_rate=10000.0, substeps=20,
                        stdp_window=10.0)
    res = sub.run(nets, task.inputs, s0, sch, targets=task.targets)
    assert res.free.states.shape == (2, 4, 501, 9) and res.nudged.states.shape == (2, 4, 201, 9)
    np.testing.assert_array_equal(res.nudged.states[:, :, 0], res.free.states[:, :, -1])
    assert res.free.meta["brian2_target"] == "cpp_standalone"
    # Expected spikes in the free phase: sum of rates x duration; inputs at 0 never fire.
    dur = res.free.meta["simulated_seconds"]
    want = (res.free.states[:, :, :-1].mean(axis=2) * 10000.0 * dur).sum() / 8
    assert abs(res.free.meta["spikes_per_presentation"] - want) < 0.05 * want
    spk = stdp_update(res.nudged, nominal_steps=200)
    rate = stdp_update(OdeSubstrate().run(nets, task.inputs, s0, sch, targets=task.targets).nudged,
                       nominal_steps=200)
    for k, net in enumerate(nets):
        assert cosine(spk[k][net.mask], rate[k][net.mask]) > 0.5
    assert sub.build_seconds > 0


def test_repeats_average_the_update_over_independent_presentations(case):
    """`repeats=K`: each (network, pattern) of a training step runs K times side by side; the
    trajectories are the first repetition's, the synaptic sums the mean over repetitions (each
    repetition's kept in `pre_dpost_each`), and a run without targets is not repeated."""
    task, nets, s0 = case
    sch = Schedule(free_steps=500, nudged_steps=200)
    K = 3
    sub = get_substrate("brian2-spiking", max_rate=10000.0, substeps=20, stdp_window=10.0, seed=1, repeats=K)
    res = sub.run(nets, task.inputs, s0, sch, targets=task.targets)
    assert res.free.states.shape == (2, 4, 501, 9) and res.nudged.states.shape == (2, 4, 201, 9)
    np.testing.assert_array_equal(res.nudged.states[:, :, 0], res.free.states[:, :, -1])
    assert res.free.meta["window_mean"].shape == (2, 4, 9) and res.nudged.meta["repeats"] == K
    tr = res.nudged.meta["synaptic_traces"]
    each = tr["pre_dpost_each"]
    assert each.shape == (K, 2, 9, 9)
    np.testing.assert_allclose(each.mean(axis=0), tr["pre_dpost"], rtol=1e-12, atol=1e-12)
    rate = stdp_update(OdeSubstrate().run(nets, task.inputs, s0, sch, targets=task.targets).nudged,
                       nominal_steps=200)
    one = get_substrate("brian2-spiking", max_rate=10000.0, substeps=20, stdp_window=10.0, seed=1)
    single = one.run(nets, task.inputs, s0, sch, targets=task.targets)
    for k, net in enumerate(nets):
        m = net.mask
        # Independent spike trains: the repetitions differ, and each estimates the rate rule.
        assert not np.allclose(each[0, k][m], each[1, k][m])
        for r in range(K):
            assert cosine(each[r, k][m], rate[k][m]) > 0.7
    # The update the rule reads is the repetitions' mean: the rate rule's scale, and closer to its
    # direction than a single repetition may be (seeded: one repetition of network 1 has 0.79).
    spk = stdp_update(res.nudged, nominal_steps=200)
    for k, net in enumerate(nets):
        m = net.mask
        assert cosine(spk[k][m], rate[k][m]) > 0.85
        assert 0.6 < np.linalg.norm(spk[k][m]) / np.linalg.norm(rate[k][m]) < 1.7
    # Every repetition's spikes are counted (what the training step costs).
    ratio = res.nudged.meta["spikes_per_presentation"] / single.nudged.meta["spikes_per_presentation"]
    assert abs(ratio - K) < 0.1 * K
    # Inference (no targets) is one presentation each: the same seeded run as without repeats.
    a = sub.run(nets, task.inputs, s0, Schedule(free_steps=100)).free
    b = one.run(nets, task.inputs, s0, Schedule(free_steps=100)).free
    np.testing.assert_array_equal(a.states, b.states)


@pytest.mark.skipif(not __import__("deepcircuit.substrates.brian2_build", fromlist=["x"]).compiler_available(),
                    reason="needs make and a C++ compiler")
def test_spike_training_with_the_per_seed_stop_solves_xor():
    """XOR trained and evaluated as spikes (compiled, 10 kHz), each seed stopped after 3 epochs
    in a row at 0 error as spikes (docs/brian2.md: 10/10 seeds in 7 of 8 runs of 10 seeds). The
    program is the one of the test above (same shape). The assertion asks one of two seeds,
    each solved in about 79 of 80 measured cases with unseeded spike trains (now seeded)."""
    cfg = TrainingConfig.preset("default").replace(epochs=40, free_steps=500, nudged_steps=200,
                                                   stop_when_solved=3)
    sub = get_substrate("brian2-spiking", target="cpp_standalone", max_rate=10000.0, substeps=20,
                        stdp_window=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = train("xor", seeds=[0, 7], config=cfg, substrate=sub)
    stopped = [k for k, h in enumerate(r.histories) if h.update_norm[-1] == 0]
    assert stopped, "no seed reached 3 epochs in a row at 0 error as spikes in 40 epochs"
    for k in stopped:
        h = r.histories[k]
        first = h.update_norm.index(0.0)
        assert h.error[first - 2:first + 1] == [0.0, 0.0, 0.0]  # the stop's evidence, as spikes
        assert all(u > 0 for u in h.update_norm[:first]) and all(u == 0 for u in h.update_norm[first:])
    assert r.solved >= 1
