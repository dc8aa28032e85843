"""Imports run one way: cli → runner/api → {store, train, execute, report, serve} →
{model, data, config} → system, with leaf modules (errors, events, defaults, interrupts, fileio,
progress) usable anywhere.

Every ``import`` in ``src/munet`` counts, function-level and ``TYPE_CHECKING`` ones included.
A module may import its own layer or any layer below; areas of one layer (e.g. report and
store) may import each other only one way (no cycles between areas or between modules).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: The layer of each area (``munet.<area>``), top first.
LAYERS = {
    "cli": 5,
    "__main__": 5,
    "runner": 4,
    "api": 4,
    "munet": 4,  # the package itself: lazy re-exports of the API
    "store": 3,
    "train": 3,
    "execute": 3,
    "report": 3,
    "serve": 3,
    "model": 2,
    "data": 2,
    "config": 2,
    "system": 1,
    # leaves: import nothing from munet, so every layer may use them
    "errors": 0,
    "events": 0,
    "defaults": 0,
    "interrupts": 0,
    "fileio": 0,
    "progress": 0,
}

#: Modules whose layer is not their area's.
MODULE_LAYERS = {
    # the argparse of `munet predict/export/serve`: CLI code kept beside the server it drives
    "munet.serve.cli": 5,
}

#: Justified upward imports, (importer, imported): reason.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports() -> list[tuple[str, str, int]]:
    """(importer, imported module, line) for every munet import in src/munet; ``from a import
    b`` counts as importing ``a.b`` when that is a module."""
    paths = sorted((SRC / "munet").rglob("*.py"))
    modules = {module_name(p) for p in paths}
    out = []
    for path in paths:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [
                    f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module
                    for a in node.names
                    if not (module == "munet" and a.name == "__version__")
                    # `from munet import __version__` is package metadata, not the API
                ]
            else:
                continue
            out += [(name, t, node.lineno) for t in targets if t.split(".")[0] == "munet"]
    return out


def area(module: str) -> str:
    """``munet.<area>``, or the module itself where MODULE_LAYERS places it."""
    for name in MODULE_LAYERS:
        if module == name or module.startswith(name + "."):
            return name
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "munet"


def layer(module: str) -> int:
    return MODULE_LAYERS.get(area(module)) or LAYERS[area(module)]


def test_every_area_has_a_layer():
    unknown = {area(m) for edge in imports() for m in edge[:2]} - set(LAYERS) - set(MODULE_LAYERS)
    assert not unknown, f"give these areas a layer in LAYERS: {sorted(unknown)}"


def test_no_import_points_upward():
    upward = [
        f"{a}:{line} imports {b} (layer {layer(a)} -> {layer(b)})"
        for a, b, line in imports()
        if layer(b) > layer(a) and (a, b) not in EXCEPTIONS
    ]
    assert not upward, "\n".join(upward)


def test_exceptions_are_still_needed():
    edges = {(a, b) for a, b, _ in imports()}
    assert not set(EXCEPTIONS) - edges, "remove exceptions that no longer occur"


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_cycles_between_areas():
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b, _ in imports():
        if area(a) != area(b) and (a, b) not in EXCEPTIONS:
            graph[area(a)].add(area(b))
    assert _cycles(graph) == []


def test_no_cycles_between_modules():
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b, _ in imports():
        if b != a:
            graph[a].add(b)
    assert _cycles(graph) == [], "\n".join(" <-> ".join(sorted(c)) for c in _cycles(graph))
