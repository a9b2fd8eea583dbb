"""The package's floors: no module imports a higher layer, and no imports go round in a cycle.

The imports are read with ``ast`` (nothing is imported): module-level and function-level ones alike,
since an import inside a function is how a cycle hides from the interpreter but not from the design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "tlcore"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: The layers from lowest to highest; a module belongs to the layer of its longest matching prefix.
#: A module may import its own layer or a lower one, never a higher one.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # The plugin contract and what every floor uses: errors (and the optional extras' one-line error), specs,
    # settings, files, runtime, caches, the plugin host.
    (
        "base",
        (
            "tlcore",
            "tlcore.errors",
            "tlcore.extras",
            "tlcore.images",
            "tlcore.specs",
            "tlcore.registry",
            "tlcore.io_atomic",
            "tlcore.run_dirs",
            "tlcore.cpu_memory",
            "tlcore.runtime",
            "tlcore.cache",
            "tlcore.config",
            "tlcore.recipes",
            "tlcore.catalog",
            "tlcore.hookspecs",
            "tlcore.plugins",
        ),
    ),
    ("data", ("tlcore.data",)),
    ("metrics", ("tlcore.metrics",)),
    ("models", ("tlcore.models",)),
    # The one path from a run directory and inputs to outputs: training's evaluation and every command use it.
    ("predict", ("tlcore.predict",)),
    # What a run writes and shows (predictions, plots, the HTML report, explanations, exports, stress).
    ("reports", ("tlcore.reports",)),
    ("training", ("tlcore.training",)),
    ("advise", ("tlcore.advice",)),
    # The core's own plugins: the host loads them by name, like any entry point, so nothing imports them.
    ("default_plugins", ("tlcore.default_plugins",)),
    # The Python API (train, load, Run): a thin layer over the library, just below the command line.
    ("api", ("tlcore.api",)),
    # Entry points: the command line (one module per command group) and the pytest plugin; nothing imports them.
    ("entry_points", ("tlcore.cli", "tlcore.scaffold", "tlcore.testing")),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}

#: The one import allowed to reach up, as (module, imported module, enclosing function): the package's
#: ``__init__`` imports the API inside its module ``__getattr__`` (PEP 562), so that ``tlcore.train`` works
#: while ``import tlcore``, which every plugin does for ``tlcore.hookimpl``, loads neither the API nor torch.
#: The same import anywhere else in ``__init__`` (module level, another function) is an upward import.
LAZY_EXPORT = (PACKAGE, f"{PACKAGE}.api", "__getattr__")


def module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def layer_of(module: str) -> str:
    best: tuple[int, str] | None = None
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            # The package itself ("tlcore") names only its __init__: a new top-level module must be placed.
            inside = module == prefix or (prefix != PACKAGE and module.startswith(prefix + "."))
            if inside and (best is None or len(prefix) > best[0]):
                best = (len(prefix), name)
    assert best is not None, f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}"
    return best[1]


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _nodes(node: ast.AST, function: str | None = None) -> Iterator[tuple[ast.AST, str | None]]:
    """Every node under ``node`` with the name of the outermost function it is in (None: module level)."""
    for child in ast.iter_child_nodes(node):
        inside = function
        if inside is None and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside = child.name
        yield child, inside
        yield from _nodes(child, inside)


def imports_of(module: str, path: Path, known: set[str]) -> Iterator[str]:
    """The package modules ``module`` imports; ``from pkg import name`` counts as ``pkg.name`` when that is a module.

    :data:`LAZY_EXPORT` alone is left out."""
    for node, function in _nodes(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, path, node)
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
        else:
            continue
        for target in targets:
            # `import tlcore.a.b` names tlcore.a.b; a name that is not a module stands for its nearest module.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module and (module, target, function) != LAZY_EXPORT:
                yield target


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {module: set(imports_of(module, path, known)) for module, path in files.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one node: each is an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _cycle_edges(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    inside = set(members)
    return [f"{a} -> {b}" for a in members for b in sorted(graph[a] & inside)]


def test_every_module_has_a_layer() -> None:
    for module in module_files():
        layer_of(module)


def test_no_import_reaches_a_higher_layer() -> None:
    upward = [
        f"{a} -> {b}  ({layer_of(a)} imports {layer_of(b)})"
        for a, targets in sorted(import_graph().items())
        for b in sorted(targets)
        if RANK[layer_of(b)] > RANK[layer_of(a)]
    ]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_no_import_cycle_between_modules() -> None:
    graph = import_graph()
    cycles = ["\n".join(_cycle_edges(graph, members)) for members in strongly_connected(graph)]
    assert not cycles, "import cycles:\n" + "\n\n".join(cycles)


def test_no_import_cycle_between_layers() -> None:
    # Implied by the rank rule; kept so that a change to LAYERS that merges two floors is still checked.
    graph = import_graph()
    layers: dict[str, set[str]] = {name: set() for name, _ in LAYERS}
    edges: dict[tuple[str, str], list[str]] = {}
    for a, targets in graph.items():
        for b in targets:
            la, lb = layer_of(a), layer_of(b)
            if la != lb:
                layers[la].add(lb)
                edges.setdefault((la, lb), []).append(f"{a} -> {b}")
    cycles = []
    for members in strongly_connected(layers):
        inside = set(members)
        pairs = [(la, lb) for la in members for lb in sorted(layers[la] & inside)]
        cycles.append("\n".join(f"{la} -> {lb}: {', '.join(sorted(edges[(la, lb)])[:3])}" for la, lb in pairs))
    assert not cycles, "import cycles between layers:\n" + "\n\n".join(cycles)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from tlcore import io_atomic", {"tlcore.io_atomic"}),
        ("from tlcore import hookimpl", {"tlcore"}),
        ("import tlcore.data.dataset", {"tlcore.data.dataset"}),
        ("def f():\n    from tlcore.training.run import run_training", {"tlcore.training.run"}),
        ("from ..data import dataset", {"tlcore.data.dataset"}),
    ],
)
def test_imports_are_read_as_meant(tmp_path: Path, source: str, expected: set[str]) -> None:
    path = tmp_path / "probe.py"
    path.write_text(source, encoding="utf-8")
    known = set(module_files())
    assert set(imports_of("tlcore.reports.probe", path, known)) == expected


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("tlcore", "def __getattr__(name):\n    from tlcore import api", set()),
        ("tlcore", "def __getattr__(name):\n    from tlcore.api import train", set()),
        ("tlcore", "from tlcore import api", {"tlcore.api"}),
        ("tlcore", "def other():\n    from tlcore.api import train", {"tlcore.api"}),
        ("tlcore", "def __getattr__(name):\n    from tlcore.cli import main", {"tlcore.cli"}),
        ("tlcore.data", "def __getattr__(name):\n    from tlcore import api", {"tlcore.api"}),
    ],
)
def test_only_the_package_getattr_imports_the_api(tmp_path: Path, module: str, source: str, expected: set[str]) -> None:
    path = tmp_path / "probe.py"
    path.write_text(source, encoding="utf-8")
    assert set(imports_of(module, path, set(module_files()))) == expected
