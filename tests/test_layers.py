"""Imports only go down the layers (docs/architecture.md, "Layers").

Every module under ``deepcircuit/`` is parsed with :mod:`ast`; every import in it, at module level
or inside a function (lazy imports count the same), is resolved to an absolute module and its
layer compared with the importer's. A module in no layer fails the test too, so a new module
gets a place before it lands.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import deepcircuit

# Bottom to top. A module may import its own layer and any layer below it.
LAYERS = ["bottom", "model", "data", "substrates", "learning", "stability", "studies", "cli", "entry"]
BOTTOM = {"errors", "_validation", "limits", "atomic_files"}
SUBPACKAGES = {"model", "data", "substrates", "learning", "stability", "studies", "cli"}
# Names that may be taken from the package root by any layer (constants, not the API).
ROOT_CONSTANTS = {"__version__"}


def layer_of(module: str, root: str = "deepcircuit") -> str | None:
    """The layer of an absolute module name inside ``root``, or None if it has no place."""
    if module == root:
        return "entry"
    parts = module.split(".")
    if parts[0] != root:
        return None
    head = parts[1]
    if head == "__main__":
        return "entry"
    if head in BOTTOM and len(parts) == 2:
        return "bottom"
    if head in SUBPACKAGES:
        return head
    return None


def _modules(package_dir: Path, root: str):
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        yield path, ".".join([root, *parts]), is_pkg


def _imports(tree: ast.AST, module: str, is_pkg: bool, root: str):
    """(line, imported absolute module) for every import of ``root`` in ``tree``."""
    package = module.split(".") if is_pkg else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for al in node.names:
                if al.name.split(".")[0] == root:
                    yield node.lineno, al.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != root:
                continue
            if target == root:  # `from deepcircuit import x`: x decides
                for al in node.names:
                    if al.name not in ROOT_CONSTANTS:
                        yield node.lineno, f"{root}.{al.name}" if al.name in SUBPACKAGES | BOTTOM else root
            else:
                yield node.lineno, target


def layer_violations(package_dir: Path, root: str = "deepcircuit") -> list[str]:
    """One line per import that goes up a layer, and per module that has no layer."""
    problems = []
    for path, module, is_pkg in _modules(package_dir, root):
        mine = layer_of(module, root)
        if mine is None:
            problems.append(f"{module}: in no layer (put it in a subpackage, see docs/architecture.md)")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in _imports(tree, module, is_pkg, root):
            theirs = layer_of(target, root)
            if theirs is None:
                problems.append(f"{module}:{line} imports {target}, which is in no layer")
            elif LAYERS.index(theirs) > LAYERS.index(mine):
                problems.append(f"{module}:{line} ({mine}) imports {target} ({theirs}), a higher layer")
    return problems


def test_the_package_imports_only_down():
    problems = layer_violations(Path(deepcircuit.__file__).parent)
    assert problems == [], "\n".join(problems)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "deepcircuit"
    for rel, text in files.items():
        f = pkg / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    for d in [pkg, *[p for p in pkg.rglob("*") if p.is_dir()]]:
        (d / "__init__.py").touch()
    return pkg


GOOD = {
    "errors.py": "class E(Exception): pass\n",
    "model/network.py": "from ..errors import E\n",
    "substrates/ode.py": "from ..model.network import E\nfrom . import base\n",
    "substrates/base.py": "",
    "learning/training.py": "from ..substrates import ode\nfrom .. import __version__\n",
    "cli/train.py": "from ..learning.training import x\nfrom . import sweeps\n",
}


def test_checker_accepts_downward_imports(tmp_path):
    assert layer_violations(_tree(tmp_path, GOOD)) == []


@pytest.mark.parametrize("where, bad, layers", [
    # a lazy import inside a function counts
    ("model/network.py", "def f():\n    from ..learning import training\n", "(model) imports deepcircuit.learning (learning)"),
    ("data/tasks.py", "from ..substrates.ode import OdeSubstrate\n", "(data) imports deepcircuit.substrates.ode (substrates)"),
    ("substrates/spice.py", "from ..learning.training import TrainingConfig\n", "(substrates) imports deepcircuit.learning.training"),
    ("substrates/spice.py", "from .. import learning\n", "(substrates) imports deepcircuit.learning (learning)"),
    ("stability/lyapunov.py", "import deepcircuit.studies.plots\n", "(stability) imports deepcircuit.studies.plots (studies)"),
    ("studies/report.py", "from deepcircuit.cli import train\n", "(studies) imports deepcircuit.cli (cli)"),
    ("learning/training.py", "from .. import train\n", "(learning) imports deepcircuit (entry)"),
])
def test_checker_finds_an_upward_import(tmp_path, where, bad, layers):
    files = dict(GOOD)
    files[where] = files.get(where, "") + bad
    problems = layer_violations(_tree(tmp_path, files))
    assert len(problems) == 1 and layers in problems[0], problems


def test_checker_finds_a_module_with_no_layer(tmp_path):
    problems = layer_violations(_tree(tmp_path, {**GOOD, "sweep_thing.py": "from .errors import E\n"}))
    assert problems == ["deepcircuit.sweep_thing: in no layer (put it in a subpackage, see docs/architecture.md)"]
