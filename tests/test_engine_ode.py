"""The ODE substrate's Euler engines (numba loop, BLAS step, numpy reference) and ``record``.

Pins: the three engines compute the same projected Euler scheme, settling test and early stop per
presentation; ``engine="auto"`` keeps the logic-gate results bit-for-bit; ``record="final"`` / k
feed the DEEP rule the same dW (to rounding) as the full trajectory; bad options fail clearly.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepcircuit import Network, NetworkBatch, Schedule, TrainingConfig, train
from deepcircuit.errors import InvalidInputError
from deepcircuit.learning.rule import stdp_update
from deepcircuit.model.roles import Roles
from deepcircuit.substrates import initial_states
from deepcircuit.substrates.ode import OdeSubstrate, choose_engine


def layered_case(S=2, P=6, hidden=(12, 8), n_in=5, n_out=3, scale=0.4, family="deep", seed=0):
    rng = np.random.default_rng(seed)
    roles = Roles(n_in, hidden, n_out)
    params = {"gamma": 0.2} if family == "deep-leaky" else None
    nets = NetworkBatch.of([Network.create(roles, family=family, topology="layered", rng=seed + s,
                                           init_scale=scale, params=params) for s in range(S)])
    inputs = np.column_stack([rng.uniform(0, 1, (P, n_in - 1)), np.ones(P)])
    targets = rng.uniform(0, 1, (P, n_out))
    s0 = initial_states(rng, S, inputs, roles)
    return nets, inputs, targets, s0


@pytest.mark.parametrize("family", ["deep", "deep-leaky", "ep-asym"])
@pytest.mark.parametrize("stop", [False, True])
def test_engines_agree(family, stop):
    nets, inputs, targets, s0 = layered_case(family=family)
    sched = Schedule(free_steps=300, nudged_steps=200, stop_at_equilibrium=stop, settle_tol=1e-3)
    res = {e: OdeSubstrate(engine=e).run(nets, inputs, s0, sched, targets=targets)
           for e in ("numpy", "numba", "blas")}
    ref = res["numpy"]
    for e in ("numba", "blas"):
        for a, b in ((res[e].free, ref.free), (res[e].nudged, ref.nudged)):
            assert a.states.shape == b.states.shape
            np.testing.assert_allclose(a.states, b.states, atol=1e-12, rtol=0)
            assert np.array_equal(a.meta["steps_done"], b.meta["steps_done"])
            assert np.array_equal(a.settled, b.settled)
            np.testing.assert_allclose(a.meta["final_speed"], b.meta["final_speed"], rtol=1e-9, atol=1e-12)
    if stop:  # the case must exercise a per-presentation stop, not only a whole-batch one
        done = ref.free.meta["steps_done"]
        assert (done < sched.free_steps).any() and len(np.unique(done)) > 1


def test_early_stop_freezes_each_presentation():
    nets, inputs, targets, s0 = layered_case()
    sched = Schedule(free_steps=400, nudged_steps=0, stop_at_equilibrium=True, settle_tol=1e-3)
    for e in ("numpy", "numba", "blas"):
        tr = OdeSubstrate(engine=e).run(nets, inputs, s0, sched).free
        done = tr.meta["steps_done"]
        for s in range(done.shape[0]):
            for p in range(done.shape[1]):
                if done[s, p] < tr.states.shape[2] - 1:
                    frozen = tr.states[s, p, done[s, p]:]
                    assert np.array_equal(frozen, np.broadcast_to(frozen[0], frozen.shape))


def test_auto_keeps_logic_gate_results_bit_for_bit(xor):
    roles = Roles(3, (5,), 1)
    nets = NetworkBatch.of([Network.create(roles, rng=s, init_scale=0.5) for s in range(10)])
    s0 = initial_states(np.random.default_rng(0), 10, xor.inputs, roles)
    sched = Schedule(free_steps=200, nudged_steps=200)
    assert choose_engine(10, 4, 6) == "numba"
    a = OdeSubstrate().run(nets, xor.inputs, s0, sched, targets=xor.targets)
    b = OdeSubstrate(engine="numba").run(nets, xor.inputs, s0, sched, targets=xor.targets)
    assert a.nudged.meta["engine"] == "numba"
    assert np.array_equal(a.nudged.states, b.nudged.states)


def test_auto_uses_blas_on_large_batches():
    assert choose_engine(1, 64, 110) == "blas"
    assert choose_engine(1, 512, 8) == "blas"
    nets, inputs, targets, s0 = layered_case(S=1, P=80)
    tr = OdeSubstrate().run(nets, inputs, s0, Schedule(free_steps=5, nudged_steps=0)).free
    assert tr.meta["engine"] == "blas"


@pytest.mark.parametrize("engine", ["numba", "blas", "numpy"])
@pytest.mark.parametrize("stop", [False, True])
@pytest.mark.parametrize("record", ["final", 7])
def test_rule_gets_same_update_without_full_trajectory(engine, stop, record):
    nets, inputs, targets, s0 = layered_case(S=2, P=5)
    sched = Schedule(free_steps=200, nudged_steps=150, stop_at_equilibrium=stop, settle_tol=1e-3)
    full = OdeSubstrate(engine=engine).run(nets, inputs, s0, sched, targets=targets)
    lean = OdeSubstrate(engine=engine, record=record).run(nets, inputs, s0, sched, targets=targets)
    assert "synaptic_traces" not in full.nudged.meta
    assert "synaptic_traces" in lean.nudged.meta
    assert lean.nudged.meta["synaptic_traces"]["samples"] == full.nudged.states.shape[2] - 1
    for beta0 in (0.0, 0.5):
        want = stdp_update(full.nudged, beta0=beta0, nominal_steps=150)
        got = stdp_update(lean.nudged, beta0=beta0, nominal_steps=150)
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-14 * np.abs(want).max())
    np.testing.assert_array_equal(lean.free.final, full.free.final)
    np.testing.assert_array_equal(lean.nudged.final, full.nudged.final)
    np.testing.assert_array_equal(lean.nudged.settled, full.nudged.settled)
    if record == 7:  # every 7th step and the last, exactly the full trajectory's samples
        steps = np.rint(lean.nudged.times / sched.dt).astype(int)
        last = full.nudged.states.shape[2] - 1
        assert steps[0] == 0 and steps[-1] == last and np.all(steps[:-1] % 7 == 0)
        np.testing.assert_array_equal(lean.nudged.states, full.nudged.states[:, :, steps])
    else:
        assert lean.nudged.states.shape[2] == 2


@pytest.mark.filterwarnings("ignore::deepcircuit.errors.NotSettledWarning")
def test_training_with_final_record_matches_full(xor):
    cfg = TrainingConfig(epochs=5, free_steps=200, nudged_steps=200)
    a = train("xor", seeds=[0, 1], config=cfg, substrate=OdeSubstrate())
    b = train("xor", seeds=[0, 1], config=cfg, substrate=OdeSubstrate(record="final"))
    for na, nb in zip(a.networks, b.networks):
        np.testing.assert_allclose(nb.weights, na.weights, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("engine", ["numba", "blas"])
def test_overflow_is_reported_as_divergence(engine):
    nets, inputs, targets, s0 = layered_case(S=2, P=3)
    W = nets.networks[1].weights.copy()
    W[nets.networks[1].mask] = 1.5e308  # finite, but sums overflow to inf - inf = NaN
    batch = NetworkBatch.of([nets.networks[0], nets.networks[1].with_weights(W)])
    for record in ("full", "final"):
        with np.errstate(over="ignore", invalid="ignore"):
            tr = OdeSubstrate(engine=engine, record=record).run(batch, inputs, s0, Schedule(free_steps=50)).free
        assert tr.diverged.tolist() == [False, True]
        assert tr.status == "diverged"


@pytest.mark.parametrize("record", ["all", 0, -3, 2.5, True])
def test_bad_record_is_refused(record):
    with pytest.raises(InvalidInputError, match="record"):
        OdeSubstrate(record=record)


def test_bad_engine_is_refused():
    with pytest.raises(InvalidInputError, match="engine"):
        OdeSubstrate(engine="gpu")
    with pytest.raises(InvalidInputError, match="record"):
        OdeSubstrate(method="adaptive", record="final")


def test_stdp2_gets_the_same_update_without_full_trajectories():
    """The two-endpoint rule reads each neuron's own sum from the substrate when only phase ends
    are kept (record='final'), and agrees with the full-trajectory computation."""
    import deepcircuit as dc
    from deepcircuit.learning.rule import stdp2_update
    from deepcircuit.substrates import get_substrate, initial_states

    task = dc.get_task("xor")
    net = dc.train("xor", seeds=[0], config=dc.TrainingConfig.preset("default").replace(epochs=3)).networks[0]
    s0 = initial_states(np.random.default_rng(1), 1, task.inputs, net.roles)
    sched = dc.Schedule(free_steps=200, nudged_steps=200)
    full = get_substrate("ode", record="full").run(net, task.inputs, s0, sched, targets=task.targets)
    thin = get_substrate("ode", record="final").run(net, task.inputs, s0, sched, targets=task.targets)
    assert thin.nudged.states.shape[2] < full.nudged.states.shape[2]
    a = stdp2_update(full.nudged, nominal_steps=200)
    b = stdp2_update(thin.nudged, nominal_steps=200)
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-13)
