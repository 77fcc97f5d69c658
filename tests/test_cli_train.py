"""`deepcircuit train` run for real as a user would, through the console script."""

from __future__ import annotations

import json
import subprocess
import sys

from deepcircuit.learning.model_file import load_model

DC = [sys.executable, "-m", "deepcircuit"]


def run(*args, cwd=None):
    return subprocess.run(DC + list(args), capture_output=True, text=True, cwd=cwd, timeout=300)


def test_train_json_on_a_small_study(tmp_path):
    out = tmp_path / "xor"
    p = run("train", "--task", "xor", "--model", "deep", "--topology", "complete", "--hidden", "5",
            "--epochs", "20", "--seeds", "3", "--seed", "7", "--preset", "paper", "--free-steps", "200",
            "--nudged-steps", "200", "--prune", "stochastic", "--l1", "1.5e-4", "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    last = p.stdout.strip().splitlines()[-1]
    d = json.loads(last)
    assert d["task"] == "xor" and d["model"] == "deep" and d["seeds"] == [7, 8, 9]
    for key in ("train_error", "mse", "sparsity", "models"):
        assert len(d[key]) == 3
    assert 0 <= d["solved"] <= 3 and d["seconds"] > 0
    assert d["solved"] == sum(e == 0 for e in d["train_error"])
    assert "seed" in p.stdout and "0 % training error" in p.stdout  # the readable summary
    for k, path in enumerate(d["models"]):
        m = load_model(path)
        assert m.seed == 7 + k and m.task == "xor" and len(m.history["mse"]) == 20
        assert abs(m.network.sparsity - d["sparsity"][k]) < 1e-12
        assert m.metrics["train_error"] == d["train_error"][k]
    assert sorted(x.name for x in out.iterdir()) == ["seed7.json", "seed8.json", "seed9.json"]


def test_train_with_a_user_graph_file(tmp_path):
    edges = tmp_path / "g.txt"
    edges.write_text("# x0, x1, bias feed h0, h1; hidden <-> output\nx0 h0\nx1 h1\nbias h0\nbias h1\n"
                     "h0 y0\nh1 y0\ny0 h0\n")
    p = run("train", "--task", "and", "--hidden", "2", "--topology", str(edges), "--epochs", "3",
            "--free-steps", "50", "--nudged-steps", "50", "--out", str(tmp_path / "g"), "--json", "--quiet")
    assert p.returncode == 0, p.stderr
    m = load_model(json.loads(p.stdout.splitlines()[-1])["models"][0])
    assert m.network.topology_mask.sum() == 7


def test_bad_input_gives_one_clear_line(tmp_path):
    p = run("train", "--task", "xnor")
    assert p.returncode == 2 and "Unknown task 'xnor'" in p.stderr and "digits" in p.stderr
    p = run("train", "--topology", str(tmp_path / "nope.txt"), "--out", str(tmp_path))
    assert p.returncode == 2 and "error: --topology must be one of 'complete', 'layered', 'complete+sink', 'layered+sink' or an existing" in p.stderr
    assert "Traceback" not in p.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("h0 x0\n")
    p = run("train", "--topology", str(bad), "--out", str(tmp_path))
    assert p.returncode == 2 and "h0 -> x0" in p.stderr and "forbidden" in p.stderr
    assert "Traceback" not in p.stderr
    p = run("train", "--epochs", "-3", "--out", str(tmp_path))
    assert p.returncode == 2 and "'epochs' parameter must be an integer in [0, inf]" in p.stderr
    # 0 means no per-seed stop (brian2-spiking's default of 3 turned off); below 0 is refused.
    p = run("train", "--stop-when-solved", "-1", "--out", str(tmp_path))
    assert p.returncode == 2 and "'--stop-when-solved' parameter must be an integer in [0, inf]" in p.stderr


def test_help_documents_every_flag():
    p = run("train", "--help")
    assert p.returncode == 0
    for flag in ("--task", "--model", "--topology", "--hidden", "--epochs", "--seeds", "--seed", "--out",
                 "--preset", "--prune", "--l1", "--json", "--substrate", "--stop-when-solved",
                 "--spike-rate", "--spike-substeps", "--stdp-window"):
        assert flag in p.stdout


def test_unwritable_output_folder_fails_before_training(tmp_path):
    p = run("train", "--out", "/dev/null/models", "--epochs", "200")
    assert p.returncode == 2 and "cannot access '/dev/null/models'" in p.stderr
    assert "Traceback" not in p.stderr and "seed" not in p.stdout


def test_repeated_warnings_are_printed_once_with_a_count(capsys):
    # A comparison trains on every substrate, and each final evaluation may raise the same
    # "not settled" warning: the user sees it once, with how many times it came.
    import warnings

    from deepcircuit.cli.output import print_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for text in ["not settled after 50 tau", "other", "not settled after 50 tau", "not  settled after 50 tau"]:
            warnings.warn(text)
    print_warnings(caught)
    assert capsys.readouterr().err.splitlines() == ["warning: not settled after 50 tau (3 times)", "warning: other"]
