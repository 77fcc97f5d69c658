"""Issue 22: every TrainingConfig field from the command line: ``train --config FILE.toml``,
``--config-from MODEL.json`` and ``--print-config`` (whose output ``--config`` accepts)."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from deepcircuit import InvalidInputError, TrainingConfig
from deepcircuit.cli import main as cli_main
from deepcircuit.learning import config_file
from deepcircuit.learning.config_file import config_markdown, read_config, to_toml

REPO = Path(__file__).resolve().parents[1]


def printed(capsys, *argv) -> str:
    rc = cli_main(["train", *map(str, argv), "--print-config"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


def test_printed_settings_paste_back_to_the_same_run(tmp_path, capsys):
    first = printed(capsys, "--task", "iris", "--eta", "3", "--hidden", "7,2", "--batch-size", "8", "--freeze",
                    "input-output", "--validation-fraction", "0.25", "--early-stopping", "4")
    (tmp_path / "a.toml").write_text(first)
    assert printed(capsys, "--config", tmp_path / "a.toml") == first
    settings = read_config(tmp_path / "a.toml")
    training, command = config_file.split_settings(settings)
    assert set(training) == {f.name for f in dataclasses.fields(TrainingConfig)}  # every field printed
    cfg = TrainingConfig(**training)
    assert (cfg.eta, cfg.batch_size, cfg.freeze, cfg.early_stopping) == (3.0, 8, ("input-output",), 4)
    assert command["hidden"] == (7, 2) and command["task"] == "iris" and command["validation_fraction"] == 0.25


def test_options_given_override_the_file_even_at_their_default_value(tmp_path, capsys):
    (tmp_path / "c.toml").write_text('eta = 5\ntest_fraction = 0.3\nseeds = 4\nrule = "none"\nhidden = 9\n')
    out = tomllib.loads(printed(capsys, "--task", "moons", "--config", tmp_path / "c.toml", "--eta", "2",
                                "--test-fraction", "0.2"))
    assert out["eta"] == 2.0 and out["test_fraction"] == 0.2  # given: the command line wins
    assert out["seeds"] == 4 and out["rule"] == "none" and out["hidden"] == [9]  # not given: the file's
    # the record of the options given copes with options that append (--tune-grid)
    rc = cli_main(["train", "--task", "moons", "--tune-grid", "eta=1,2", "--tune-grid", "beta=1", "--print-config"])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    from deepcircuit.cli.train import add_parser
    import argparse

    parser = add_parser(argparse.ArgumentParser().add_subparsers())
    args = parser.parse_args(["--tune-grid", "eta=1,2", "--tune-grid", "beta=1", "--seeds", "1"])
    assert args.tune_grid == ["eta=1,2", "beta=1"] and {"tune_grid", "seeds"} <= args.explicit_options
    assert "seed" not in args.explicit_options and "epochs" not in args.explicit_options
    # a file that trains on a data file, with --task given: the task wins, the file's data options go
    (tmp_path / "d.toml").write_text('data = "elsewhere.csv"\ntarget = "species"\nepochs = 3\n')
    out = tomllib.loads(printed(capsys, "--task", "iris", "--config", tmp_path / "d.toml"))
    assert (out["task"], out["data"], out["target"], out["epochs"]) == ("iris", "none", "none", 3)


def test_a_trained_models_settings_are_reused(tmp_path, capsys):
    rc = cli_main(["train", "--task", "xor", "--epochs", "2", "--eta", "7", "--hidden", "3", "--free-steps", "50",
                   "--nudged-steps", "50", "--topology", "layered", "--out", str(tmp_path / "m"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    model = tmp_path / "m" / "seed0.json"
    out = tomllib.loads(printed(capsys, "--config-from", model))
    assert (out["eta"], out["hidden"], out["topology"], out["free_steps"], out["epochs"]) == (7.0, [3], "layered", 50, 2)
    assert out["task"] == "xor"
    out = tomllib.loads(printed(capsys, "--config-from", model, "--hidden", "4", "--task", "and"))
    assert out["hidden"] == [4] and out["eta"] == 7.0 and out["task"] == "and"
    # a model trained on a data file names it (and its label column)
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,kind\n" + "".join(f"{i % 5},{(2 * i) % 7},{'p' if i % 2 else 'q'}\n" for i in range(20)))
    rc = cli_main(["train", "--data", str(csv), "--target", "kind", "--epochs", "0", "--hidden", "2",
                   "--out", str(tmp_path / "f"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    out = tomllib.loads(printed(capsys, "--config-from", tmp_path / "f" / "seed0.json"))
    assert (out["data"], out["target"], out["task"], out["hidden"]) == (str(csv), "kind", "none", [2])


def test_toml_writer_round_trips_every_kind_of_value(tmp_path):
    values = {"eta": 1e-300, "beta": 12.5, "max_weight": math.inf, "epochs": 3, "sign": True, "rule": None,
              "freeze": ("input-hidden", "hidden-output"), "hidden": (5, 3),
              "data": 'we"ird\\pa\tth\n\x7fé😀.csv', "init_mean_free": -0.0, "eval_free_steps": None}
    (tmp_path / "v.toml").write_text(to_toml(values, comment="two\nlines"))
    back = read_config(tmp_path / "v.toml")
    assert back == values and math.copysign(1, back["init_mean_free"]) == -1


@pytest.mark.parametrize("text, message", [
    ("etaa = 3\n", "unknown key 'etaa'; did you mean 'eta', 'beta'"),
    ("batch_sise = 3\n", "unknown key 'batch_sise'; did you mean 'batch_size'"),
    ('eta = "fast"\n', "key 'eta' must be a number; got 'fast' (str)"),
    ("epochs = 2.5\n", "key 'epochs' must be an integer; got 2.5 (float)"),
    ('batch_size = "all"\n', "key 'batch_size' must be an integer or \"none\"; got 'all' (str)"),
    ("sign = 1\n", "key 'sign' must be true or false; got 1 (int)"),
    ("hidden = [5, true]\n", "key 'hidden' must be a list of integers"),
    ("[training]\neta = 3\n", "unknown key 'training'"),
    ("eta = \n", "not valid TOML"),
    ('task = "xor"\ndata = "d.csv"\n', "give either 'task' or 'data', not both"),
    ("eta = -1\n", "The 'eta' parameter must be"),
])
def test_bad_config_files_are_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    rc = cli_main(["train", "--config", str(path), "--out", str(tmp_path / "o"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o").exists()


def test_bad_config_through_the_command_line_process(tmp_path):
    (tmp_path / "bad.toml").write_text("free_step = 10\n")
    r = subprocess.run([sys.executable, "-m", "deepcircuit", "train", "--config", str(tmp_path / "bad.toml")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "unknown key 'free_step'; did you mean 'free_steps'" in r.stderr
    r = subprocess.run([sys.executable, "-m", "deepcircuit", "train", "--config-from", str(tmp_path / "bad.toml")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


def test_docs_config_md_lists_every_field_and_is_current():
    doc = (REPO / "docs" / "config.md").read_text()
    for f in dataclasses.fields(TrainingConfig):
        assert f"| `{f.name}` |" in doc, f.name
    for key in config_file.COMMAND_KEYS:
        assert f"| `{key}` |" in doc, key
    assert doc == config_markdown(), \
        "docs/config.md is out of date: python -m deepcircuit.learning.config_file > docs/config.md"
    for name, (_, text) in config_file._field_docs().items():
        assert text, f"TrainingConfig's docstring does not describe {name!r}"


def test_unknown_keys_in_python_too():
    with pytest.raises(InvalidInputError, match="unknown key 'eat'; did you mean 'eta'"):
        config_file.check_settings({"eat": 1}, "settings")
