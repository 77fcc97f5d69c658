"""Brian2's cpp_standalone target: compiled phases and whole trainings agree with the ODE
substrate, and the rule inside the training program is the shared learning code's rule."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from deepcircuit import Network, Roles, Schedule, get_substrate, get_task, initial_states
from deepcircuit.learning.rule import apply_update, stdp_update
from deepcircuit.substrates.ode import OdeSubstrate
from deepcircuit.learning.config import TrainingConfig
from deepcircuit.learning.training import train

brian2 = pytest.importorskip("brian2")
from deepcircuit.substrates import brian2_rate  # noqa: E402
from deepcircuit.substrates.brian2_build import CACHE_ENV, cache_root, compiler_available  # noqa: E402

pytestmark = [pytest.mark.brian2,
              pytest.mark.skipif(not compiler_available(), reason="needs make and a C++ compiler")]

#: Small but real: 2 seeds, 6 epochs of 150 + 150 steps, L1 and magnitude pruning switched on so
#: that the program's update, regulariser and pruning are all exercised.
CFG = TrainingConfig.preset("default").replace(epochs=6, free_steps=150, nudged_steps=150,
                                               l1=2e-3, prune="magnitude", prune_tol=0.05)


@pytest.fixture(scope="module")
def standalone():
    return get_substrate("brian2", target="cpp_standalone")


@pytest.fixture(scope="module")
def trained(standalone):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ode = train("xor", seeds=[0, 3], config=CFG, substrate="ode")
        b2 = train("xor", seeds=[0, 3], config=CFG, substrate=standalone)
    return ode, b2, standalone._standalone._plan


def test_whole_training_matches_ode(trained):
    ode, b2, plan = trained
    # Every epoch (and the final evaluation) was answered from the one compiled training run.
    assert plan is not None and plan["epoch"] == CFG.epochs + 1
    for a, b in zip(ode.networks, b2.networks):
        np.testing.assert_array_equal(a.mask, b.mask)
        assert np.linalg.norm(a.weights - b.weights) <= 1e-9 * np.linalg.norm(a.weights)
    np.testing.assert_allclose(b2.mse, ode.mse, rtol=1e-6)
    assert any(n.sparsity > 0 for n in b2.networks), "the test needs some pruning to happen"
    for ha, hb in zip(ode.histories, b2.histories):
        np.testing.assert_allclose(hb.mse, ha.mse, rtol=1e-6)
        assert hb.error == ha.error


def test_rule_inside_the_program_is_the_shared_rule(trained):
    """Each epoch's weights in the program equal the shared learning code applied to the
    accumulator sums the program measured (no program-side shortcut)."""
    _, b2, plan = trained
    W, alive, sums = plan["W"], plan["alive"], plan["sums"]
    tr = None
    for k in range(CFG.epochs):
        from deepcircuit.substrates.trajectory import Trajectory

        roles = b2.networks[0].roles
        S = W.shape[1]
        states = np.zeros((S, 4, 2, roles.n_neurons))
        tr = Trajectory(np.array([0.0, 1.0]), states, roles, "nudged", "test",
                        np.ones((S, 4), bool), 1e-4, np.zeros(S, bool), "",
                        {"synaptic_traces": {"pre_dpost": sums["pre_dpost"][k],
                                             "pre_post": sums["pre_post"][k],
                                             "samples": CFG.nudged_steps}})
        dW = stdp_update(tr, beta0=CFG.beta0, beta1=CFG.beta1, nominal_steps=CFG.nudged_steps)
        Wn, _ = apply_update(W[k], np.zeros(W.shape[1:3]), dW, np.zeros(W.shape[1:3]), alive[k],
                             eta=CFG.eta, l1=CFG.l1)
        keep = alive[k] & (np.abs(Wn) > CFG.prune_tol)
        Wn = np.where(keep, Wn, 0.0)
        np.testing.assert_array_equal(keep, alive[k + 1])
        np.testing.assert_allclose(W[k + 1], Wn, rtol=1e-13, atol=1e-300)
        assert np.any(sums["pre_dpost"][k] != 0)


def test_phase_program_matches_ode(standalone):
    task = get_task("xor")
    roles = Roles(3, (5,), 1)
    nets = [Network.create(roles, family="deep", topology="complete", rng=k) for k in range(2)]
    s0 = initial_states(np.random.default_rng(3), 2, task.inputs, roles)
    sch = Schedule(free_steps=150, nudged_steps=150)
    ref = OdeSubstrate().run(nets, task.inputs, s0, sch, targets=task.targets)
    got = standalone.run(nets, task.inputs, s0, sch, targets=task.targets)
    assert got.free.states.shape == ref.free.states.shape
    assert np.abs(got.free.states - ref.free.states).max() <= 1e-9
    assert np.abs(got.nudged.states - ref.nudged.states).max() <= 1e-9
    assert got.free.meta["brian2_target"] == "cpp_standalone"
    s = got.nudged.states
    want = np.einsum("sptI,sptJ->sIJ", s[:, :, 1:], s[:, :, 1:] - s[:, :, :-1])
    mask = np.stack([n.topology_mask for n in nets])
    np.testing.assert_allclose(got.nudged.meta["synaptic_traces"]["pre_dpost"][mask], want[mask],
                               rtol=1e-10, atol=1e-12)
    # Free phase only: the same program, the nudged part dropped.
    free = standalone.run(nets, task.inputs, s0, sch)
    assert free.nudged is None
    np.testing.assert_array_equal(free.free.states, got.free.states)


def test_cache_folder_is_documented_and_overridable(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "b2"))
    assert cache_root() == tmp_path / "b2"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "deepcircuit" / "brian2"


def test_run_folder_is_overridable_and_falls_back_to_the_program_folder(monkeypatch, tmp_path):
    from deepcircuit.substrates import brian2_build

    monkeypatch.setenv(brian2_build.RUN_ENV, str(tmp_path / "runs"))
    assert brian2_build.run_folder(tmp_path / "prog") == tmp_path / "runs"
    monkeypatch.delenv(brian2_build.RUN_ENV)
    # No memory-backed folder with enough room: the program folder.
    monkeypatch.setattr(brian2_build, "RUN_DIR_MIN_FREE", 1 << 62)
    assert brian2_build.run_folder(tmp_path / "prog") == tmp_path / "prog"


def test_falls_back_to_numpy_without_a_compiler_and_says_so_once(monkeypatch):
    from deepcircuit.substrates import brian2_build

    monkeypatch.setattr(brian2_build, "compiler_available", lambda: False)
    monkeypatch.setattr(brian2_rate, "_FALLBACK_SAID", False)
    with pytest.warns(brian2_rate.Brian2FallbackWarning, match="no C\\+\\+ compiler"):
        sub = get_substrate("brian2")
    assert sub.target == "numpy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_substrate("brian2").target == "numpy"
