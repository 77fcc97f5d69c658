"""The training loop: presets, histories, seeds, divergence, bad input."""

from __future__ import annotations


import numpy as np
import pytest

from deepcircuit import (DivergenceError, DivergenceWarning, InvalidInputError, TrainingConfig, evaluate,
                         train)

FAST = TrainingConfig.preset("paper").replace(epochs=8, free_steps=150, nudged_steps=150)


def test_paper_preset_is_the_reference():
    p = TrainingConfig.preset("paper")
    assert (p.dt, p.free_steps, p.nudged_steps, p.beta, p.eta, p.beta0, p.beta1) == (0.05, 1000, 1000, 10, 100, 0, 1)
    assert p.prune is None and p.l1 == 0 and not p.sign and not p.stop_at_equilibrium
    assert TrainingConfig.preset("paper", model="ep-asym").eta == 1.0


def test_history_has_one_entry_per_epoch():
    r = train("xor", seeds=[0, 1], config=FAST)
    for h in r.histories:
        assert len(h) == 8
        assert all(0 <= e <= 1 for e in h.error) and all(m >= 0 for m in h.mse)
        assert all(u > 0 for u in h.update_norm)
        assert all(0 <= f <= 1 for f in h.free_settled + h.nudged_settled)
    assert r.train_error.shape == (2,) and r.mse.shape == (2,)
    assert r.solved == int(np.sum(r.train_error == 0))


def test_a_seed_gives_the_same_network_alone_or_in_a_batch():
    alone = train("xor", seeds=[5], config=FAST)
    batch = train("xor", seeds=[4, 5, 6], config=FAST)
    assert np.array_equal(alone.networks[0].weights, batch.networks[1].weights)
    assert alone.train_error[0] == batch.train_error[1]


@pytest.mark.parametrize("model", ["deep-leaky", "ep-asym", "ep-sym"])
def test_every_family_trains(model):
    r = train("and", model=model, seeds=[0], config=TrainingConfig.preset("paper", model=model).replace(
        epochs=10, free_steps=200, nudged_steps=200))
    assert np.isfinite(r.mse).all() and len(r.histories[0]) == 10
    assert not np.array_equal(r.networks[0].weights, r.initial_networks[0].weights)


def test_learning_reduces_the_error_on_and():
    cfg = TrainingConfig.preset("paper").replace(epochs=60, free_steps=300, nudged_steps=300)
    r = train("and", seeds=[0, 1, 2], config=cfg)
    first = np.mean([h.mse[0] for h in r.histories])
    assert r.mse.mean() < 0.5 * first


def test_divergence_is_detected_and_reported():
    cfg = FAST.replace(eta=1e9, max_weight=1e3)
    with pytest.warns(DivergenceWarning, match="seed 0: weights diverged in the update of epoch 0"):
        r = train("xor", seeds=[0], config=cfg)
    assert r.diverged[0].startswith("weights diverged") and r.solved == 0
    assert np.isfinite(r.networks[0].weights).all()
    with pytest.raises(DivergenceError, match="max \\|W\\| = .* limit 1000") as info:
        train("xor", seeds=[0], config=cfg, on_divergence="raise")
    assert info.value.phase == "update" and info.value.epoch == 0 and info.value.magnitude > 1e3


def test_bad_input_is_refused():
    with pytest.raises(InvalidInputError, match="Unknown task 'xnor'"):
        train("xnor")
    with pytest.raises(InvalidInputError, match="Unknown model family 'dep'"):
        train("xor", model="dep")
    with pytest.raises(InvalidInputError, match="Unknown training setting.*'etta'"):
        FAST.replace(etta=1)
    with pytest.raises(InvalidInputError, match="'prune' parameter must be one of 'stochastic', 'magnitude'"):
        FAST.replace(prune="random")
    with pytest.raises(InvalidInputError, match="'dt' parameter must be in \\(0.0, inf\\]"):
        FAST.replace(dt=0)
    with pytest.raises(InvalidInputError, match="'hidden' parameter must be layer sizes"):
        train("xor", hidden="five", config=FAST)
    with pytest.raises(InvalidInputError, match="'preset' parameter must be one of"):
        TrainingConfig.preset("fast")
    with pytest.raises(InvalidInputError, match="Task 'not' has 2 inputs .* network has 3"):
        evaluate(train("xor", seeds=[0], config=FAST.replace(epochs=1)).networks[0], "not")


@pytest.mark.filterwarnings("ignore::deepcircuit.errors.NotSettledWarning")
def test_stop_when_solved_keeps_the_weights_a_seed_solved_with():
    """A seed stops updating after `stop_when_solved` epochs in a row at 0 train error, decided
    from the training's own free phases; it keeps the weights of its last zero-error epoch, and
    a seed that is not stopped trains on as without the option."""
    cfg = TrainingConfig.preset("default").replace(epochs=60, free_steps=500, nudged_steps=300)
    plain = train("xor", seeds=[0, 1], config=cfg)
    stop = train("xor", seeds=[0, 1], config=cfg.replace(stop_when_solved=2))
    for k in range(2):
        err, norm = plain.histories[k].error, stop.histories[k].update_norm
        first = next(e for e in range(1, 60) if err[e - 1] == 0 and err[e] == 0)  # second zero in a row
        assert all(u > 0 for u in norm[:first]) and all(u == 0 for u in norm[first:])
        # Until the stop the run is the plain one; the stopped weights are those measured at 0 error.
        assert stop.histories[k].error[:first + 1] == err[:first + 1]
        assert all(e == 0 for e in stop.histories[k].error[first:])
        assert stop.train_error[k] == 0
        assert not np.array_equal(stop.networks[k].weights, plain.networks[k].weights)
    with pytest.raises(InvalidInputError, match="stop_when_solved"):
        TrainingConfig(stop_when_solved=0)


def test_eta_noise_needs_repeated_measurements():
    with pytest.raises(InvalidInputError, match="repeats >= 2"):
        train("xor", seeds=[0], config=FAST.replace(epochs=1, eta_noise=True))


def test_an_epoch_observer_leaves_the_whole_training_plan_on():
    # `deepcircuit train` notes the epoch under way for Ctrl-C with a callback; that callback reads
    # only the epoch number, so it must not cost Brian2 the whole training as one compiled program
    # (it did: 201 program runs instead of 1 for a 200-epoch XOR training). A callback that may
    # read trajectories still turns the plan off.
    from deepcircuit.learning.steps import epoch_observer
    from deepcircuit.substrates.ode import OdeSubstrate

    class Planned(OdeSubstrate):
        plans = 0

        def plan_training(self, *args):
            Planned.plans += 1

    seen = []
    train("xor", seeds=[0], config=TrainingConfig.preset("default").replace(epochs=2), substrate=Planned(),
          callbacks=[epoch_observer(lambda epoch, batch, result: seen.append(epoch))])
    assert Planned.plans == 1 and seen == [0, 1]
    train("xor", seeds=[0], config=TrainingConfig.preset("default").replace(epochs=2), substrate=Planned(),
          callbacks=[lambda epoch, batch, result: None])
    assert Planned.plans == 1
