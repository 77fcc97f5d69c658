"""Sweep specs: axes over train and substrate options, expansion, run ids and seeds, bad input."""

from __future__ import annotations

import pytest

from deepcircuit.errors import InvalidInputError
from deepcircuit.studies.sweep.spec import SweepSpec, describe, expand, load_spec, parse_grid, substrate_options


def test_product_times_seeds_and_typed_columns():
    runs = expand(SweepSpec({"model": ["deep", "ep-asym"], "hidden": ["5", "5,3"]}, {"epochs": "3"}, seeds=3))
    assert len(runs) == 2 * 2 * 3
    assert len({r.id for r in runs}) == len(runs)
    r = runs[0]
    assert r.params["epochs"] == 3 and r.params["model"] == "deep" and r.params["seed"] == 0
    assert {x.params["seed"] for x in runs} == {0, 1, 2}
    assert describe(runs) == {"model": ["deep", "ep-asym"], "hidden": ["5", "5,3"], "seed": [0, 1, 2]}


def test_first_seed_option_shifts_the_seeds():
    runs = expand(SweepSpec({}, {"seed": "10"}, seeds=2))
    assert [r.params["seed"] for r in runs] == [10, 11]


def test_zip_pairs_axes_and_checks_lengths():
    runs = expand(SweepSpec({"hidden": ["3", "5"], "epochs": ["2", "4"]}, zip=True, seeds=2))
    assert sorted((r.params["hidden"], r.params["epochs"]) for r in runs) == \
        [("3", 2), ("3", 2), ("5", 4), ("5", 4)]
    with pytest.raises(InvalidInputError, match="same number of values"):
        expand(SweepSpec({"hidden": ["3", "5"], "epochs": ["2"]}, zip=True))


def test_run_id_and_seed_depend_on_the_parameters_only():
    """The same point gets the same id and seed whatever else is in the sweep and in what order."""
    a = {r.params["hidden"]: r for r in expand(SweepSpec({"hidden": ["3", "5"]}, {"epochs": "3"}))}
    b = {r.params["hidden"]: r for r in expand(SweepSpec({"hidden": ["5", "7", "3"]}, {"epochs": "3"}))}
    for h in ("3", "5"):
        assert (a[h].id, a[h].run_seed) == (b[h].id, b[h].run_seed)
    assert a["3"].run_seed != a["5"].run_seed
    # Spelling an option at its default value is the same run as leaving it out.
    # (--model has no fixed default any more: it depends on the data set, so --preset is used.)
    assert expand(SweepSpec({}, {"preset": "default"}))[0].id == expand(SweepSpec())[0].id


def test_substrate_options_apply_to_their_substrate_only():
    runs = expand(SweepSpec({"substrate": ["ode", "spice"], "spice:mismatch": ["0", "0.05"]}, seeds=2))
    # ode runs do not multiply over the SPICE mismatch: 2 ode + 2 x 2 spice.
    assert len(runs) == 6
    ode = [r for r in runs if r.substrate == "ode"]
    spice = [r for r in runs if r.substrate == "spice"]
    assert len(ode) == 2 and all(r.params["spice:mismatch"] is None for r in ode)
    assert sorted(r.params["spice:mismatch"] for r in spice) == [0, 0, 0.05, 0.05]
    assert spice[0].substrate_options == {"mismatch": spice[0].params["spice:mismatch"]}


def test_settings_dataclass_fields_are_substrate_options():
    opts = substrate_options("spice")
    assert (opts["clamp"].arg, opts["clamp"].holder) == ("clamp", None)
    # The chip's options are flat constructor arguments; the clamp's settings are its fields.
    assert opts["mismatch"].arg == "mismatch" and opts["bits"].arg == "bits"
    assert opts["stiffness"].arg == "clamp" and opts["stiffness"].holder.__name__ == "ClampModel"
    assert "engine" in substrate_options("ode") and "mismatch" in substrate_options("ode")


@pytest.mark.parametrize("spec, match", [
    (SweepSpec({"colour": ["red"]}), "Unknown sweep option 'colour'; use a train option"),
    (SweepSpec({"epochs": ["three"]}), r"epochs=three.*invalid int value: 'three'"),
    (SweepSpec({"model": ["deeep"]}), "invalid choice: 'deeep'"),
    (SweepSpec({"spice:colour": ["1"]}, {"substrate": "spice"}), "unknown option.*'colour'.*substrate 'spice' takes clamp"),
    (SweepSpec({"spice:bits": ["x"]}, {"substrate": "spice"}), "option bits= must be an integer or none; got 'x'"),
    (SweepSpec({"spice:mismatch": ["-1"]}, {"substrate": "spice"}), "'mismatch' parameter must be in"),
    (SweepSpec({"spice:clamp": ["rubber"]}, {"substrate": "spice"}), "rubber"),
    (SweepSpec({"warp:speed": ["9"]}), "unknown substrate 'warp'"),
    (SweepSpec({"spice:mismatch": ["0.1"]}), "no run uses substrate 'spice'; add --substrate spice"),
    (SweepSpec({"sign": ["perhaps"]}), "'sign' is a switch: use true or false"),
    (SweepSpec({"seeds": ["3"]}), "'seeds' is not an axis"),
    (SweepSpec({"spice:nonideal": ["x"]}, {"substrate": "spice"}), "nonideal= takes an object"),
    (SweepSpec({"spice:mismatch": [[0.1]]}, {"substrate": "spice"}), r"mismatch= must be a number or none; got \[0.1\]"),
    (SweepSpec({"seed": ["1", "2"]}, seeds=3), "either a 'seed' axis or --seeds"),
])
def test_bad_specs_fail_with_one_clear_line(spec, match):
    with pytest.raises(InvalidInputError, match=match) as info:
        expand(spec)
    assert "\n" not in str(info.value)


def test_parse_grid():
    assert parse_grid("spice:mismatch=0,0.02") == ("spice:mismatch", ["0", "0.02"])
    assert parse_grid("hidden=5;5,3") == ("hidden", ["5", "5,3"])
    for bad in ("hidden", "=1,2", "hidden=", "hidden=1,,2"):
        with pytest.raises(InvalidInputError, match="--grid"):
            parse_grid(bad)


def test_toml_spec(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('seeds = 2\ncompare_to = "ode"\n[fixed]\nepochs = 3\nsubstrate = "spice"\n'
                    '[grid]\nhidden = [3, "5,3"]\n"spice:mismatch" = [0, 0.02]\nsign = [true, false]\n')
    spec = load_spec(path)
    runs = expand(spec)
    assert spec.compare_to == "ode" and len(runs) == 2 * 2 * 2 * 2
    assert {r.params["hidden"] for r in runs} == {"3", "5,3"}
    assert {r.params["sign"] for r in runs} == {True, False}
    # The command line adds to and overrides the file.
    merged = spec.merged(SweepSpec({"hidden": ["4"]}, {"epochs": "5"}))
    assert {r.params["hidden"] for r in expand(merged)} == {"4"}
    assert {r.params["epochs"] for r in expand(merged)} == {5}


@pytest.mark.parametrize("text, match", [
    ("seeds = 2\n[grid\n", "not valid TOML"),
    ("colour = 1\n", r"unknown key\(s\) \['colour'\]"),
    ("[grid]\nhidden = 5\n", "must be a non-empty list"),
    ("seeds = 0\n", "seeds must be an integer >= 1"),
    ('compare_to = "brian2"\n', 'compare_to must be "ode"'),
])
def test_bad_toml_specs(tmp_path, text, match):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=match):
        load_spec(path)
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
