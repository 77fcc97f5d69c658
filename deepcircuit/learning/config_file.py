"""Training settings as a TOML file: ``train --config FILE.toml``, ``--config-from MODEL.json``
and ``--print-config``.

A config file is flat ``key = value`` TOML. Its keys are every :class:`TrainingConfig` field
and the network, data and run settings of the ``train`` command (:data:`COMMAND_KEYS`). Unknown
keys are refused with the key named and the close matches, values of the wrong type with the
key named; the values themselves are checked where they are used (``TrainingConfig`` names the
setting). Settings that may be unset (``batch_size``, ``rule``, ...) take the string ``"none"``.
What :func:`to_toml` writes, :func:`read_config` reads back to the same values (the round trip
is tested), so printed settings can be pasted into a file. ``docs/config.md`` is
:func:`config_markdown`'s output (a test checks that it lists every field).

TOML is read with the standard library's ``tomllib`` and written here (flat scalars and lists
of scalars only).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

from ..errors import InvalidInputError, LimitExceededError
from .config import TrainingConfig

#: Largest config file read, bytes (a complete one is about 2 KiB).
MAX_CONFIG_FILE_BYTES = 1 * 2**20
NONE = "none"

#: The ``train`` command's settings beyond TrainingConfig: key -> (type, description).
COMMAND_KEYS: dict[str, tuple[str, str]] = {
    "task": ("str | None", "Logic task or built-in data set (``xor``, ``digits``, ``iris``, ``moons``, "
                           "``parity-N``, ...); ``--task``. Not used together with ``data``."),
    "data": ("str | None", "Data file ``FILE.csv`` or ``FILE.npz`` to train on; ``--data``."),
    "target": ("str | None", "Label column of a CSV data file (default: the last); ``--target``."),
    "test": ("str | None", "Separate test file (instead of ``test_fraction``); ``--test``."),
    "test_fraction": ("float", "Fraction of a data set held out for testing, stratified; ``--test-fraction``."),
    "validation_fraction": ("float", "Fraction of the training rows held out for validation; "
                                     "``--validation-fraction``."),
    "split_seed": ("int", "Seed of the stratified train/test split; ``--split-seed``."),
    "readout": ("str | None", "``argmax`` (one output per class) or ``threshold`` (one output, two "
                              "classes); ``--readout``."),
    "model": ("str | None", "Model family: ``deep``, ``deep-leaky``, ``ep-asym``, ``ep-sym``; ``--model``."),
    "topology": ("str | None", "``complete``, ``layered``, either with ``+sink``, or an edge-list file; "
                               "``--topology``."),
    "hidden": ("list[int] | None", "Hidden layer sizes, e.g. ``[100]`` or ``[5, 3]`` (without the sink); "
                                   "``--hidden``."),
    "gamma": ("float | None", "Leak rate of ``deep-leaky`` (1/tau); ``--gamma``."),
    "preset": ("str", "``default`` or ``paper``: the settings the others change; ``--preset``."),
    "substrate": ("str", "Where the phases run (``ode``, ``brian2``, ``spice``, ...); ``--substrate``."),
    "spike_rate": ("float | None", "``brian2-spiking``: firing rate (Hz) at state 1 (default 10000, the "
                                   "validated spike-training setting); ``--spike-rate``."),
    "spike_substeps": ("int | None", "``brian2-spiking``: Brian2 steps per Euler step (default 20); "
                                     "``--spike-substeps``."),
    "stdp_window": ("float | None", "``brian2-spiking``: learning window at the start of the nudged phase, "
                                    "tau (default 10); ``--stdp-window``."),
    "seeds": ("int", "Number of seeds (networks); ``--seeds``."),
    "seed": ("int", "First seed; ``--seed``."),
}


def _field_docs() -> dict[str, tuple[str, str]]:
    """TrainingConfig's fields: name -> (type, description), from its docstring's Parameters."""
    doc = TrainingConfig.__doc__ or ""
    out, names, lines = {}, None, []

    def flush():
        if names:
            for n in names:
                out[n] = " ".join(" ".join(lines).split())

    for line in doc.split("\n"):
        m = re.fullmatch(r"    ([a-z_0-9]+(?:, [a-z_0-9]+)*) : (.*)", line)
        if m:
            flush()
            names, lines = m.group(1).split(", "), []
        elif names is not None and line.startswith("        "):
            lines.append(line.strip())
        elif names is not None and line.strip():
            flush()
            names = None
    flush()
    types = {f.name: str(f.type) for f in fields(TrainingConfig)}
    return {name: (types[name], out.get(name, "")) for name in types}


def all_keys() -> dict[str, tuple[str, str]]:
    """Every config key: the TrainingConfig fields, then :data:`COMMAND_KEYS`."""
    return {**_field_docs(), **COMMAND_KEYS}


def _kinds(type_text: str) -> set[str]:
    return {t.strip() for t in type_text.split("|")}


def _check_value(key: str, value: Any, type_text: str, where: str) -> Any:
    """A TOML value of ``key`` in the Python form its setting takes; a wrong type is refused."""
    kinds = _kinds(type_text)
    if isinstance(value, str) and value.lower() == NONE and "None" in kinds:
        return None
    if "bool" in kinds:
        if isinstance(value, bool):
            return value
        want = "true or false"
    elif "int" in kinds:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        want = "an integer"
    elif "float" in kinds:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        want = "a number"
    elif "tuple" in kinds:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        want = "a list of strings"
    elif "list[int]" in kinds:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
        want = "a list of integers such as [100] or [5, 3]"
    elif "str" in kinds:
        if isinstance(value, str):
            return value
        want = "a string"
    else:  # pragma: no cover - a field of a type this module does not know
        raise InvalidInputError(f"{where}: key {key!r} has a type ({type_text}) config files cannot give.")
    if "None" in kinds:
        want += f' or "{NONE}"'
    got = type(value).__name__ if not isinstance(value, dict) else "a table"
    raise InvalidInputError(f"{where}: key {key!r} must be {want}; got {_short(value)} ({got}).")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_settings(settings: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Keys and value types of ``settings`` (as read from TOML); returns them in Python form."""
    keys = all_keys()
    out = {}
    for key, value in settings.items():
        if key not in keys:
            close = difflib.get_close_matches(key, list(keys), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise InvalidInputError(
                f"{where}: unknown key {_short(key)}{hint} (the keys are listed in docs/config.md).")
        out[key] = _check_value(key, value, keys[key][0], where)
    if out.get("task") is not None and out.get("data") is not None:
        raise InvalidInputError(f"{where}: give either 'task' or 'data', not both.")
    return out


def read_config(path: "str | Path") -> dict[str, Any]:
    """Read a config file (flat TOML) and check its keys and value types; one line per problem."""
    import tomllib

    path = Path(path)
    where = f"--config {str(path)!r}"
    if not path.is_file():
        raise InvalidInputError(f"{where}: no such file.")
    if path.stat().st_size > MAX_CONFIG_FILE_BYTES:
        raise LimitExceededError(
            f"{where} is {path.stat().st_size} bytes, above the limit of {MAX_CONFIG_FILE_BYTES} for a config file.")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{where}: byte {exc.start} is not UTF-8 text.") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"{where}: not valid TOML ({exc}).") from None
    return check_settings(data, where)


def model_settings(model) -> dict[str, Any]:
    """A trained model's settings as config keys: its TrainingConfig, family, topology, hidden
    sizes (without the sink), gamma, its task or data file and split settings. A custom
    (edge-list) topology is not included (the model stores its edges, not the file's name)."""
    from ..model.topology import has_sink

    net = model.network
    where = f"--config-from {model.path!r}" if model.path else "the model file"
    fieldnames = {f.name for f in fields(TrainingConfig)}
    stored = {k: v for k, v in (model.config or {}).items() if k in fieldnames}
    TrainingConfig.from_dict(stored)  # a damaged config is named here, not during training
    out: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
    out["model"] = net.family
    hidden = tuple(net.roles.hidden)
    if isinstance(net.topology, str) and net.topology != "custom":
        out["topology"] = net.topology
        if has_sink(net.topology):
            hidden = hidden[:-1]
    out["hidden"] = hidden or (0,)
    if "gamma" in (net.params or {}):
        out["gamma"] = float(net.params["gamma"])
    ds = model.dataset if isinstance(model.dataset, Mapping) else None
    if ds:
        for key in ("test_fraction", "validation_fraction", "split_seed", "readout"):
            if key in ds:
                out[key] = ds[key]
        files = ds.get("files") or {}
        if ds.get("source") == "file" and files.get("data"):
            out.update(data=files["data"], target=files.get("target"), test=files.get("test"))
        elif ds.get("name"):
            out["task"] = ds["name"]
    elif model.task:
        out["task"] = model.task
    keys = all_keys()
    return {k: _check_value(k, _toml_form(v), keys[k][0], where) for k, v in out.items()}


def _toml_form(value: Any) -> Any:
    if value is None:
        return NONE
    if isinstance(value, tuple):
        return list(value)
    return value


def _toml_value(value: Any) -> str:
    """One TOML value: a bool, integer, float, string or flat list of them."""
    if value is None:
        return f'"{NONE}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)  # the shortest round-trip form; TOML wants a digit after the point
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return '"' + "".join(_escape(c) for c in value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _escape(c: str) -> str:
    if c == '"':
        return '\\"'
    if c == "\\":
        return "\\\\"
    if c == "\t":
        return c
    if ord(c) < 0x20 or ord(c) == 0x7F:
        return f"\\u{ord(c):04X}"
    return c


def to_toml(settings: Mapping[str, Any], *, comment: str = "") -> str:
    """Settings (config keys -> Python values) as a flat TOML file that :func:`read_config` reads
    back to the same values: the training settings first, then the command's."""
    keys = all_keys()
    unknown = [k for k in settings if k not in keys]
    if unknown:
        raise InvalidInputError(f"Unknown config key(s) {unknown}; the keys are listed in docs/config.md.")
    lines = [f"# {line}" for line in comment.splitlines()] if comment else []
    train = [k for k in _field_docs() if k in settings]
    other = [k for k in COMMAND_KEYS if k in settings]
    if train:
        lines.append("# training settings (TrainingConfig)")
        lines += [f"{k} = {_toml_value(settings[k])}" for k in train]
    if other:
        lines.append("# network, data and run settings of the train command")
        lines += [f"{k} = {_toml_value(settings[k])}" for k in other]
    return "\n".join(lines) + "\n"


def config_markdown() -> str:
    """``docs/config.md``: every config key with its type, default and description."""
    defaults = TrainingConfig()
    out = ["# Config files: `train --config FILE.toml`", "",
           "<!-- Generated by `python -m deepcircuit.learning.config_file > docs/config.md` from",
           "     TrainingConfig's fields and docstring; tests/test_config_file.py checks it is current. -->", "",
           "`deepcircuit train --config FILE.toml` reads settings from a flat TOML file (`key = value`",
           "lines, `#` comments). `--config-from MODEL.json` takes a trained model's settings (its",
           "training settings, family, topology, hidden sizes, gamma, task or data file and split",
           "settings). Options given on the command line override both (`--task` or `--data` replaces",
           "the file's task or data file); where both are given, `--config-from` is applied first and",
           "`--config` over it. `--print-config` prints the settings a run would use (the data set's",
           "defaults, the files and the options resolved) as a file `--config` accepts, and exits",
           "without training; `train --config-from MODEL.json --print-config` shows a model's settings",
           "as such a file:", "",
           "```bash",
           "deepcircuit train --task iris --eta 3 --print-config > iris.toml   # edit, then:",
           "deepcircuit train --task iris --config iris.toml --out runs/iris",
           "deepcircuit train --task iris --config-from runs/iris/seed0.json --seed 10 --seeds 5   # the same settings, new seeds",
           "```", "",
           "An unknown key is refused with the key named and the close matches; a value of the wrong",
           'type with the key named. Settings that may be unset take the string `"none"` (for example',
           '`batch_size = "none"`: one batch of every presentation). Values are checked as when they are',
           "given in Python (`TrainingConfig`) or on the command line. File paths (`data`, `test`, an",
           "edge-list `topology`) are relative to the folder the command runs in.", "",
           "## Training settings (`TrainingConfig`)", "",
           "Defaults are `TrainingConfig()`'s (the `paper` preset); a run starts from its preset and its",
           "data set's defaults (`docs/data.md`), and the file changes what it names.", "",
           "| key | type | default | meaning |", "|---|---|---|---|"]
    for name, (type_text, doc) in _field_docs().items():
        default = getattr(defaults, name)
        out.append(f"| `{name}` | {_md_type(type_text)} | `{_toml_value(default)}` | {_md(doc)} |")
    out += ["", "## Network, data and run settings of `train`", "", "| key | type | meaning |", "|---|---|---|"]
    for name, (type_text, doc) in COMMAND_KEYS.items():
        out.append(f"| `{name}` | {_md_type(type_text)} | {_md(doc)} |")
    return "\n".join(out) + "\n"


def _md(doc: str) -> str:
    """reStructuredText of a docstring as the cell of a Markdown table."""
    doc = re.sub(r":(?:class|func|meth|data|mod|attr):`~?(?:[\w.]+\.)?([\w]+)`", r"``\1``", doc)
    return doc.replace("``", "`").replace("|", "\\|")


def split_settings(settings: Mapping[str, Any]) -> tuple[dict, dict]:
    """Config settings as ``(TrainingConfig fields, the command's keys)``."""
    names = {f.name for f in fields(TrainingConfig)}
    return ({k: v for k, v in settings.items() if k in names},
            {k: v for k, v in settings.items() if k not in names})


def _md_type(type_text: str) -> str:
    kinds = [k for k in (t.strip() for t in type_text.split("|")) if k != "None"]
    names = {"int": "integer", "float": "number", "bool": "true/false", "str": "string",
             "tuple": "list of strings", "list[int]": "list of integers"}
    text = " or ".join(names.get(k, k) for k in kinds)
    return text + (' or `"none"`' if "None" in type_text else "")


if __name__ == "__main__":  # pragma: no cover
    print(config_markdown(), end="")
