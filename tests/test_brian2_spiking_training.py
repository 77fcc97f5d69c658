"""Compiled spike-based training as one program, Poisson spikes by time rescaling, and Brian2's
per-step clock read taken out of the compiled loop."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import cosine, xor_networks_in_training
from deepcircuit import Schedule, get_substrate, get_task, initial_states
from deepcircuit.learning.rule import stdp_update
from deepcircuit.learning.config import TrainingConfig
from deepcircuit.learning.initial_networks import make_networks
from deepcircuit.learning.training import train
from deepcircuit.model.network import NetworkBatch
from deepcircuit.substrates.brian2_build import compiler_available
from deepcircuit.substrates.ode import OdeSubstrate

brian2 = pytest.importorskip("brian2")
pytestmark = pytest.mark.brian2
needs_compiler = pytest.mark.skipif(not compiler_available(), reason="needs make and a C++ compiler")


@pytest.fixture(scope="module")
def case():
    """Two XOR networks a few ODE epochs into training, and initial states for 3 epochs."""
    task = get_task("xor")
    nets = xor_networks_in_training()
    rng = np.random.default_rng(0)
    init = np.stack([np.concatenate([initial_states(rng, 1, task.inputs, nets[0].roles) for _ in nets])
                     for _ in range(3)])
    return task, NetworkBatch.of(nets), init


@needs_compiler
def test_training_program_measures_the_rate_rule_every_epoch(case):
    """With eta = 0 the program's epochs are independent measurements on fixed networks: each
    epoch's spike-based update points where the ODE's rate update from the same initial states
    points, at its scale; its free phase ends near the ODE's equilibrium; it fires as many spikes
    as the per-epoch program; the weights stay put."""
    task, batch, init = case
    cfg = TrainingConfig.preset("default").replace(epochs=2, eta=0.0, free_steps=500, nudged_steps=200)
    sch = cfg.schedule
    kw = dict(target="cpp_standalone", max_rate=10000.0, substeps=20, stdp_window=10.0)
    sub = get_substrate("brian2-spiking", **kw)
    assert sub.plan_training(batch, task.inputs, task.targets, sch, cfg, init)
    ode = OdeSubstrate()
    cosines = []
    for k in range(2):
        res = sub.run(batch, task.inputs, init[k], sch, targets=task.targets)
        ref = ode.run(batch, task.inputs, init[k], sch, targets=task.targets)
        assert res.free.states.shape == (2, 4, 2, 9)  # initial and final states only
        assert "whole-training" in res.free.meta["recorded"]
        np.testing.assert_array_equal(res.free.states[:, :, 0], init[k])
        np.testing.assert_array_equal(res.nudged.states[:, :, 0], res.free.states[:, :, 1])
        spk = stdp_update(res.nudged, nominal_steps=200)
        rate = stdp_update(ref.nudged, nominal_steps=200)
        for j in range(2):
            m = batch.mask[j]
            cosines.append(cosine(spk[j][m], rate[j][m]))
            assert 0.6 < np.linalg.norm(spk[j][m]) / np.linalg.norm(rate[j][m]) < 1.7
        # Window means against the ODE's equilibrium, 72 values per epoch: over 80 unseeded
        # epochs the mean error was 0.002-0.009 and the 95th percentile 0.01-0.035, but the
        # largest one 0.04-0.30 (now and then one hidden neuron of one pattern strays), so it
        # gets only a gross bound.
        err = np.abs(res.free.meta["window_mean"] - ref.free.final)
        assert err.mean() < 0.02 and np.quantile(err, 0.95) < 0.07 and err.max() < 0.5, err
        np.testing.assert_array_equal(sub._plan["W"][k + 1], batch.weights)
    # Seeded (seed 0) since the run-time seed; the bounds come from 12 unseeded runs: each
    # cosine 0.79-0.99, the mean of a run's four 0.92-0.96; norm ratios 0.8-1.3.
    assert min(cosines) > 0.6 and np.mean(cosines) > 0.85, cosines
    # The final evaluation (free phase only) is the last recorded epoch.
    assert sub.run(batch, task.inputs, init[2], sch).nudged is None and sub._plan["epoch"] == 3
    # Spike counts of the same presentation in the per-epoch program (spike noise: a few %).
    per_epoch = get_substrate("brian2-spiking", whole_training=False, **kw)
    one = per_epoch.run(batch, task.inputs, init[0], sch, targets=task.targets)
    for phase in ("free", "nudged"):
        a = getattr(res, phase).meta["spikes_per_presentation"]
        b = getattr(one, phase).meta["spikes_per_presentation"]
        assert abs(a - b) < 0.05 * b, (phase, a, b)


@needs_compiler
def test_train_follows_the_whole_program_and_leaves_it_when_asked_otherwise():
    """`train` on the compiled spiking substrate runs the whole training as one program and
    replays it epoch by epoch: the shared rule, applied to the program's sums, gives the
    program's weights every epoch (else the plan would be dropped). A call the program did not
    record is simulated."""
    task = get_task("xor")
    cfg = TrainingConfig.preset("default").replace(epochs=4)
    sub = get_substrate("brian2-spiking", target="cpp_standalone", stdp_window=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train("xor", seeds=[0, 1], config=cfg, substrate=sub)
    plan = sub._plan
    assert plan is not None and plan["epoch"] == cfg.epochs + 1  # every epoch and the final evaluation
    W = np.stack([n.weights for n in res.networks])
    np.testing.assert_allclose(W, plan["W"][cfg.epochs], rtol=1e-12, atol=1e-15)
    assert not np.allclose(plan["W"][0], plan["W"][cfg.epochs])
    assert all(len(h.error) == cfg.epochs and np.all(np.asarray(h.update_norm) > 0) for h in res.histories)
    # Not a recorded epoch: simulated by the per-epoch program, every sample returned.
    s0 = initial_states(np.random.default_rng(5), 2, task.inputs, res.networks[0].roles)
    out = sub.run(res.networks, task.inputs, s0, cfg.schedule, targets=task.targets)
    assert sub._plan is None and out.free.states.shape[2] == cfg.free_steps + 1


def test_spikes_are_poisson_even_at_half_a_spike_per_step():
    """Time rescaling draws Poisson spike counts (variance = mean) at any spike probability per
    step; per-step Bernoulli draws would give variance = mean * (1 - p) = half the mean here."""
    task = get_task("xor")
    net = make_networks(task, model="deep", topology="complete", hidden=5, seeds=[0],
                        config=TrainingConfig.preset("default"))[0]
    P = 200
    inputs = np.tile(task.inputs[-1:], (P, 1))
    s0 = initial_states(np.random.default_rng(0), 1, inputs, net.roles)
    sch = Schedule(free_steps=100, nudged_steps=0, stop_at_equilibrium=False)
    # 2 kHz x (0.05 tau = 0.5 ms) / 2 substeps: 0.5 expected spikes per Brian2 step at state 1.
    sub = get_substrate("brian2-spiking", max_rate=2000.0, substeps=2, seed=3)
    res = sub.run([net], inputs, s0, sch)
    # The clamped neurons (x0 = x1 = bias = 1 in this pattern), 3 x 200 copies.
    counts = sub._net.spike_counts().reshape(P, net.roles.n_neurons)[:, :net.roles.n_inputs].ravel()
    want = 2000.0 * res.free.meta["simulated_seconds"]
    assert abs(counts.mean() - want) < 0.03 * want
    # Measured: 1.07 (with Bernoulli draws per step: 0.53).
    assert 0.8 < counts.var(ddof=1) / counts.mean() < 1.25


@needs_compiler
def test_compiled_loop_reads_the_clock_once_per_run(case):
    """Brian2 2.9 reads the process CPU clock (a system call) at every step of a compiled run;
    the generated loop must not (Brian2 2.10 does the same change itself)."""
    task, batch, init = case
    sub = get_substrate("brian2-spiking", target="cpp_standalone", whole_training=False)
    sub.run(batch, task.inputs, init[0], Schedule(free_steps=4, nudged_steps=2), targets=task.targets)
    text = (sub._net.directory / "network.cpp").read_text()
    loop = text[text.index("while(clock"):text.index("Network::_globally_running = false")]
    assert "elapsed_realtime =" not in loop
    assert "elapsed_realtime =" in text  # the run's total time is still measured


@needs_compiler
def test_compiled_spike_trains_follow_the_seed(case):
    """A compiled program is built once and takes its seed per run: the same seed and values give
    the same spike trains, another seed or other initial states other ones; seed None draws
    unseeded ones. The whole-training program too (a whole training is reproducible)."""
    task, batch, init = case
    sch = Schedule(free_steps=60, nudged_steps=30, stop_at_equilibrium=False)

    def states(seed, s0=init[0], **kw):
        sub = get_substrate("brian2-spiking", target="cpp_standalone", whole_training=False, seed=seed, **kw)
        return sub.run(batch, task.inputs, s0, sch, targets=task.targets).nudged.states

    a = states(3)
    np.testing.assert_array_equal(a, states(3))
    assert not np.array_equal(a, states(4))
    assert not np.array_equal(a, states(3, s0=init[1]))  # a training's epochs draw new spike trains
    assert not np.array_equal(states(None), states(None))
    cfg = TrainingConfig.preset("default").replace(epochs=2, free_steps=60, nudged_steps=30)
    plans = []
    for seed in (5, 5, 6):
        sub = get_substrate("brian2-spiking", target="cpp_standalone", seed=seed)
        assert sub.plan_training(batch, task.inputs, task.targets, cfg.schedule, cfg, init)
        plans.append(sub._plan["W"])
    np.testing.assert_array_equal(plans[0], plans[1])
    assert not np.array_equal(plans[0], plans[2])


def test_seed_code_goes_only_where_brian2s_main_starts(tmp_path):
    """The run-time seed is added after the one `brian_start();` of Brian2's main.cpp, once; a
    main.cpp without that line (an unknown Brian2 version) is left as it is."""
    from deepcircuit.substrates.brian2_build import SEED_ENV, seed_from_environment

    main = "int main()\n{\n\tbrian_start();\n\trun();\n}\n"
    (tmp_path / "objects.h").write_text("extern std::vector< RandomGenerator > _random_generators;\n")
    (tmp_path / "main.cpp").write_text(main)
    assert seed_from_environment(tmp_path) and seed_from_environment(tmp_path)
    text = (tmp_path / "main.cpp").read_text()
    assert text.count(f"std::getenv(\"{SEED_ENV}\")") == 1 and text.index(SEED_ENV) > text.index("brian_start();")
    assert text.index(SEED_ENV) < text.index("run();")
    (tmp_path / "main.cpp").write_text(main.replace("brian_start", "start"))
    assert not seed_from_environment(tmp_path)
    assert (tmp_path / "main.cpp").read_text() == main.replace("brian_start", "start")


@needs_compiler
@pytest.mark.parametrize("name", ["brian2-spiking", "brian2"])
def test_a_compiled_run_past_its_budget_is_stopped_with_one_clear_error(case, name):
    """`max_seconds`: a compiled program still running after its wall-time budget is killed and
    reported; the substrate then works again."""
    from deepcircuit.errors import SimulationError

    task, batch, init = case
    opts = {"whole_training": False} if name == "brian2-spiking" else {}
    sub = get_substrate(name, target="cpp_standalone", max_seconds=0.05, **opts)
    long = Schedule(free_steps=100_000, nudged_steps=0, stop_at_equilibrium=False)
    with pytest.raises(SimulationError, match=r"wall-time budget of max_seconds = 0.05 s"):
        sub.run(batch, task.inputs, init[0], long)
    with pytest.raises(ValueError, match="max_seconds"):
        get_substrate(name, max_seconds=0.0)
    # The killed program runs again (built above). With the budget raised: 0.05 s is less than a
    # process start and its file exchange take on a loaded machine.
    sub.max_seconds = 600.0
    short = Schedule(free_steps=60, nudged_steps=30, stop_at_equilibrium=False)
    assert sub.run(batch, task.inputs, init[0], short, targets=task.targets).nudged.states.shape[2] == 31
    sub.max_seconds = 0.05  # and the budget changed between runs is the one a run keeps
    with pytest.raises(SimulationError, match=r"wall-time budget of max_seconds = 0.05 s"):
        sub.run(batch, task.inputs, init[0], long)


@pytest.mark.parametrize("name, opts", [("brian2-spiking", {}), ("brian2", {}),
                                        ("brian2", {"driver": "network"})])
def test_a_runtime_run_past_its_budget_is_stopped_between_steps(case, name, opts):
    """`max_seconds` on Brian2's runtime (numpy) target: a run call still going after its budget
    stops between two steps with the same one-line error, within a fraction of a second of
    the budget, and the substrate works again."""
    import time

    from deepcircuit.errors import SimulationError

    task, batch, init = case
    sub = get_substrate(name, target="numpy", max_seconds=1.0, **opts)
    long = Schedule(free_steps=100_000, nudged_steps=0, stop_at_equilibrium=False)
    t0 = time.monotonic()
    with pytest.raises(SimulationError, match=r"^The Brian2 .*run \(target numpy\) ran past its "
                                              r"wall-time budget of max_seconds = 1 s"):
        sub.run(batch, task.inputs, init[0], long)
    assert time.monotonic() - t0 < 10.0  # 100 000 steps would take minutes
    # The stopped network runs again. With the budget raised: on a loaded machine 300 numpy steps of
    # the spiking network once took more than 1 s (CI-sized run, two test workers).
    sub.max_seconds = 600.0
    short = Schedule(free_steps=20, nudged_steps=10, stop_at_equilibrium=False)
    res = sub.run(batch, task.inputs, init[0], short, targets=task.targets)
    assert res.nudged.states.shape[2] == 11 and np.all(np.isfinite(res.nudged.states))


def _train_cli(tmp_path, *extra):
    """``deepcircuit train --task xor --substrate brian2-spiking ... --json`` in-process; the JSON line."""
    import json

    from deepcircuit.cli import main as cli_main

    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli_main(["train", "--task", "xor", "--substrate", "brian2-spiking", "--out", str(tmp_path),
                       "--quiet", "--json", *extra])
    assert rc == 0, buf.getvalue()
    return json.loads(buf.getvalue().strip().splitlines()[-1]), buf.getvalue()


def test_cli_spike_training_uses_the_validated_settings(tmp_path, monkeypatch):
    # What `train --help` and docs/brian2.md promise: on brian2-spiking, train defaults to 10 kHz,
    # 20 substeps, a 10-tau learning window, T1, T2 = 500, 300, the per-seed stop after 3 solved
    # epochs, a compiled target where there is a compiler; the user's options win; the networks
    # are re-evaluated on the ODE. Reduced budget: 1 seed, 1 epoch, the numpy target.
    import deepcircuit.substrates as substrates
    from deepcircuit.learning.model_file import load_model

    made = []
    real = substrates.get_substrate

    def spy(name, **options):
        made.append((name, options))
        return real(name, **options)

    monkeypatch.setattr(substrates, "get_substrate", spy)
    d, _ = _train_cli(tmp_path, "--epochs", "1", "--brian2-target", "numpy", "--stdp-window", "5")
    name, opts = next((n, o) for n, o in made if n == "brian2-spiking")
    assert opts == {"max_rate": 10000.0, "substeps": 20, "stdp_window": 5.0, "target": "numpy"}
    config = load_model(d["models"][0]).training_config()
    assert (config.free_steps, config.nudged_steps, config.stop_when_solved) == (500, 300, 3)
    assert set(d["ode_reevaluation"]) == {"solved", "error"} and len(d["ode_reevaluation"]["error"]) == 1


@pytest.mark.slow
@needs_compiler
def test_cli_spike_training_solves_xor_in_full(tmp_path):
    # The README's command as typed: >= 8 of 10 seeds solved as spikes (measured 10/10 and 9/10
    # in docs/brian2.md), and the same networks re-evaluated on the ODE.
    d, out = _train_cli(tmp_path, "--seeds", "10", "--epochs", "200")
    assert d["solved"] >= 8, out
    assert "the same networks on the ODE substrate" in out and d["ode_reevaluation"]["solved"] >= 7
