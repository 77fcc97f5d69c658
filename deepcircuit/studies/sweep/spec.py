"""Sweep specifications: grid axes over ``train`` options and substrate options, expanded to runs.

A study is a set of runs. Each run is one training run (one seed; what ``deepcircuit train``
does, :mod:`deepcircuit.studies.training_run`) on one substrate, so any ``train`` option is an
axis (``model``, ``hidden``, ``epochs``, ``eta``, ...), and so is any option of a substrate,
written ``SUBSTRATE:OPTION`` (``spice:mismatch``, ``spice:bits``, ``spice:clamp``,
``brian2:target``). Options of a substrate's settings dataclass
(the SPICE substrate's ``NonIdealities``) count as options of the substrate.

Every run's options are validated with the ``train`` options' own parser
(:mod:`deepcircuit.studies.run_options`), and every distinct substrate configuration is built
once, so a bad spec fails before anything runs.

A run is identified by a hash of its canonical parameters (options that differ from their
``train`` default, plus substrate options, as sorted JSON). The same hash gives the run's random
seed, so a run's result never depends on scheduling order or on which other runs share a sweep.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...errors import InvalidInputError
from ..run_options import train_parser

#: ``train`` options that are not run parameters: the sweep sets or owns them.
# workers / scheduler: a sweep spreads its runs over its own Dask workers (sweep --workers).
NOT_AXES = {"out", "json", "quiet", "seeds", "help", "workers", "scheduler"}

#: ``train --tune`` runs a grid of its own on Dask: not something a sweep's run does.
NOT_AXES = NOT_AXES | {"tune", "tune_grid", "tune_workers", "tune_scheduler"}


def train_options(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.Action]:
    """The ``train`` options a sweep can set, by destination name (``free_steps``, ...)."""
    parser = parser or train_parser()
    return {a.dest: a for a in parser._actions
            if a.option_strings and a.dest not in NOT_AXES and a.dest != argparse.SUPPRESS}


def _is_flag(action: argparse.Action) -> bool:
    return action.nargs == 0


def substrate_options(name: str) -> dict:
    """Options of substrate ``name`` (:func:`deepcircuit.substrates.substrate_options`: constructor
    arguments and the fields of its settings dataclasses, ``spice:stiffness`` ...)."""
    from ...substrates import substrate_options as options

    return options(name)


def build_substrate(name: str, options: Mapping[str, Any], where: str | None = None):
    """A substrate instance from options as a sweep gives them (text or TOML values), checked by
    the one substrate-spec parser (:mod:`deepcircuit.substrates.spec`)."""
    from ...substrates import build_substrate as build, check_substrate_options

    return build(name, check_substrate_options(name, options, from_text=True, where=where))


@dataclass(frozen=True)
class Run:
    """One point of a sweep: a ``train`` invocation (one seed) on one configured substrate.

    Attributes
    ----------
    id : str
        16 hex digits of the SHA-256 of the canonical parameters; names the run's files.
    params : dict
        Column name -> value: every ``train`` option (``model``, ``hidden``, ``seed``, ...; the
        parsed value) and every option of the run's substrate (``spice:mismatch``, ...).
    argv : tuple of str
        The ``train`` arguments, without ``--seed`` (the run trains with ``run_seed``).
    substrate_options : dict
        Options of the run's substrate, as given.
    run_seed : int
        The random seed the run trains with, derived from the canonical parameters.
    given : frozenset of str
        The ``train`` options the spec sets (they override a ``config`` file's, as options given
        on the command line do).
    """

    id: str
    params: dict
    argv: tuple
    substrate_options: dict
    run_seed: int
    given: frozenset = frozenset()

    @property
    def substrate(self) -> str:
        return self.params["substrate"]

    def settings(self) -> dict:
        """The run as :func:`deepcircuit.studies.training_run.plan_run` takes it: its ``train``
        options (option -> value), one network, trained with the run's own seed, no progress bar."""
        settings = {k: v for k, v in self.params.items() if ":" not in k}
        settings.update(seed=self.run_seed, seeds=1, quiet=True,
                        explicit_options=frozenset(self.given) | {"seed", "seeds", "quiet"})
        return settings

    def command(self) -> str:
        """The equivalent ``deepcircuit train`` command (substrate options are not train options)."""
        import shlex

        extra = "".join(f"  # with {self.substrate}:{k}={v}" for k, v in self.substrate_options.items())
        return "deepcircuit train " + " ".join(map(shlex.quote, (*self.argv, "--seed", str(self.run_seed)))) + extra


@dataclass
class SweepSpec:
    """What to run: axes (name -> values), fixed options, seeds per point, product or zip.

    Names are ``train`` options (``model``, ``free-steps`` or ``free_steps``) or substrate
    options ``SUBSTRATE:OPTION``. ``fixed`` holds options common to every run.
    """

    axes: dict[str, list] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    seeds: int = 1
    zip: bool = False
    compare_to: str | None = None

    def merged(self, other: "SweepSpec") -> "SweepSpec":
        """This spec with ``other``'s axes and fixed options laid over it (command line over file)."""
        return SweepSpec({**self.axes, **other.axes}, {**self.fixed, **other.fixed},
                         other.seeds if other.seeds != 1 else self.seeds, other.zip or self.zip,
                         other.compare_to or self.compare_to)


def parse_grid(text: str) -> tuple[str, list]:
    """``"spice:mismatch=0,0.02,0.05"`` -> ``("spice:mismatch", [0, 0.02, 0.05])``.

    Values are split on commas; a value that itself has commas (``hidden`` layer sizes such as
    ``5,3``) is written with ``;`` between values instead: ``hidden=5;5,3``.
    """
    name, eq, values = text.partition("=")
    if not eq or not name.strip() or not values.strip():
        raise InvalidInputError(f"--grid takes NAME=V1,V2,...; got {text!r}.")
    sep = ";" if ";" in values else ","
    vals = [v.strip() for v in values.split(sep)]
    if any(not v for v in vals):
        raise InvalidInputError(f"--grid {text!r} has an empty value.")
    return name.strip(), vals


def load_spec(path: "str | Path") -> SweepSpec:
    """Read a TOML sweep spec (format in ``docs/sweep.md``)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"Sweep spec {str(path)!r} does not exist.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"Sweep spec {str(path)!r} is not valid TOML: {exc}.") from None
    allowed = {"grid", "fixed", "seeds", "zip", "compare_to"}
    unknown = set(data) - allowed
    if unknown:
        raise InvalidInputError(f"Sweep spec {str(path)!r}: unknown key(s) {sorted(unknown)}; "
                                f"allowed: {sorted(allowed)}.")
    grid, fixed = data.get("grid", {}), data.get("fixed", {})
    if not isinstance(grid, dict) or not isinstance(fixed, dict):
        raise InvalidInputError(f"Sweep spec {str(path)!r}: [grid] and [fixed] must be tables.")
    axes = {}
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise InvalidInputError(f"Sweep spec {str(path)!r}: grid axis {name!r} must be a non-empty "
                                    f"list of values; got {values!r}.")
        axes[name] = values
    seeds, zip_ = data.get("seeds", 1), data.get("zip", False)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise InvalidInputError(f"Sweep spec {str(path)!r}: seeds must be an integer >= 1; got {seeds!r}.")
    if not isinstance(zip_, bool):
        raise InvalidInputError(f"Sweep spec {str(path)!r}: zip must be true or false; got {zip_!r}.")
    compare_to = data.get("compare_to")
    if compare_to not in (None, "ode"):
        raise InvalidInputError(f"Sweep spec {str(path)!r}: compare_to must be \"ode\"; got {compare_to!r}.")
    return SweepSpec(axes, dict(fixed), seeds, zip_, compare_to)


def _normalise(name: str, options: Mapping[str, argparse.Action]) -> str:
    """An axis name as a column name: a train option's dest, or ``SUBSTRATE:OPTION``."""
    if ":" in name:
        sub, _, opt = name.partition(":")
        if sub not in _substrate_names():
            raise InvalidInputError(f"{name!r}: unknown substrate {sub!r}; substrates are "
                                    f"{', '.join(_substrate_names())}.")
        from ...substrates import check_option_name

        check_option_name(sub, opt, where=f"Sweep axis {name!r}")
        return f"{sub}:{opt}"
    dest = name.lstrip("-").replace("-", "_")
    if dest == "seeds":
        raise InvalidInputError("'seeds' is not an axis; use --seeds K (K seeds per grid point) or an axis 'seed'.")
    if dest not in options:
        raise InvalidInputError(
            f"Unknown sweep option {name!r}; use a train option ({', '.join(sorted(options))}) "
            f"or SUBSTRATE:OPTION such as spice:mismatch.")
    return dest


def _substrate_names() -> list[str]:
    from ...substrates import available_substrates

    return available_substrates()


def _as_argv(dest: str, value: Any, action: argparse.Action) -> list[str]:
    flag = action.option_strings[-1]
    if _is_flag(action):
        v = value if isinstance(value, bool) else str(value).strip().lower()
        if v in (True, "true", "1", "yes", "on"):
            return [flag]
        if v in (False, "false", "0", "no", "off"):
            return []
        raise InvalidInputError(f"{dest!r} is a switch: use true or false; got {value!r}.")
    if isinstance(value, bool):
        raise InvalidInputError(f"{dest!r} takes a value, not {str(value).lower()}.")
    if isinstance(value, list):  # TOML: hidden = [5, 3]
        value = ",".join(map(str, value))
    return [flag, str(value)]


def _canonical(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


def expand(spec: SweepSpec) -> list[Run]:
    """Every run of ``spec``, validated; raises :class:`InvalidInputError` on the first bad option.

    Runs are the product of the axes (or, with ``zip``, the axes paired element by element)
    times the seeds ``seed .. seed+seeds-1`` (``seed`` defaults to 0). Options of a substrate
    apply to the runs on that substrate only; on other substrates they are dropped, and points
    that then coincide are run once.
    """
    parser = train_parser()
    options = train_options(parser)
    axes = {}
    for name, values in spec.axes.items():
        col = _normalise(name, options)
        if col in axes:
            raise InvalidInputError(f"Axis {name!r} is given twice.")
        axes[col] = list(values)
    fixed = {_normalise(k, options): v for k, v in spec.fixed.items()}
    if not isinstance(spec.seeds, int) or spec.seeds < 1:
        raise InvalidInputError(f"--seeds must be an integer >= 1; got {spec.seeds!r}.")
    if "seed" in axes:
        if spec.seeds != 1:
            raise InvalidInputError("Give either a 'seed' axis or --seeds K, not both.")
    else:
        first = fixed.pop("seed", 0)
        try:
            first = int(first)
        except (TypeError, ValueError):
            raise InvalidInputError(f"'seed' must be an integer; got {first!r}.") from None
        axes["seed"] = list(range(first, first + spec.seeds))
    names = list(axes)
    if spec.zip:
        grid_axes = [n for n in names if n != "seed"]
        lengths = {n: len(axes[n]) for n in grid_axes}
        if len(set(lengths.values())) > 1:
            raise InvalidInputError(f"--zip pairs axes element by element, so they need the same number "
                                    f"of values; got {lengths}.")
        n = next(iter(lengths.values()), 1)
        points = [dict({g: axes[g][i] for g in grid_axes}, seed=s) for i in range(n) for s in axes["seed"]]
    else:
        points = [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))]

    sub_cols = {c for c in (*axes, *fixed) if ":" in c}
    used_substrates: set[str] = set()
    built: dict[str, Any] = {}
    runs: dict[str, Run] = {}
    for point in points:
        values = {**fixed, **point}
        train_values = {k: v for k, v in values.items() if ":" not in k}
        argv = []
        for dest, value in train_values.items():
            if dest == "seed":
                continue
            argv += _as_argv(dest, value, options[dest])
        where = ", ".join(f"{k}={v}" for k, v in point.items() if k != "seed")
        try:
            ns = parser.parse_args(argv + ["--seed", str(values["seed"])])
        except InvalidInputError as exc:
            raise InvalidInputError(f"run {{{where}}}: {exc}") from None
        substrate = ns.substrate
        used_substrates.add(substrate)
        from ...substrates import check_substrate_options, parse_substrate_spec

        # Options of a --substrate spec (spice:mismatch=0.3;seed=1), then the axes' (they win).
        spec_opts = parse_substrate_spec(ns.substrate_spec).options if getattr(ns, "substrate_spec", None) else {}
        sub_opts = {**spec_opts, **check_substrate_options(
            substrate, {k.partition(":")[2]: v for k, v in values.items() if ":" in k and k.partition(":")[0] == substrate},
            from_text=True, where=f"run {{{where}}}")}
        key = _canonical({"substrate": substrate, **sub_opts})
        if key not in built:
            try:
                with build_substrate(substrate, sub_opts):
                    pass
            except InvalidInputError as exc:
                raise InvalidInputError(f"{', '.join(f'{substrate}:{k}={v}' for k, v in sub_opts.items())}: "
                                        f"{exc}") from None
            except (TypeError, ValueError) as exc:  # includes InvalidTypeError from the settings' checks
                raise InvalidInputError(f"substrate {substrate!r} with options {sub_opts}: {exc}") from None
            built[key] = True
        params = {dest: getattr(ns, dest) for dest in options}
        canonical = {k: v for k, v in params.items() if v != parser.get_default(k)}
        canonical.update({f"{substrate}:{k}": v for k, v in sub_opts.items()})
        canonical["seed"] = params["seed"]
        digest = hashlib.sha256(_canonical(canonical).encode()).hexdigest()
        run_id = digest[:16]
        if run_id in runs:
            continue
        row = dict(params)
        for col in sorted(sub_cols):
            s, _, opt = col.partition(":")
            row[col] = sub_opts.get(opt) if s == substrate else None
        runs[run_id] = Run(run_id, row, tuple(argv), sub_opts, int(digest[16:24], 16) & 0x7FFFFFFF,
                           frozenset(ns.explicit_options))
    for col in sub_cols:
        sub = col.partition(":")[0]
        if sub not in used_substrates:
            raise InvalidInputError(
                f"{col!r} is given but no run uses substrate {sub!r}; add --substrate {sub} or an axis "
                f"substrate=...,{sub}.")
    return list(runs.values())


def describe(runs: Sequence[Run]) -> dict[str, list]:
    """The swept parameters: column -> distinct values, for columns with more than one value."""
    out: dict[str, list] = {}
    for col in runs[0].params if runs else ():
        vals = list(dict.fromkeys(_canonical(r.params.get(col)) for r in runs))
        if len(vals) > 1:
            out[col] = [json.loads(v) for v in vals]
    return out
