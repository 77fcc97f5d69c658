"""Fine-tuning from model files: ``train --init`` and ``train(init=...)`` (learning/fine_tune.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from deepcircuit import train
from deepcircuit.errors import InvalidInputError
from deepcircuit.learning.model_file import ModelFile, load_model, save_model
from deepcircuit.learning.config import TrainingConfig

DC = [sys.executable, "-m", "deepcircuit"]


def run(*args, cwd=None):
    return subprocess.run(DC + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


def _xor_model(tmp_path, seed=3, epochs=5, name="xor.json"):
    cfg = TrainingConfig(epochs=epochs, free_steps=100, nudged_steps=100)
    res = train("xor", seeds=[seed], config=cfg)
    m = ModelFile(res.networks[0], seed=seed, task="xor", substrate="ode", config=cfg.to_dict())
    return save_model(tmp_path / name, m), res


def test_init_continues_the_files_network_with_its_settings(tmp_path):
    path, first = _xor_model(tmp_path)
    # Fine-tune 0 epochs: the network is the file's, bit for bit; the settings are the file's.
    res = train(init=path, config=None)
    assert res.seeds == [3] and res.config.free_steps == 100 and res.config.epochs == 5
    again = train(init=path, config=res.config.replace(epochs=0))
    np.testing.assert_array_equal(again.networks[0].weights, load_model(path).network.weights)
    # Continuing 5 epochs from the file = 10 epochs from scratch? Not bit for bit (the state draws
    # restart), but the weights moved from the file's, not from a fresh draw.
    assert not np.array_equal(res.networks[0].weights, first.networks[0].weights)
    assert np.abs(res.initial_networks[0].weights - first.networks[0].weights).max() == 0


def test_init_from_several_files_and_seed_rules(tmp_path):
    a, _ = _xor_model(tmp_path, seed=1, name="a.json")
    b, _ = _xor_model(tmp_path, seed=2, name="b.json")
    res = train(init=[a, b], config=TrainingConfig(epochs=1, free_steps=50, nudged_steps=50))
    assert res.seeds == [1, 2]
    res = train(init=[a, b], seeds=[7, 8], config=TrainingConfig(epochs=1, free_steps=50, nudged_steps=50))
    assert res.seeds == [7, 8]
    with pytest.raises(InvalidInputError, match="one network per model file"):
        train(init=[a, b], seeds=3)
    with pytest.raises(InvalidInputError, match="share a seed"):
        train(init=[a, a])


def test_init_refuses_what_does_not_fit(tmp_path):
    path, _ = _xor_model(tmp_path)
    with pytest.raises(InvalidInputError, match=r"trained on 'xor'; --task iris is another data set"):
        train("iris", init=path)
    with pytest.raises(InvalidInputError, match="another family"):
        train(init=path, model="ep-sym")
    with pytest.raises(InvalidInputError, match=r"hidden layers \[5\]; --hidden 3"):
        train(init=path, hidden=3)
    with pytest.raises(InvalidInputError, match="topology 'complete'"):
        train(init=path, topology="layered")
    with pytest.raises(InvalidInputError, match="either init"):
        train(init=path, networks=[load_model(path).network])


def test_cli_init_fine_tunes_and_refuses_in_one_line(tmp_path):
    path, _ = _xor_model(tmp_path)
    p = run("train", "--init", str(path), "--epochs", "2", "--out", str(tmp_path / "ft"), "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout.splitlines()[-1])
    assert d["seeds"] == [3] and d["epochs"] == 2 and d["task"] == "xor"
    m = load_model(d["models"][0])
    assert m.config["free_steps"] == 100 and len(m.history["mse"]) == 2  # the file's settings, --epochs over them
    for args, says in [(("--task", "and"), "--task and is another data set"),
                       (("--model", "ep-asym"), "another family"),
                       (("--hidden", "4"), "--hidden 4 would be another network"),
                       (("--split-seed", "1"), "--split-seed would change them"),
                       (("--preset", "paper"), "--preset would replace"),
                       (("--seeds", "2"), "--seeds 2 does not match"),
                       (("--gamma", "1"), "--gamma")]:
        out = tmp_path / "bad"
        p = run("train", "--init", str(path), *args, "--epochs", "1", "--out", str(out), "--quiet")
        assert p.returncode == 2 and says in p.stderr, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and not out.exists()
    other = tmp_path / "and.json"
    save_model(other, ModelFile(train("and", hidden=4, config=TrainingConfig(epochs=0)).networks[0], seed=0, task="and"))
    p = run("train", "--init", str(path), str(other), "--epochs", "1", "--out", str(tmp_path / "bad2"))
    assert p.returncode == 2 and "must match" in p.stderr and not (tmp_path / "bad2").exists()


def test_a_model_trained_on_a_chip_records_the_chip(tmp_path):
    path, _ = _xor_model(tmp_path)
    p = run("train", "--init", str(path), "--substrate", "ode:mismatch=0.3;seed=7", "--epochs", "1",
            "--out", str(tmp_path / "chip"), "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    m = load_model(json.loads(p.stdout.splitlines()[-1])["models"][0])
    assert m.chip["mismatch"] == 0.3 and m.chip["seed"] == 7 and m.chip["transconductor"] == "vccs"
    assert load_model(path).chip is None  # the ideal ODE: no chip record
    d = json.loads(path.read_text())
    d["chip"] = [1, 2]
    (tmp_path / "bad.json").write_text(json.dumps(d))
    p = run("train", "--init", str(tmp_path / "bad.json"), "--epochs", "1", "--out", str(tmp_path / "x"))
    assert p.returncode == 2 and "chip" in p.stderr and "must be an object" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
