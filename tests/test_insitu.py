"""The in-situ study (deepcircuit.studies.insitu, insitu_chip) at toy sizes: a small digits
network, a few test presentations, chips on the non-ideal ODE."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import deepcircuit as dc
from deepcircuit.errors import InvalidInputError
from deepcircuit.studies import insitu, insitu_chip


@pytest.fixture(scope="module")
def tiny_model():
    ds = dc.load_dataset("digits")
    small = replace(ds, train=ds.train.subset(slice(0, 256)))
    res = dc.train(small, hidden=8, seeds=[0], config=dc.TrainingConfig.for_task(ds).replace(epochs=2))
    return insitu.model_of(res)


def test_wilson_interval_contains_the_estimate():
    for k, n in ((0, 10), (3, 10), (10, 10), (57, 60)):
        lo, hi = insitu.wilson_interval(k, n)
        assert 0.0 <= lo <= k / n <= hi <= 1.0
        assert hi - lo > 0
    lo, hi = insitu.wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    with pytest.raises(InvalidInputError):
        insitu.wilson_interval(11, 10)


def test_plan_refuses_bad_values():
    with pytest.raises(InvalidInputError, match="transconductor"):
        insitu.InSituPlan(transconductors=("bjt",))
    with pytest.raises(InvalidInputError, match="chips"):
        insitu.InSituPlan(chips=0)


def test_ideal_chip_deploys_exactly_as_the_ideal_model(tiny_model):
    plan = insitu.InSituPlan(mismatches=(0.0,), transconductors=("vccs",), chips=2, finetune_epochs=(),
                             test_samples=40)
    rows = insitu.run_cell(tiny_model, plan, 0.0, "vccs", arms=("ideal", "deployed"))
    ideal = {r["chip"]: r for r in rows if r["arm"] == "ideal"}
    deployed = {r["chip"]: r for r in rows if r["arm"] == "deployed"}
    assert set(ideal) == set(deployed) == {0, 1}
    for c in ideal:
        assert deployed[c]["correct"] == ideal[c]["correct"]
        assert deployed[c]["n"] == 40
        assert deployed[c]["ci_low"] <= deployed[c]["accuracy"] <= deployed[c]["ci_high"]
    # A mismatched chip is another circuit: its realised weights differ from the programmed ones.
    chip = insitu.chip_substrate(plan, 0.3, "vccs").chip
    net = tiny_model.network
    W = chip.effective_weights(net.weights[None], net.mask[None])
    assert not np.allclose(W[0], net.weights)


def test_study_rows_resume_and_plot(tiny_model, tmp_path, monkeypatch):
    plan = insitu.InSituPlan(mismatches=(0.0, 0.3), transconductors=("vccs",), chips=2, finetune_epochs=(1, 2),
                             scratch_epochs=1, scratch_chips=1, train_samples=64, test_samples=30)
    out = tmp_path / "study.csv"
    df = insitu.run_study(tiny_model, plan, out=out)
    assert out.exists() and out.with_suffix(".parquet").exists()
    assert set(df["arm"]) == {"ideal", "deployed", "finetune", "scratch"}
    ft = df[df["arm"] == "finetune"]
    assert sorted(set(ft["epochs"])) == [1, 2] and len(ft) == 2 * 2 * 2
    assert (ft["train_presentations"] == 64 * ft["epochs"]).all()
    assert len(df[df["arm"] == "scratch"]) == 2  # one chip per mismatch
    assert ((df["ci_low"] <= df["accuracy"]) & (df["accuracy"] <= df["ci_high"])).all()
    assert (df["correct"] == np.round(df["accuracy"] * df["n"])).all()
    # The rule moved the weights on the chip: one epoch is not the deployed model.
    assert (ft["train_presentations"] > 0).all()
    table = insitu.arm_table(df)
    assert set(table["chips"]) <= {1, 2}
    fig = insitu.plot_accuracy(df, tmp_path / "acc.png")
    assert (tmp_path / "acc.png").stat().st_size > 0 and fig is not None

    def fail(*a, **k):
        raise AssertionError("a cell already in the table was run again")

    monkeypatch.setattr(insitu, "run_cell", fail)
    again = insitu.run_study(tiny_model, plan, out=out)
    assert len(again) == len(df)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), pd.read_csv(out))


def test_pruning_levels_and_agreement(tiny_model):
    net = tiny_model.network
    before = insitu_chip.prunable(net).sum()
    half = insitu_chip.prune_to_sparsity(net, 0.5)
    assert insitu_chip.sparsity_of(half) == pytest.approx(0.5, abs=0.02)
    assert insitu_chip.prunable(half).sum() == pytest.approx(before / 2, abs=2)
    # the fixed leaks into the sink are never pruned
    from deepcircuit.model.topology import sink_index

    k = sink_index(net.roles)
    assert (half.mask[:, k] == net.mask[:, k]).all()
    assert insitu_chip.prune_to_sparsity(net, 0.0) is net
    # the weakest go first: every removed weight is at most every kept one
    removed = insitu_chip.prunable(net) & ~half.mask
    assert np.abs(net.weights[removed]).max() <= np.abs(half.weights[insitu_chip.prunable(half)]).min()
    # the same chip on the same solver agrees with itself exactly; a mismatched one does not
    plan = insitu.InSituPlan(test_samples=5)
    ds = insitu.study_dataset(tiny_model, plan)
    cfg = tiny_model.training_config()
    a = insitu.chip_substrate(plan, 0.3, "vccs")
    same = insitu_chip.state_agreement([net], ds.test.inputs, a, insitu.chip_substrate(plan, 0.3, "vccs"),
                                       cfg.eval_schedule, chips=[0])
    assert same["max_state_deviation"] == [0.0]
    other = insitu_chip.state_agreement([net], ds.test.inputs, a, insitu.ideal_substrate(plan),
                                        cfg.eval_schedule, chips=[0])
    assert other["max_state_deviation"][0] > 1e-6
    rows = insitu_chip.pruning_sweep(net, ds, cfg, levels=(0.0, 0.5), accuracy_substrate=a)
    assert [r["synapses"] for r in rows] == [before, insitu_chip.prunable(half).sum()]
    assert rows[1]["abs_weight_sum"] < rows[0]["abs_weight_sum"]
    assert rows[0]["energy_per_inference_J"] is None  # no circuit, no supply


@pytest.mark.spice
def test_spice_chip_is_the_ode_chip(tiny_model):
    """On ngspice: the deployed arm agrees with the non-ideal ODE's on the same chip, and a
    fine-tune trained on the chip's ODE twin is scored on ngspice (rows say where it trained)."""
    pytest.importorskip("PySpice")
    plan = insitu.InSituPlan(mismatches=(0.3,), transconductors=("vccs",), chips=1, finetune_epochs=(1,),
                             train_samples=64, test_samples=4, solver="spice",
                             substrate_options={"clamp": "limiter"}, train_solver="ode")
    rows = insitu.run_cell(tiny_model, plan, 0.3, "vccs", arms=("deployed", "finetune"))
    by_arm = {r["arm"]: r for r in rows}
    assert by_arm["deployed"]["solver"] == "spice" and by_arm["deployed"]["trained_on"] == ""
    assert by_arm["finetune"]["trained_on"] == "ode" and by_arm["finetune"]["train_presentations"] == 64
    ode_rows = insitu.run_cell(tiny_model, replace(plan, solver="ode", substrate_options={}, train_solver=None),
                               0.3, "vccs", arms=("deployed",))
    assert abs(ode_rows[0]["correct"] - by_arm["deployed"]["correct"]) <= 1


def test_ota_options_reach_only_the_ota_cells():
    plan = insitu.InSituPlan(ota_options={"ota_linear_range": 1.5, "ota_gain": 50.0})
    ota = insitu.chip_substrate(plan, 0.1, "ota").chip.transconductor
    assert (ota.kind, ota.linear_range, ota.gain, ota.seed) == ("ota", 1.5, 50.0, plan.chip_seed)
    assert insitu.chip_substrate(plan, 0.1, "vccs").chip.transconductor.kind == "vccs"  # not refused
