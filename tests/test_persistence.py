"""Model files: exact round trips, atomic writes, clear errors for bad files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from deepcircuit import ModelFileError, Network, Roles, TrainingConfig, train
from deepcircuit.learning.model_file import ModelFile, load_model, save_model
from deepcircuit.atomic_files import write_atomic


@pytest.fixture
def trained():
    cfg = TrainingConfig.preset("paper").replace(epochs=5, free_steps=50, nudged_steps=50, prune="magnitude",
                                                 prune_tol=0.02)
    return train("xor", seeds=[3], config=cfg)


def test_round_trip_is_exact(tmp_path, trained):
    net = trained.networks[0]
    model = ModelFile(net, seed=3, task="xor", substrate="ode", config=trained.config.to_dict(),
                      history=trained.histories[0].to_dict(), metrics={"train_error": 0.25})
    path = save_model(tmp_path / "m.json", model)
    back = load_model(path)
    assert np.array_equal(back.network.weights, net.weights)
    assert np.array_equal(back.network.mask, net.mask)
    assert np.array_equal(back.network.topology_mask, net.topology_mask)
    assert back.network.roles == net.roles and back.network.family == "deep"
    assert back.seed == 3 and back.task == "xor" and back.metrics == {"train_error": 0.25}
    assert back.history["mse"] == trained.histories[0].mse
    assert back.training_config() == trained.config


@pytest.mark.parametrize("family,params", [("deep-leaky", {"gamma": 0.25}), ("ep-asym", {}), ("ep-sym", {})])
def test_round_trip_keeps_family_params_and_bias(tmp_path, family, params):
    net = Network.create(Roles(3, (2, 2), 1), family=family, topology="layered", params=params, rng=4)
    b = np.linspace(-0.3, 0.3, net.n_neurons) if net.family_.has_bias_vector else None
    net = net.with_weights(net.weights, b)
    back = load_model(save_model(tmp_path / "n.json", net)).network
    assert back.family == family and dict(back.params) == dict(net.params)
    assert np.array_equal(back.bias, net.bias) and back.topology == "layered"


def test_write_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "keep.json"
    write_atomic(path, "old contents")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new contents")
    assert path.read_text() == "old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"], "temporary file left behind"


def test_bad_files_get_clear_errors(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.json")
    (tmp_path / "trunc.json").write_text('{"format": "deepcircuit-model", "vers')
    with pytest.raises(ModelFileError, match="not valid JSON.*truncated or corrupt"):
        load_model(tmp_path / "trunc.json")
    (tmp_path / "foreign.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ModelFileError, match="not a deepcircuit model file"):
        load_model(tmp_path / "foreign.json")
    (tmp_path / "new.json").write_text(json.dumps({"format": "deepcircuit-model", "version": 99}))
    with pytest.raises(ModelFileError, match="version 99.*reads version 1"):
        load_model(tmp_path / "new.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ModelFileError, match="Cannot read|not valid JSON"):
        load_model(tmp_path / "bin.json")


def test_damaged_network_is_refused(tmp_path):
    path = save_model(tmp_path / "m.json", Network.create(Roles(3, (2,), 1), rng=0))
    d = json.loads(path.read_text())
    d["network"]["weights"][3][0] = 0.7  # into an input: forbidden
    path.write_text(json.dumps(d))
    with pytest.raises(ModelFileError, match="damaged.*not live"):
        load_model(path)
