"""constraints-min.txt pins every declared floor, and nothing else, so ``.ci/min-versions`` tests the floors.

Every requirement with a ``>=`` floor in ``dependencies`` of tlcore, tlcore-medical and tlcore-agriculture, and
in the extras that ``.ci/min-versions`` installs, must be pinned in constraints-min.txt to exactly that floor
(``name==floor``, the floor as the pyproject writes it). A changed floor without a changed pin fails here. The
file pins nothing else except the transitive pins in ``TRANSITIVE``, each with a comment on its line. The
three distributions themselves install from the checkout and are not pinned. Nothing is installed or imported.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]
CONSTRAINTS = ROOT / "constraints-min.txt"
SCRIPT = ROOT / ".ci" / "min-versions"
PYPROJECTS = {
    "tlcore": ROOT / "pyproject.toml",
    "tlcore-medical": ROOT / "plugins/medical/pyproject.toml",
    "tlcore-agriculture": ROOT / "plugins/agriculture/pyproject.toml",
}
OWN = set(PYPROJECTS)

#: Pins of packages that no pyproject declares, allowed in constraints-min.txt (and why).
TRANSITIVE: dict[str, str] = {}


def extras_installed() -> dict[str, set[str]]:
    """distribution -> the extras .ci/min-versions installs: its ``TLCORE_EXTRAS="a,b"`` (``MEDICAL_``,
    ``AGRICULTURE_``) lines."""
    found = re.findall(r'^([A-Z]+)_EXTRAS="([a-z0-9,-]*)"$', SCRIPT.read_text(encoding="utf-8"), re.MULTILINE)
    names = {"TLCORE": "tlcore", "MEDICAL": "tlcore-medical", "AGRICULTURE": "tlcore-agriculture"}
    return {names[key]: set(filter(None, value.split(","))) for key, value in found}


def floors() -> dict[str, str]:
    """name -> floor of every ``>=`` requirement that the min-versions environment installs."""
    found: dict[str, tuple[str, str]] = {}
    for project, path in PYPROJECTS.items():
        meta = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
        optional = meta.get("optional-dependencies", {})
        extras = extras_installed().get(project, set())
        assert extras <= set(optional), f"{project}: .ci/min-versions installs unknown extras {extras - set(optional)}"
        requirements = [*meta["dependencies"], *(r for e in sorted(extras) for r in optional[e])]
        for text in requirements:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            if name in OWN:
                continue
            lower = [s.version for s in req.specifier if s.operator == ">="]
            if not lower:
                continue
            (floor,) = lower
            if name in found:
                other, where = found[name]
                assert other == floor, f"{name}: floor {floor} in {project}, {other} in {where}"
            found[name] = (floor, project)
    return {name: floor for name, (floor, _) in found.items()}


def pins() -> dict[str, tuple[str, str]]:
    """name -> (pinned version, the line's comment) of constraints-min.txt."""
    pinned: dict[str, tuple[str, str]] = {}
    for number, line in enumerate(CONSTRAINTS.read_text(encoding="utf-8").splitlines(), 1):
        body, _, comment = line.partition("#")
        if not body.strip():
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([0-9][A-Za-z0-9.]*)", body.strip())
        assert match, f"constraints-min.txt:{number}: {line!r} is not name==version"
        name = canonicalize_name(match.group(1))
        assert name not in pinned, f"constraints-min.txt:{number}: {name} pinned twice"
        pinned[name] = (match.group(2), comment.strip())
    return pinned


def test_every_floor_is_pinned_to_itself() -> None:
    declared, pinned = floors(), pins()
    assert declared, "no floors found"
    wrong = {n: (f, pinned.get(n, ("missing",))[0]) for n, f in declared.items() if pinned.get(n, ("",))[0] != f}
    assert not wrong, f"floor -> pin in constraints-min.txt differs: {wrong}"


def test_nothing_else_is_pinned() -> None:
    declared, pinned = floors(), pins()
    extra = set(pinned) - set(declared) - set(TRANSITIVE)
    assert not extra, f"constraints-min.txt pins {sorted(extra)}, which no installed requirement declares a floor for"
    for name in TRANSITIVE:
        assert name in pinned and pinned[name][1], f"{name}: a transitive pin needs a comment on its line"


def test_the_script_installs_the_checkout_with_the_constraints() -> None:
    text = SCRIPT.read_text(encoding="utf-8")
    assert "--constraint" in text and "constraints-min.txt" in text
    assert '-e "$ROOT[$TLCORE_EXTRAS]"' in text and '-e "$ROOT/plugins/medical[$MEDICAL_EXTRAS]"' in text
    assert '-e "$ROOT/plugins/agriculture"' in text and "AGRICULTURE_EXTRAS" not in text
    assert CONSTRAINTS.read_text(encoding="utf-8").startswith("#")  # the header on how to use it
