"""Issue 10, section 1: no code execution through a netlist.

Every piece of user text that reaches a netlist (the model file's path in the title, titles,
``.options``) is inert: one line of printable ASCII, inside the title or a ``*`` comment, or
refused. The end-to-end test builds a model file whose *name* holds ``.control`` / ``shell touch
PWNED`` / ``.endc`` on separate lines, exports it and runs plain ``ngspice -b``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcircuit import InvalidInputError, Network, Roles, Schedule
from deepcircuit.substrates.chip import CircuitUnits, NonIdealities
from deepcircuit.substrates.circuit import compile_netlist, standalone_netlist
from deepcircuit.substrates.clamps import ClampModel
from deepcircuit.substrates.netlist_text import spice_comment_text
from deepcircuit.cli import main as cli_main
from deepcircuit.learning.model_file import save_model

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "netlists" / "models" / "xor_trained.json"
needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="needs the ngspice program")

#: A file name that, pasted raw into a netlist, runs a shell command in `ngspice -b`: the title
#: line ends at the newline and `.control ... .endc` is a control block. `*#` lines are ngspice
#: control lines too, and `*ng_script` as a title makes the file a script.
HOSTILE_NAME = "m\n.control\nshell touch PWNED\n.endc\n*#shell touch PWNED2\n* x.json"
HOSTILE_TITLES = [HOSTILE_NAME, "*ng_script\nshell touch PWNED", ".control\rshell touch PWNED\r.endc",
                  "a\u2028.control\u2029b\x00c\x1b[31m", "trailing backslash \\", "+ continuation"]

# What may appear in an exported netlist: comments, the cards deepcircuit writes, the commands
# of its .control block, and element lines of the kinds it creates, made of plain tokens.
_TOKEN = r"[A-Za-z0-9_.+\-*/()=,]+"
_CARDS = [r"\.options( [a-z]+=[A-Za-z0-9_.+\-]+)+", r"\.model (DCLAMP D|SWNUDGE SW)\(" + r"[A-Z]+=\S+( [A-Z]+=\S+)*\)",
          r"\.ic( V\(\w+\)=\S+)+", r"\.save( v\(\w+\))+", rf"\.tran( {_TOKEN})+ uic", r"\.control", r"\.endc",
          r"\.end", r"set width=\d+", r"set nobreak", r"run", r"linearize", r"print( v\(\w+\))+", r"quit"]
_ELEMENT = rf"[VCRDGBSI]_\w+( {_TOKEN})+"
_ALLOWED = re.compile("|".join(f"(?:{p})" for p in [r"\* [ -~]*"] + _CARDS + [_ELEMENT]))


def _check_inert(text: str) -> None:
    lines = text.splitlines()
    assert text.isascii() and all(ln.isprintable() for ln in lines)
    assert "\r" not in text and not any(ln.startswith("*#") for ln in lines)
    assert lines[0][:1].isalnum(), f"title must start with a letter or digit: {lines[0]!r}"
    for n, ln in enumerate(lines[1:], 2):
        assert _ALLOWED.fullmatch(ln), f"line {n} is neither a comment, a known card nor an element: {ln!r}"
    # One .control block only: the one deepcircuit writes at the end.
    assert sum(ln.strip().lower() in (".control", ".endc") for ln in lines) in (0, 2)


def _rows(ngspice_output: str) -> int:
    return sum(1 for ln in ngspice_output.splitlines() if re.match(r"^\d+\s+\S+e[-+]\d+", ln))


def test_spice_comment_text_makes_text_one_printable_line():
    s = spice_comment_text(HOSTILE_NAME)
    assert "\n" not in s and s.isascii() and s.isprintable()
    assert s.startswith("m\\n.control\\nshell touch PWNED\\n.endc")
    assert spice_comment_text("a\\b") == "a\\x5cb" and not spice_comment_text("x\\").endswith("\\")
    assert spice_comment_text("\u00e9\u2028") == "\\xe9\\u2028"
    long = spice_comment_text("y" * 1000)
    assert len(long) == 200 and long.endswith("...")


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.text(max_size=300))
def test_spice_comment_text_property(text):
    s = spice_comment_text(text)
    assert s.isascii() and s.isprintable() and len(s) <= 200
    assert not s.endswith("\\")


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_title_stays_in_the_title_line(title):
    roles = Roles(2, (1,), 1)
    W = np.zeros((4, 4))
    W[0, 2], W[2, 3] = 0.5, 1.0
    net = Network(roles, W, W != 0, W != 0)
    text = compile_netlist(net, [[1.0, 1.0]], [[[0, 0, 0.05, 0.1]]], Schedule(dt=0.1, free_steps=3, nudged_steps=2),
                           targets=[[1.0]], title=title, control=True).text
    _check_inert(text)
    assert len(text.splitlines()) == len(compile_netlist(
        net, [[1.0, 1.0]], [[[0, 0, 0.05, 0.1]]], Schedule(dt=0.1, free_steps=3, nudged_steps=2),
        targets=[[1.0]], title="plain", control=True).text.splitlines())


@pytest.mark.parametrize("options", [{"reltol\n.control": 1e-4}, {"reltol": "1\nshell touch PWNED"},
                                     {"reltol": "1 abstol=1"}, {"x": float("inf")}, {"x": [1]}, {3: 1}])
def test_ngspice_options_are_words_and_numbers_only(options):
    net = Network.create(Roles(3, (2,), 1), rng=0)
    with pytest.raises(InvalidInputError):
        standalone_netlist(net, "xor", options=options)


@pytest.mark.parametrize("family,params,clamp,nonideal", [
    ("deep", {}, "diode", None),
    ("deep", {}, "limiter", NonIdealities(mismatch=0.1, bits=4, parasitic_capacitance=1e-13, noise=0.01, seed=3)),
    ("deep-leaky", {"gamma": 0.3}, ClampModel("diode", saturation_current=1e-9, emission=1.5), None),
    ("ep-asym", {}, "diode", NonIdealities(noise=0.02)),
    ("ep-sym", {}, "limiter", None)])
def test_every_exported_line_is_a_comment_a_known_card_or_an_element(tmp_path, family, params, clamp, nonideal):
    net = Network.create(Roles(3, (3,), 1), family=family, params=params, rng=2)
    if net.family_.has_bias_vector:
        net = net.with_weights(net.weights, np.linspace(-0.5, 0.5, net.n_neurons) * (np.arange(net.n_neurons) >= 3))
    nl = standalone_netlist(net, "xor", schedule=Schedule(dt=0.05, free_steps=20, nudged_steps=10), clamp=clamp,
                            nonideal=nonideal, units=CircuitUnits(v_scale=5.0), title=HOSTILE_NAME)
    _check_inert(nl.text)


def test_export_of_a_hostile_file_name_writes_an_inert_netlist(tmp_path):
    model = tmp_path / HOSTILE_NAME
    shutil.copy(MODEL, model)
    out = tmp_path / "out.cir"
    assert cli_main(["export", str(model), "--out", str(out), "--free-steps", "20", "--nudged-steps", "10"]) == 0
    text = out.read_text()
    _check_inert(text)
    assert "shell" in text.splitlines()[0]  # the name is kept, escaped, in the title


@needs_ngspice
@pytest.mark.spice
def test_hostile_file_name_runs_nothing_in_plain_ngspice(tmp_path):
    # The issue's reproduction: before the fix, `ngspice -b` on this export created PWNED.
    model = tmp_path / HOSTILE_NAME
    shutil.copy(MODEL, model)
    out = tmp_path / "out.cir"
    assert cli_main(["export", str(model), "--out", str(out), "--free-steps", "20", "--nudged-steps", "10"]) == 0
    p = subprocess.run(["ngspice", "-b", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED2").exists(), "a shell command ran"
    assert _rows(p.stdout) >= 30, f"no rows came out of ngspice:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"


@needs_ngspice
@pytest.mark.spice
def test_raw_hostile_title_would_run_a_command(tmp_path):
    # The test above can fail: the same title written raw (the old behaviour) runs the command.
    text = standalone_netlist(Network.create(Roles(3, (2,), 1), rng=0), "xor",
                              schedule=Schedule(dt=0.05, free_steps=5, nudged_steps=5)).text
    raw = HOSTILE_NAME + "\n" + text.split("\n", 1)[1]
    (tmp_path / "raw.cir").write_text(raw)
    subprocess.run(["ngspice", "-b", "raw.cir"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (tmp_path / "PWNED").exists()


def test_saved_model_round_trip_under_a_hostile_name(tmp_path):
    net = Network.create(Roles(3, (2,), 1), rng=0)
    path = save_model(tmp_path / "a\nb.json", net)
    assert path.exists() and [p.name for p in tmp_path.iterdir()] == ["a\nb.json"]


def test_compile_netlist_refuses_a_line_that_is_not_inert(monkeypatch):
    # Defence in depth: even if a future change interpolated raw text, it would not get out.
    import deepcircuit.substrates.circuit as circuit

    monkeypatch.setattr(circuit, "spice_number", lambda x: "1\n.control\nshell touch PWNED\n.endc")
    with pytest.raises(InvalidInputError, match="would not be inert"):
        standalone_netlist(Network.create(Roles(3, (2,), 1), rng=0), "xor")
