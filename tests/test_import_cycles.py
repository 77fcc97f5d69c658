"""No import cycles among deepcircuit's modules (docs/architecture.md, "Layers").

Every module under ``deepcircuit/`` is parsed with :mod:`ast`; every import of a deepcircuit
module in it, at module level or inside a function (a lazy import is still a dependency), is an
edge of the import graph, resolved to the module it names (``from . import x`` to the module
``x`` when there is one). A cycle means neither module can be read or tested alone; the layers
test (test_layers.py) cannot see one inside a layer. Imports through
``importlib.import_module`` (the substrate registry, the package's lazy public names) are not
edges: they name a module at run time, by string.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import deepcircuit
from test_layers import ROOT_CONSTANTS, _modules, _tree

def _resolve(name: str, modules: set[str]) -> str | None:
    """The module of ``modules`` that an import of ``name`` loads: ``name`` itself, or the
    nearest package above it (``name`` is then an attribute of that package)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def _imported(tree: ast.AST, module: str, is_pkg: bool, modules: set[str], root: str):
    """(line, imported module) for every import of a module of ``modules`` in ``tree``."""
    package = module.split(".") if is_pkg else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for al in node.names:
                target = _resolve(al.name, modules)
                if target is not None:
                    yield node.lineno, target
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for al in node.names:
                if base == root and al.name in ROOT_CONSTANTS:
                    continue  # a constant of the package root, not its API (see test_layers.py)
                target = _resolve(f"{base}.{al.name}", modules)
                if target is not None:
                    yield node.lineno, target


def import_graph(package_dir: Path, root: str = "deepcircuit") -> nx.DiGraph:
    """Importer -> imported module, each edge with the ``lines`` of the importer that import it."""
    found = {module: (path, is_pkg) for path, module, is_pkg in _modules(package_dir, root)}
    graph = nx.DiGraph()
    graph.add_nodes_from(found)
    for module, (path, is_pkg) in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in _imported(tree, module, is_pkg, set(found), root):
            if target != module:
                if not graph.has_edge(module, target):
                    graph.add_edge(module, target, lines=[])
                graph.edges[module, target]["lines"].append(line)
    return graph


def cycle_groups(graph: nx.DiGraph) -> list[frozenset]:
    """The groups of modules that import one another (strongly connected components of more
    than one module)."""
    return [frozenset(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]


def describe(graph: nx.DiGraph, group) -> str:
    """One line: the group's modules, and one cycle through them with the importing lines."""
    names = sorted(group)
    cycle = nx.find_cycle(graph.subgraph(names), source=names[0])
    steps = [f"{a}:{min(graph.edges[a, b]['lines'])}" for a, b in cycle]
    return f"{{{', '.join(names)}}}: " + " -> ".join(steps + [cycle[0][0]])


def import_cycles(graph: nx.DiGraph) -> list[str]:
    """One line per cycle group (see :func:`describe`), sorted."""
    return sorted(describe(graph, g) for g in cycle_groups(graph))


def test_the_package_has_no_import_cycle():
    graph = import_graph(Path(deepcircuit.__file__).parent)
    assert import_cycles(graph) == []


def test_the_substrates_have_no_import_cycle():
    """The Brian2 substrates share their pieces
    through two lower modules (issue 24): brian2_common (Brian2 itself, the equations), which
    imports no other brian2_* module, and brian2_build (compiled programs) above it."""
    graph = import_graph(Path(deepcircuit.__file__).parent)
    substrates = graph.subgraph([m for m in graph if m.startswith("deepcircuit.substrates")])
    assert import_cycles(substrates) == []
    assert [m for m in graph.successors("deepcircuit.substrates.brian2_common")
            if m.startswith("deepcircuit.substrates.brian2_")] == []


GOOD = {
    "errors.py": "class E(Exception): pass\n",
    "substrates/a.py": "from ..errors import E\nfrom .. import __version__\n",
    "substrates/b.py": "from . import a\nimport deepcircuit.substrates.a\n",
    "substrates/c.py": "from .b import x\ndef f():\n    from deepcircuit.substrates import b\n",
}


def test_checker_accepts_a_graph_without_cycles(tmp_path):
    graph = import_graph(_tree(tmp_path, GOOD))
    assert import_cycles(graph) == []
    assert graph.edges["deepcircuit.substrates.b", "deepcircuit.substrates.a"]["lines"] == [1, 2]
    assert graph.edges["deepcircuit.substrates.c", "deepcircuit.substrates.b"]["lines"] == [1, 3]
    assert not graph.has_edge("deepcircuit.substrates.a", "deepcircuit")  # __version__ is a constant


def test_checker_finds_a_cycle_through_a_lazy_import(tmp_path):
    files = dict(GOOD)
    files["substrates/a.py"] += "def g():\n    from .c import y\n"
    assert import_cycles(import_graph(_tree(tmp_path, files))) == [
        "{deepcircuit.substrates.a, deepcircuit.substrates.b, deepcircuit.substrates.c}: "
        "deepcircuit.substrates.a:4 -> deepcircuit.substrates.c:1 -> deepcircuit.substrates.b:1 "
        "-> deepcircuit.substrates.a"]


def test_checker_sees_a_package_importing_its_module_back(tmp_path):
    files = {**GOOD, "substrates/__init__.py": "from .a import E\n",
             "substrates/a.py": "from deepcircuit.substrates import E\n"}
    (cycle,) = import_cycles(import_graph(_tree(tmp_path, files)))
    assert cycle.startswith("{deepcircuit.substrates, deepcircuit.substrates.a}")
