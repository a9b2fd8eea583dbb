"""The documentation site builds with `mkdocs build --strict`, has every page and every API and hook entry, and
has no dead link; a broken link fails the build.

mkdocs.yml turns every link check of mkdocs (missing page, unknown anchor, unrecognised relative link) into a
warning, and `strict` turns a warning into a failed build. The built HTML is then checked here too: every
relative link and image of a page's content points at a file of the site (and an anchor of it), which also
catches links to files the build leaves out (the notebook). Without mkdocs the tests skip, except under CI.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

import tlcore
from tlcore import errors, hookspecs, specs, testing

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONFIG = ROOT / "mkdocs.yml"
# mkdocs, the material theme, mkdocstrings' Python handler: the `docs` extra of pyproject.toml
NEEDED = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _missing_tools() -> list[str]:
    missing = []
    for name in NEEDED:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


def _require_tools() -> None:
    missing = _missing_tools()
    if not missing:
        return
    message = f"the site needs {', '.join(missing)}: pip install -e '.[docs]'"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"under CI the docs site must build: {message}")
    pytest.skip(message)


def build(config: Path, site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-f", str(config), "-d", str(site)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


class _TolerantLoader(yaml.SafeLoader):
    """mkdocs.yml with its `!!python/...` tags read as plain values (only the nav is needed here)."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_TolerantLoader.add_multi_constructor("tag:yaml.org,2002:python/", _any_tag)


def nav_files() -> list[str]:
    """Every page of mkdocs.yml's nav, as a path under docs/."""
    nav = yaml.load(CONFIG.read_text(encoding="utf-8"), Loader=_TolerantLoader)["nav"]  # a SafeLoader

    def walk(items: list[Any]) -> list[str]:
        out: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            out.extend(walk(value) if isinstance(value, list) else [value])
        return out

    return walk(nav)


def page_html(site: Path, doc: str) -> Path:
    """The built page of docs/<doc> (directory URLs: guide/data.md -> guide/data/index.html)."""
    stem = doc.removesuffix(".md")
    return site / ("index.html" if stem == "index" else f"{stem.removesuffix('/index')}/index.html")


def ids(page: Path) -> set[str]:
    return {html.unescape(m) for m in re.findall(r'\sid="([^"]+)"', page.read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require_tools()
    out = tmp_path_factory.mktemp("site") / "site"
    result = build(CONFIG, out, ROOT)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


def test_every_markdown_file_under_docs_is_in_the_nav() -> None:
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    nav = nav_files()
    assert sorted(set(nav)) == sorted(nav), f"a page is twice in the nav: {nav}"
    assert sorted(nav) == pages, f"in docs/ but not in the nav: {sorted(set(pages) - set(nav))}; " + (
        f"in the nav but not in docs/: {sorted(set(nav) - set(pages))}"
    )


def test_every_nav_page_is_built(site: Path) -> None:
    missing = [doc for doc in nav_files() if not page_html(site, doc).is_file()]
    assert not missing, f"no built page for {missing}"
    index = (site / "index.html").read_text(encoding="utf-8")
    for link in ("guide/data/", "api/", "reference/", "plugins/hooks/", "results/", "changelog/"):
        assert f'href="{link}"' in index, f"the home page does not link {link}"


def test_the_changelog_page_is_the_changelog(site: Path) -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    sections = re.findall(r"^### (\w+)", text, flags=re.M)
    assert "## [Unreleased]" in text and "Added" in sections
    page = page_html(site, "changelog.md").read_text(encoding="utf-8")
    assert ">Unreleased<" in page and 'id="added"' in page


def public_api() -> dict[str, str]:
    """Each public name of tlcore, tlcore.errors, tlcore.specs' classes and tlcore.testing's checks -> the pattern
    of its anchor: a name of `tlcore` is documented under `tlcore.NAME` or where it is defined, `tlcore.MODULE.NAME`
    (`tlcore.train` is `tlcore.api.train`)."""
    entries: dict[str, str] = {}
    for name in tlcore.__all__:
        if name != "__version__":
            entries[f"tlcore.{name}"] = rf"tlcore(\.[a-z_]+)?\.{re.escape(name)}"
    for module in (errors, specs):
        for name, obj in vars(module).items():
            if isinstance(obj, type) and obj.__module__ == module.__name__ and not name.startswith("_"):
                entries[f"{module.__name__}.{name}"] = re.escape(f"{module.__name__}.{name}")
    for name in testing.__all__:
        if callable(getattr(testing, name)):
            entries[f"tlcore.testing.{name}"] = re.escape(f"tlcore.testing.{name}")
    return entries


HOOKS = sorted(name for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, "tlcore_spec"))


def test_the_reference_has_an_entry_for_every_public_name(site: Path) -> None:
    entries = public_api()
    assert {"tlcore.train", "tlcore.Run", "tlcore.errors.TlcoreError", "tlcore.testing.check_plugin"} <= set(entries)
    anchors = ids(page_html(site, "reference.md"))
    missing = sorted(name for name, anchor in entries.items() if not any(re.fullmatch(anchor, a) for a in anchors))
    assert not missing, f"docs/reference.md renders no entry for {missing}"


def test_every_hook_has_an_entry_on_the_hooks_page_and_in_the_reference(site: Path) -> None:
    assert len(HOOKS) >= 7 and "resolve_backbone" in HOOKS
    hooks_page = ids(page_html(site, "plugins/hooks.md"))
    reference = ids(page_html(site, "reference.md"))
    assert [h for h in HOOKS if h not in hooks_page] == [], "a hook without its section on the hooks page"
    assert [h for h in HOOKS if f"tlcore.hookspecs.{h}" not in reference] == [], "a hook without a reference entry"


def content_links(page: Path) -> list[str]:
    """href and src of a page's article (the theme's own links left out)."""
    text = page.read_text(encoding="utf-8")
    start = text.find("<article")
    article = text[start : text.find("</article>", start)]
    assert start >= 0 and article, f"{page}: no article"
    return [html.unescape(u) for u in re.findall(r'\s(?:href|src)="([^"]*)"', article)]


def test_no_dead_link_in_the_built_site(site: Path) -> None:
    dead: list[str] = []
    checked = 0
    for doc in nav_files():
        page = page_html(site, doc)
        for link in content_links(page):
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:")):
                continue
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.is_file() or site.resolve() not in target.resolve().parents:
                dead.append(f"{doc}: {link} (no file)")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in ids(target):
                dead.append(f"{doc}: {link} (no anchor)")
    assert checked > 50, f"only {checked} links checked: is the article found?"
    assert not dead, "dead links in the site:\n" + "\n".join(dead)


def test_a_broken_link_or_anchor_fails_the_build(tmp_path: Path) -> None:
    """The same config on a copy of docs/ with a link to a missing page and one to a missing anchor."""
    _require_tools()
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(CONFIG, tmp_path / "mkdocs.yml")
    shutil.copy(ROOT / "CHANGELOG.md", tmp_path / "CHANGELOG.md")
    (tmp_path / "tlcore").symlink_to(ROOT / "tlcore", target_is_directory=True)
    page = tmp_path / "docs" / "guide" / "data.md"
    page.write_text(
        page.read_text(encoding="utf-8") + "\n[gone](no-such-page.md) and [lost](training.md#no-such-anchor)\n",
        encoding="utf-8",
    )
    result = build(tmp_path / "mkdocs.yml", tmp_path / "site", tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"a broken link did not fail the build:\n{output}"
    assert "no-such-page.md" in output and "no-such-anchor" in output, output
