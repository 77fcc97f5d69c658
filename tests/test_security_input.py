"""Issue 10 (hostile input), sections 2 (temp files), 3 (sizes), 5 (one-line errors) and 6
(accepted silently): one regression test per item, named after it.

The CLI runs in-process (``deepcircuit.cli.main``) for speed; the promise checked each time is
exit status 2, exactly one line on stderr that says what was wrong, no traceback, no file left.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from deepcircuit import LimitExceededError, ModelFileError, Network, Roles, Schedule, get_task, limits
from deepcircuit.cli import main as cli_main
from deepcircuit.atomic_files import TMP_MARKER, atomic_output, write_atomic
from deepcircuit.learning.model_file import load_model, save_model
from deepcircuit.substrates import get_substrate
from deepcircuit.substrates.ode import OdeSubstrate

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "netlists" / "models" / "xor_trained.json"


def fails(capsys, *argv: str, match: str | list[str]) -> str:
    """Run the CLI; check exit 2 and one stderr line containing every ``match``; return it."""
    rc = cli_main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, f"exit {rc}, stderr {err!r}"
    assert len(lines) == 1, f"want one error line, got {lines}"
    for m in [match] if isinstance(match, str) else match:
        assert m in lines[0], f"{m!r} not in {lines[0]!r}"
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def model_dict():
    return json.loads(MODEL.read_text())


def write_model(tmp_path, d, name="m.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(d) if not isinstance(d, str) else d)
    return p


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written by mistake lands here, and is checked


# --- section 3: sizes are checked before anything is allocated --------------------------------
def test_huge_hidden_names_the_limit(capsys, tmp_path):
    fails(capsys, "train", "--hidden", "100000000", "--out", tmp_path / "o", match="MAX_NEURONS")
    fails(capsys, "train", "--hidden", ",".join(["1"] * 300), "--out", tmp_path / "o", match="MAX_LAYERS")
    assert not (tmp_path / "o").exists()


def test_huge_free_steps_in_model_file(capsys, tmp_path, model_dict):
    model_dict["config"]["free_steps"] = 10 ** 15
    m = write_model(tmp_path, model_dict)
    fails(capsys, "lyapunov", m, match=["config.free_steps", "MAX_PHASE_STEPS"])
    fails(capsys, "export", m, "--out", tmp_path / "x.cir", match="MAX_PHASE_STEPS")


def test_huge_steps_and_epochs_on_the_cli(capsys, tmp_path):
    fails(capsys, "train", "--free-steps", 10 ** 11, "--out", tmp_path / "o", match="MAX_PHASE_STEPS")
    fails(capsys, "train", "--nudged-steps", 10 ** 11, "--out", tmp_path / "o", match="MAX_PHASE_STEPS")
    fails(capsys, "train", "--epochs", 10 ** 11, "--out", tmp_path / "o", match="MAX_EPOCHS")
    fails(capsys, "compare", MODEL, "--train-epochs", 10 ** 11, match="MAX_EPOCHS")
    fails(capsys, "export", MODEL, "--free-steps", 10 ** 11, "--out", tmp_path / "x.cir", match="MAX_PHASE_STEPS")


def test_huge_epochs_in_model_file(capsys, tmp_path, model_dict):
    model_dict["config"]["epochs"] = 10 ** 12
    fails(capsys, "lyapunov", write_model(tmp_path, model_dict), match=["config.epochs", "MAX_EPOCHS"])


def test_total_state_size_is_checked_before_allocating(capsys, tmp_path):
    line = fails(capsys, "train", "--seeds", 1000, "--free-steps", 1_000_000, "--out", tmp_path / "o",
                 match="MAX_STATE_BYTES")
    assert "1000 network(s) x (4 presentation(s) x 1000001 steps" in line
    # The Python API too: the substrate refuses before np.empty, whatever the caller.
    net = Network.create(Roles(3, (200,), 1), rng=0)
    task = get_task("xor")
    s0 = np.zeros((1, 4, net.n_neurons))
    with pytest.raises(LimitExceededError, match="MAX_STATE_BYTES"):
        OdeSubstrate().run(net, task.inputs, s0, Schedule(free_steps=5_000_000, nudged_steps=0))


def test_deep_json_nesting_200000(capsys, tmp_path):
    m = write_model(tmp_path, "[" * 200_000 + "]" * 200_000)
    fails(capsys, "lyapunov", m, match=["200000 deep", "MAX_JSON_DEPTH"])
    m = write_model(tmp_path, '{"format": "deepcircuit-model", "version": 1, "x": ' + '{"a":' * 100 + "1" + "}" * 101)
    fails(capsys, "export", m, "--out", tmp_path / "x.cir", match="MAX_JSON_DEPTH")
    # Brackets inside strings do not count.
    with pytest.raises(ModelFileError, match="'network' is missing"):
        load_model(write_model(tmp_path, json.dumps({"format": "deepcircuit-model", "version": 1,
                                                     "task": "[" * 100})))


@pytest.mark.parametrize("digits", [401, 5001])
def test_huge_integer_in_model_file(capsys, tmp_path, digits):
    text = MODEL.read_text().replace('"seed": 6', '"seed": 1' + "0" * (digits - 1))
    fails(capsys, "compare", write_model(tmp_path, text), "--substrates", "ode",
          match=[f"{digits} digits", "MAX_INT_DIGITS"])
    text = MODEL.read_text().replace('"n_outputs": 1', '"n_outputs": 1' + "0" * 400)
    fails(capsys, "lyapunov", write_model(tmp_path, text), match="MAX_INT_DIGITS")


def test_model_file_size_cap(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_MODEL_FILE_BYTES", 1000)
    fails(capsys, "lyapunov", MODEL, match="MAX_MODEL_FILE_BYTES")
    fails(capsys, "lyapunov", "/dev/zero", match="not a regular file")
    fails(capsys, "lyapunov", tmp_path, match="not a regular file")


# --- section 5: one line instead of a traceback --------------------------------------------------
@pytest.mark.parametrize("beta", ["0", "1e-320", "5e-324"])
def test_beta_zero_and_tiny_on_export(capsys, tmp_path, beta):
    fails(capsys, "export", MODEL, "--out", tmp_path / "x.cir", "--beta", beta, match="beta")
    assert not (tmp_path / "x.cir").exists()


def test_tiny_beta_and_gamma_on_train_spice(capsys, tmp_path):
    fails(capsys, "train", "--substrate", "spice", "--beta", "1e-320", "--out", tmp_path / "o", match="--beta")
    fails(capsys, "train", "--substrate", "spice", "--model", "deep-leaky", "--gamma", "1e-320",
          "--out", tmp_path / "o", match="--gamma")
    assert not (tmp_path / "o").exists()


def test_beta_zero_compiles_to_no_nudge_elements():
    # train --substrate spice --beta 0 used to divide by zero: beta = 0 is an open nudge switch.
    from deepcircuit.substrates.circuit import standalone_netlist

    net = Network.create(Roles(3, (2,), 1), rng=0)
    text = standalone_netlist(net, "xor", schedule=Schedule(free_steps=5, nudged_steps=5, beta=0.0)).text
    assert "R_nudge" not in text and "SWNUDGE" not in text and ".tran" in text


@pytest.mark.spice
@pytest.mark.skipif(shutil.which("ngspice") is None, reason="needs ngspice")
def test_beta_zero_on_train_spice_runs(capsys, tmp_path):
    rc = cli_main(["train", "--substrate", "spice", "--beta", "0", "--epochs", "1", "--free-steps", "20",
                   "--nudged-steps", "10", "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "o" / "seed0.json").exists()


def test_lyapunov_seed_negative(capsys):
    fails(capsys, "lyapunov", MODEL, "--seed", "-1", match=["--seed", "-1"])


@pytest.mark.parametrize("seed,match", [("x", "seed: must be an integer"), (-4, "seed: must be an integer >= 0"),
                                        (1.5, "seed: must be an integer"), (True, "seed: must be an integer")])
def test_model_seed_string_or_negative_on_compare(capsys, tmp_path, model_dict, seed, match):
    model_dict["seed"] = seed
    fails(capsys, "compare", write_model(tmp_path, model_dict), "--substrates", "ode", match=match)


@pytest.mark.parametrize("spec,match", [
    ("spice:bogus=1", ["unknown option(s) 'bogus'", "clamp, reltol"]),
    ("spice:units=3", "units= takes an object"),
    ("ode:rtol=abc", "rtol= must be a number; got 'abc'"),
    ("spice:clamp=bogus", "'diode', 'limiter'"),
    ("spice:clamp", "key=value"),
    ("nosuch", "Unknown substrate 'nosuch'"),
    ("", "at least one substrate")])
def test_compare_substrate_options_are_checked(capsys, tmp_path, spec, match):
    fails(capsys, "compare", MODEL, "--substrates", spec, "--out", tmp_path / "r", match=match)
    assert not (tmp_path / "r").exists()


def test_substrate_options_are_checked_in_python_too():
    with pytest.raises(ValueError, match="unknown option.*'bogus'.*takes method, engine"):
        get_substrate("ode", bogus=1)


@pytest.mark.parametrize("content,match", [
    (b"0 3\n\xff\xfe 4\n", "byte 4 is not UTF-8"),
    ("0 3\n\u00b2 4\n".encode(), "'\u00b2' is not a neuron"),
    ("0 3\n\u0663 4\n".encode(), "is not a neuron"),       # Arabic-Indic digit three
    (b"0 3\n99999999999999999999999 4\n", "far too large"),
    (b"0 3\nh0; 4\n", "is not a neuron")])
def test_edge_file_not_utf8_or_odd_digits(capsys, tmp_path, content, match):
    (tmp_path / "e.txt").write_bytes(content)
    fails(capsys, "train", "--topology", tmp_path / "e.txt", "--out", tmp_path / "o", match=match)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("config,match", [
    ("abc", "config: must be an object"), ([1, 2], "config: must be an object"),
    ({"dt": "0.05"}, "config.dt: must be float; got '0.05'"), ({"epochs": 2.5}, "config.epochs: must be int"),
    ({"sign": "yes"}, "config.sign: must be bool"), ({"prune": 3}, "config.prune: must be"),
    ({"bogus": 1}, "config.bogus: is not a training setting"), ({"dt": -1.0}, "'dt' parameter must be in"),
    ({"free_steps": None}, "config.free_steps: must be int")])
@pytest.mark.parametrize("command", ["lyapunov", "export", "compare"])
def test_model_config_string_list_or_wrong_types(capsys, tmp_path, model_dict, config, match, command):
    model_dict["config"] = config
    m = write_model(tmp_path, model_dict)
    extra = {"lyapunov": [], "export": ["--out", tmp_path / "x.cir"], "compare": ["--substrates", "ode"]}[command]
    fails(capsys, command, m, *extra, match=[match, "m.json"])


@pytest.mark.parametrize("edit,match", [
    (lambda d: d["network"]["weights"][3].__setitem__(2, "x"), "network.weights[3][2]: must be a finite number"),
    (lambda d: d["network"]["weights"][0].__setitem__(3, "nan"), "network.weights[0][3]: must be a finite number"),
    (lambda d: d["network"]["weights"].pop(), "network.weights: must be an 9 x 9"),
    (lambda d: d["network"]["mask"][1].__setitem__(4, 2), "network.mask[1][4]: must be 0 or 1"),
    (lambda d: d["network"]["bias"].append(0), "network.bias: must be a list of 9"),
    (lambda d: d["network"]["roles"].__setitem__("hidden", "5"), "network.roles.hidden: must be a list"),
    (lambda d: d["network"]["roles"].__setitem__("n_inputs", 1), "network.roles.n_inputs: must be an integer >= 2"),
    (lambda d: d["network"].__setitem__("family", ["deep"]), "network.family: must be one of"),
    (lambda d: d["network"].__setitem__("params", {"gamma": "a"}), "network.params.gamma: must be a finite"),
    (lambda d: d["network"].pop("weights"), "network: the field 'weights' is missing"),
    (lambda d: d.__setitem__("network", []), "network: must be an object"),
    (lambda d: d.__setitem__("task", 7), "task: must be null or a printable name"),
    (lambda d: d.__setitem__("task", "xor\n.control"), "task: must be null or a printable name"),
    (lambda d: d.__setitem__("history", [3]), "history: must be an object"),
    (lambda d: d.__setitem__("metrics", "x"), "metrics: must be an object"),
    (lambda d: d.__setitem__("version", True), "version True"),
])
def test_model_file_schema_names_the_field(tmp_path, model_dict, edit, match):
    edit(model_dict)
    with pytest.raises(ModelFileError) as info:
        load_model(write_model(tmp_path, model_dict))
    assert match in str(info.value) and "\n" not in str(info.value)


def test_disk_full_names_the_file(capsys, tmp_path, monkeypatch):
    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    target = tmp_path / "net.cir"
    fails(capsys, "export", MODEL, "--out", target, match=[repr(str(target)), "No space left on device"])
    monkeypatch.setattr(os, "replace", real_replace)
    assert list(tmp_path.iterdir()) == [], "a temporary file was left behind"


# --- section 6: refused instead of accepted silently ----------------------------------------------
@pytest.mark.parametrize("content", ["", "# only a comment\n\n   # another\n"])
def test_empty_edge_file_or_only_comments(capsys, tmp_path, content):
    (tmp_path / "e.txt").write_text(content)
    fails(capsys, "train", "--topology", tmp_path / "e.txt", "--out", tmp_path / "o", match="has no edges")


def test_third_token_on_an_edge_line(capsys, tmp_path):
    (tmp_path / "e.txt").write_text("x0 h0\nx0 h0 y0\n")
    fails(capsys, "train", "--topology", tmp_path / "e.txt", "--out", tmp_path / "o",
          match=["line 2", "got 3 item(s)"])


@pytest.mark.parametrize("hidden", ["", " ", ",", "5,,3", "-1", "5.0", "\u0665"])
def test_hidden_empty_or_malformed(capsys, tmp_path, hidden):
    fails(capsys, "train", "--hidden", hidden, "--out", tmp_path / "o", match="--hidden must be layer sizes")


@pytest.mark.parametrize("command", [["train"], ["export", str(MODEL)], ["compare", str(MODEL)]])
def test_out_empty(capsys, tmp_path, command):
    fails(capsys, *command, "--out", "", match="--out must name")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", [["--diode-is", "1e-9"], ["--diode-n", "2"], ["--diode-rs", "3"]])
def test_diode_options_with_limiter_clamp(capsys, tmp_path, option):
    fails(capsys, "export", MODEL, "--clamp", "limiter", *option, "--out", tmp_path / "x.cir",
          match=["only apply to --clamp diode"])
    fails(capsys, "export", MODEL, "--limiter-stiffness", "10", "--out", tmp_path / "x.cir",
          match="only applies to --clamp limiter")


def test_zero_free_or_nudged_steps_never_give_tran_0(capsys, tmp_path, model_dict):
    fails(capsys, "export", MODEL, "--free-steps", "0", "--out", tmp_path / "x.cir", match="--free-steps")
    fails(capsys, "export", MODEL, "--nudged-steps", "0", "--out", tmp_path / "x.cir", match="--nudged-steps")
    model_dict["config"]["nudged_steps"] = 0
    fails(capsys, "export", write_model(tmp_path, model_dict), "--out", tmp_path / "x.cir",
          match=["0 steps", "--free-only"])
    fails(capsys, "export", MODEL, "--dt", "1e-300", "--out", tmp_path / "x.cir", match="MIN_NETLIST_STEP_SECONDS")
    assert not (tmp_path / "x.cir").exists()
    # --free-only with a zero-step nudged phase is fine, and its .tran is not zero.
    assert cli_main(["export", str(write_model(tmp_path, model_dict)), "--free-only", "--out",
                     str(tmp_path / "x.cir")]) == 0
    tran = [ln for ln in (tmp_path / "x.cir").read_text().splitlines() if ln.startswith(".tran")][0]
    assert all(float(v) > 0 for v in tran.split()[1:3])


@pytest.mark.parametrize("bad", [["--topology", "nosuchfile"], ["--hidden", "x"], ["--epochs", "-1"],
                                 ["--seed", "-1"], ["--seeds", "0"], ["--free-steps", "0"]])
def test_out_folder_not_created_before_arguments_are_checked(capsys, tmp_path, bad):
    out = tmp_path / "new" / "deeper"
    assert cli_main(["train", *bad, "--out", str(out)]) == 2
    capsys.readouterr()
    assert not (tmp_path / "new").exists()


def test_out_that_is_a_file_or_under_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    fails(capsys, "train", "--out", tmp_path / "f", match="is not a folder")
    fails(capsys, "export", MODEL, "--out", tmp_path / "f" / "x.cir", match="is a file, not a folder")
    fails(capsys, "export", MODEL, "--out", tmp_path, match="names a folder")


# --- section 2, last bullet: recognisable temporary files, stale ones removed -------------------
def test_temp_files_are_recognisable(tmp_path):
    with atomic_output(tmp_path / "model.json") as tmp:
        assert tmp.name.startswith(".model.json" + TMP_MARKER + f"{os.getpid()}-")
        tmp.write_text("{}")
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_stale_temp_files_of_a_killed_process_are_removed_on_next_write(tmp_path):
    # A SIGKILL during a write leaves the temporary file; simulate it with a dead PID and an old
    # file from a live process, and keep a fresh one of a live process and unrelated files.
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_dead = tmp_path / f".a.json{TMP_MARKER}{dead.pid}-abc123.tmp"
    stale_old = tmp_path / f".b.json{TMP_MARKER}1-xyz.png"          # pid 1 lives, but the file is 2 h old
    fresh_live = tmp_path / f".c.json{TMP_MARKER}1-fresh.tmp"
    other = tmp_path / ".keep.tmp"
    for p in (stale_dead, stale_old, fresh_live, other):
        p.write_text("partial")
    old = time.time() - 7200
    os.utime(stale_old, (old, old))
    write_atomic(tmp_path / "d.json", "{}")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([fresh_live.name, other.name, "d.json"])


def test_saving_a_model_leaves_no_temp_file(tmp_path):
    save_model(tmp_path / "m.json", Network.create(Roles(3, (2,), 1), rng=0))
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


# --- found beyond the list (the list is a sample) ------------------------------------------
def test_found_train_with_zero_nudged_steps(capsys, tmp_path):
    # Was: AttributeError 'NoneType' object has no attribute 'diverged' (found by the fuzz test).
    fails(capsys, "train", "--nudged-steps", "0", "--out", tmp_path / "o", match="--nudged-steps")
    from deepcircuit import InvalidInputError, TrainingConfig, train

    with pytest.raises(InvalidInputError, match="nudged phase"):
        train("xor", config=TrainingConfig(epochs=1, free_steps=5, nudged_steps=0))


def test_found_compare_with_zero_nudged_steps(capsys, tmp_path, model_dict):
    # Was: AttributeError 'NoneType' object has no attribute 'final'.
    fails(capsys, "compare", MODEL, "--nudged-steps", "0", "--substrates", "ode", match="--nudged-steps")
    model_dict["config"]["nudged_steps"] = 0
    fails(capsys, "compare", write_model(tmp_path, model_dict), "--substrates", "ode", match="0 steps")


def test_found_duplicate_edge_lines(capsys, tmp_path):
    (tmp_path / "e.txt").write_text("x0 h0\nh0 y0\nx0 h0\n")
    fails(capsys, "train", "--topology", tmp_path / "e.txt", "--out", tmp_path / "o",
          match="line 3 repeats the edge x0 h0 of line 1")


def test_found_absurd_mismatch_is_one_line(capsys, tmp_path):
    # Was: two RuntimeWarning lines (numpy overflow, with source) and then an 'inf' in the netlist.
    fails(capsys, "export", MODEL, "--mismatch", "1e308", "--out", tmp_path / "x.cir",
          match=["would reverse the sign", "allowed: 0 <= mismatch <= 0.5"])


def test_found_ngspice_seed_is_a_c_int(capsys, tmp_path):
    # Was: '.options seed=9.22337203685e+18' (an integer written as a float, beyond a C int).
    fails(capsys, "export", MODEL, "--noise", "0.1", "--nonideal-seed", str(2 ** 63 - 1), "--out", tmp_path / "x.cir",
          match="2**31")
    assert cli_main(["export", str(MODEL), "--noise", "0.1", "--nonideal-seed", "123456789", "--out",
                     str(tmp_path / "x.cir")]) == 0
    assert ".options method=gear seed=123456789 " in (tmp_path / "x.cir").read_text()


def test_found_library_warnings_are_one_line(capsys, tmp_path, monkeypatch):
    import warnings

    import deepcircuit.cli.lyapunov as lyap

    def warn_and_fail(args):
        warnings.warn("something odd\nspread over lines", RuntimeWarning)
        return 0

    monkeypatch.setattr(lyap, "run", warn_and_fail)
    assert cli_main(["lyapunov", str(MODEL)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["deepcircuit lyapunov: warning: something odd spread over lines"]


def test_found_usage_errors_are_one_line(capsys):
    for argv in ([], ["train", "--nope"], ["train", "--epochs", "x"], ["export", str(MODEL)],
                 ["lyapunov", str(MODEL), "--substrate", "x"]):
        assert cli_main(argv) == 2
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and "error:" in err[0] and "--help" in err[0], (argv, err)


def test_found_nul_in_an_argument(capsys, tmp_path):
    fails(capsys, "export", MODEL, "--out", "x\x00.cir", match="NUL")
    fails(capsys, "train", "--out", "o\x00", match="NUL")


def test_found_symlink_loop_and_bom(capsys, tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    fails(capsys, "lyapunov", tmp_path / "a", match="symbolic links")
    (tmp_path / "bom.json").write_text(MODEL.read_text(), encoding="utf-8-sig")
    fails(capsys, "lyapunov", tmp_path / "bom.json", match="BOM")


def test_found_weights_of_many_big_networks_count_against_the_memory_limit(capsys, tmp_path):
    # 2000 networks of 1004 neurons: 16 GB of weights although each trajectory is small.
    fails(capsys, "train", "--hidden", "1000", "--seeds", "2000", "--free-steps", "1", "--nudged-steps", "1",
          "--out", tmp_path / "o", match=["1004 x 1004 weights", "MAX_STATE_BYTES"])


def test_found_largest_seed_round_trips(capsys, tmp_path):
    # The CLI accepts seeds below 2**63; the model file written with one must load again.
    rc = cli_main(["train", "--seed", str(2 ** 63 - 1), "--epochs", "1", "--free-steps", "5", "--nudged-steps", "2",
                   "--hidden", "2", "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert load_model(tmp_path / "o" / f"seed{2 ** 63 - 1}.json").seed == 2 ** 63 - 1


def test_found_substrate_option_values_are_checked_before_the_reference_run(capsys, monkeypatch):
    import deepcircuit.studies.comparison as comparison

    def never(*a, **k):
        raise AssertionError("compare ran although an option value is bad")

    monkeypatch.setattr(comparison, "compare", never)
    fails(capsys, "compare", MODEL, "--substrates", "ode,spice:networks_per_run=0", match="networks_per_run")
    fails(capsys, "compare", MODEL, "--substrates", "ode:method=rk4", match="'euler', 'adaptive'")


def test_found_control_characters_in_paths_never_reach_the_terminal_raw(capsys, tmp_path):
    # A file name with an ESC sequence or a newline was printed raw on stdout (lyapunov's header,
    # export's "wrote" line, train's summary): a terminal-escape injection.
    name = tmp_path / "m\x1b]0;owned\x07\n.json"
    shutil.copy(MODEL, name)
    assert cli_main(["export", str(name), "--out", str(tmp_path / "o\x1b[2J.cir"), "--free-steps", "5",
                     "--nudged-steps", "2"]) == 0
    assert cli_main(["lyapunov", str(name)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b" in out


@pytest.mark.parametrize("option,value", [("--v-scale", "1e308"), ("--v-scale", "0.001"),
                                          ("--capacitance", "10"), ("--transconductance", "1e-20")])
def test_circuit_scales_outside_the_tested_range_are_refused(capsys, tmp_path, option, value):
    # 1e308 V once exported and "ran" in ngspice, printing garbage; the allowed ranges are the
    # ones exported netlists are tested at (deepcircuit.limits.V_SCALE_RANGE and neighbours).
    name = option.lstrip("-").replace("-", "_")
    fails(capsys, "export", MODEL, "--out", tmp_path / "x.cir", option, value, match=name)
    assert not (tmp_path / "x.cir").exists()


@pytest.mark.parametrize("weight", [1e308, -1e307])
def test_found_lyapunov_on_weights_whose_sums_overflow(capsys, tmp_path, model_dict, weight):
    # Weights of 1e308 are finite, but their sums (the Jacobian's diagonal) overflow float64:
    # numpy's eig once ended the command in a LinAlgError traceback.
    net = model_dict["network"]
    net["weights"] = [[weight if on else 0.0 for on in row] for row in net["mask"]]
    path = write_model(tmp_path, model_dict)
    fails(capsys, "lyapunov", path, match=["weights are too large", "overflows float64"])


def test_certificates_refuse_a_jacobian_that_overflows():
    from deepcircuit.errors import InvalidInputError
    from deepcircuit.stability.certificates import contraction, gershgorin
    net = load_model(MODEL).network
    big = net.with_weights(np.where(np.asarray(net.mask), 1e308, 0.0))
    for f in (gershgorin, contraction):
        with pytest.raises(InvalidInputError, match="too large to analyse"):
            f(big)
