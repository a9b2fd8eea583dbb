"""The versioned hook contract: a plugin declares ``TLCORE_HOOKS``, and tlcore loads it only if it speaks that contract.

Entry-point plugins are made without pip: a module and a ``*.dist-info`` folder (METADATA, entry_points.txt) in
a temporary folder put on ``sys.path``, which ``importlib.metadata`` reads like an installed distribution.
"""

from __future__ import annotations

import json
import sys
import tomllib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from packaging.requirements import Requirement

import tlcore
from tlcore import hookspecs
from tlcore.plugins import HOOKS_ATTRIBUTE, PluginHost, PluginInfo, contract_problem
from tlcore.scaffold import module_name, render, tlcore_requirement
from tlcore.specs import Preset
from tlcore.testing import check_hooks_version, check_plugin

ROOT = Path(__file__).resolve().parents[1]
Tl = Callable[..., tuple[int, str, str]]
Install = Callable[[str, str | None], None]

MAJOR_MINOR = tlcore.HOOKS_VERSION
MAJOR, MINOR = (int(part) for part in MAJOR_MINOR.split("."))
NEWER_MINOR = f"{MAJOR}.{MINOR + 1}"
NEWER_MAJOR = f"{MAJOR + 1}.0"

PLUGIN_SOURCE = '''\
"""A plugin written by tests/test_plugin_contract_version.py: one preset, __NAME__/recipe."""

from tlcore import hookimpl
from tlcore.specs import Preset
__DECLARATION__

@hookimpl
def register_presets(register):
    register(Preset(name="__NAME__/recipe", description="__NAME__ recipe", settings={"epochs": 1},
                    extends="feature-extraction"))
'''


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(name, declaration)``: an entry-point plugin ``name`` (distribution ``tlcore-ctest-NAME`` 3.1.4)
    whose module declares ``TLCORE_HOOKS = declaration`` (``None``: declares nothing). Only the plugins installed
    here load (``TLCORE_LOAD_PLUGINS``)."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("TLCORE_DISABLE_PLUGINS", raising=False)
    names: list[str] = []

    def add(name: str, declaration: str | None) -> None:
        module = f"tlcore_ctest_{name}"
        line = "" if declaration is None else f"\n{HOOKS_ATTRIBUTE} = {declaration!r}\n"
        source = PLUGIN_SOURCE.replace("__NAME__", name).replace("__DECLARATION__", line)
        (site / f"{module}.py").write_text(source)
        dist_info = site / f"tlcore_ctest_{name}-3.1.4.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tlcore-ctest-{name}\nVersion: 3.1.4\n")
        (dist_info / "entry_points.txt").write_text(f"[tlcore]\n{name} = {module}\n")
        names.append(name)
        monkeypatch.setenv("TLCORE_LOAD_PLUGINS", ",".join(names))

    yield add
    for name in names:
        sys.modules.pop(f"tlcore_ctest_{name}", None)


def info(host: PluginHost, name: str) -> PluginInfo:
    return next(i for i in host.plugins() if i.name == name)


def built_for(declared: str, fix: str, core: str | None = None) -> str:
    """The reason a plugin built for ``declared`` is not loaded by a core speaking ``core`` (default: this one's)."""
    return f"built for hook contract {declared}, this tlcore ({tlcore.__version__}) speaks {core or MAJOR_MINOR}: {fix}"


# -- the rule ------------------------------------------------------------------------------------------------


def test_the_contract_version_is_major_minor_and_importable_from_tlcore() -> None:
    assert tlcore.HOOKS_VERSION == hookspecs.HOOKS_VERSION
    assert "HOOKS_VERSION" in tlcore.__all__
    assert (MAJOR, MINOR) >= (1, 0)


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ("1.0", None),
        ("1.2", None),
        ("1.3", "built for hook contract 1.3, this tlcore (V) speaks 1.2: upgrade tlcore, or install a plugin "
                "release for hook contract 1.2 or older"),
        ("2.0", "built for hook contract 2.0, this tlcore (V) speaks 1.2: upgrade tlcore, or install a plugin "
                "release for hook contract 1.x"),
        ("0.9", "built for hook contract 0.9, this tlcore (V) speaks 1.2: install a plugin release for hook "
                "contract 1.x, or a tlcore for 0.x"),
        ("1", "declares TLCORE_HOOKS = '1', not a hook contract version like '1.2': fix the plugin's declaration"),
        (1.2, "declares TLCORE_HOOKS = 1.2, not a string like '1.2': fix the plugin's declaration"),
    ],
)  # fmt: skip
def test_same_major_and_no_newer_minor_is_compatible(declared: object, problem: str | None) -> None:
    expected = problem.replace("(V)", f"({tlcore.__version__})") if problem else None
    assert contract_problem(declared, core="1.2") == expected


# -- entry-point plugins, in the host and in `tl` ------------------------------------------------------------


def test_tl_plugins_shows_why_a_plugin_was_not_loaded(
    tl: Tl, install: Install, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    install("future", NEWER_MAJOR)
    install("ahead", NEWER_MINOR)
    install("current", tlcore.HOOKS_VERSION)
    install("legacy", None)
    monkeypatch.setenv("COLUMNS", "400")  # one table row per plugin

    code, out, err = tl("plugins", "--json")
    assert (code, err) == (0, "")
    rows = {row["name"]: row for row in json.loads(out) if row["status"] != "disabled"}  # others: not in LOAD_PLUGINS
    assert sorted(rows) == ["ahead", "current", "future", "legacy"]
    future, ahead, current, legacy = rows["future"], rows["ahead"], rows["current"], rows["legacy"]
    assert (future["status"], future["hooks_version"], future["hooks"]) == ("incompatible", NEWER_MAJOR, [])
    assert (future["distribution"], future["version"]) == ("tlcore-ctest-future", "3.1.4")
    assert future["error"] == built_for(
        NEWER_MAJOR, f"upgrade tlcore, or install a plugin release for hook contract {MAJOR}.x"
    )
    assert (ahead["status"], ahead["hooks"]) == ("incompatible", [])
    assert ahead["error"] == built_for(
        NEWER_MINOR, f"upgrade tlcore, or install a plugin release for hook contract {tlcore.HOOKS_VERSION} or older"
    )
    assert (current["status"], current["hooks_version"], current["error"], current["note"]) == (
        "loaded", tlcore.HOOKS_VERSION, None, None)  # fmt: skip
    assert current["hooks"] == ["register_presets"]
    assert (legacy["status"], legacy["hooks_version"], legacy["error"]) == ("loaded", None, None)
    assert legacy["hooks"] == ["register_presets"]
    assert legacy["note"] == (
        f"declares no hook contract (TLCORE_HOOKS), so it was loaded unchecked; this tlcore speaks {MAJOR_MINOR}"
    )

    code, out, err = tl("plugins")
    assert (code, err) == (0, "")
    lines = {name: [line for line in out.splitlines() if f" {name} " in line] for name in rows}
    assert all(len(found) == 1 for found in lines.values()), out
    assert "incompatible" in lines["future"][0] and future["error"] in lines["future"][0]
    assert f" {NEWER_MAJOR} " in lines["future"][0]
    assert "incompatible" in lines["ahead"][0] and ahead["error"] in lines["ahead"][0]
    assert "loaded" in lines["current"][0] and "note" not in lines["current"][0]
    assert "loaded" in lines["legacy"][0] and f"note: {legacy['note']}" in lines["legacy"][0]
    assert " none " in lines["legacy"][0]  # the contract column

    # Other commands go on without the skipped plugins and do not warn about them.
    code, out, err = tl("list", "presets", "--json")
    assert (code, err) == (0, "")
    presets = {row["name"]: row["plugin"] for row in json.loads(out)}
    assert (presets["current/recipe"], presets["legacy/recipe"]) == ("current", "legacy")
    assert "future/recipe" not in presets and "ahead/recipe" not in presets
    assert presets["fine-tuning"] == "tlcore.default_plugins.presets"

    # Asking for a preset the skipped plugin would have given: one warning line that names it, then the error.
    code, out, err = tl("train", "--preset", "future/recipe", "--data", tmp_path, "--output", tmp_path / "run")
    assert code == 2
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: preset 'future/recipe' would come from plugin 'future', which was not loaded: {future['error']}"
    ], err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: unknown preset 'future/recipe' ("), err
    assert len(err.splitlines()) == 2, err
    assert not (tmp_path / "run").exists()

    # A name from a plugin that did load, but that does not exist, gets no such warning.
    code, _, err = tl("train", "--preset", "current/nothing", "--data", tmp_path)
    assert code == 2 and "warning" not in err and "unknown preset 'current/nothing'" in err


def test_an_older_minor_loads_and_a_newer_one_does_not(install: Install, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a core that speaks 1.2: plugins built for 1.0, 1.1 and 1.2 load, 1.3 and 2.0 do not."""
    monkeypatch.setattr(hookspecs, "HOOKS_VERSION", "1.2")
    monkeypatch.setattr(tlcore, "HOOKS_VERSION", "1.2")
    for name, declared in [("oldest", "1.0"), ("older", "1.1"), ("same", "1.2"), ("newer", "1.3"), ("next", "2.0")]:
        install(name, declared)

    host = PluginHost()

    for name, declared in [("oldest", "1.0"), ("older", "1.1"), ("same", "1.2")]:
        loaded = info(host, name)
        assert (loaded.status, loaded.hooks_version, loaded.error, loaded.note) == ("loaded", declared, None, None)
        assert host.presets.entry(f"{name}/recipe").plugin == name
    newer = info(host, "newer")
    fix = "upgrade tlcore, or install a plugin release for hook contract 1.2 or older"
    assert (newer.status, newer.hooks, newer.error) == ("incompatible", [], built_for("1.3", fix, core="1.2"))
    assert info(host, "next").status == "incompatible"
    assert host.pm.get_plugin("newer") is None and host.pm.get_plugin("next") is None  # never registered
    assert "newer/recipe" not in host.presets and "next/recipe" not in host.presets
    assert [i.name for i in host.incompatible()] == ["newer", "next"]
    assert host.failures() == []  # not "failed": the commands' failure warnings stay quiet


def test_an_in_memory_plugin_is_checked_the_same_way() -> None:
    def register_presets(register: Callable[[Preset], None]) -> None:
        register(Preset(name="mem/recipe", description="d", settings={}))

    host = PluginHost(load_entrypoints=False)
    assert not host.add_plugin(
        SimpleNamespace(TLCORE_HOOKS=NEWER_MAJOR, register_presets=tlcore.hookimpl(register_presets)), name="mem"
    )
    assert info(host, "mem").status == "incompatible"
    assert "mem/recipe" not in host.presets
    assert all(i.hooks_version == tlcore.HOOKS_VERSION and i.note is None for i in host.plugins() if i.default)


# -- the plugins tlcore ships and writes ---------------------------------------------------------------------


def tlcore_pin(pyproject: str) -> Requirement:
    dependencies = tomllib.loads(pyproject)["project"]["dependencies"]
    found = [Requirement(d) for d in dependencies if Requirement(d).name == "tlcore"]
    assert len(found) == 1, dependencies
    return found[0]


def assert_pin_speaks_this_contract(requirement: Requirement) -> None:
    """The range holds this tlcore (the editable dev install too) and stops before the next major."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert requirement.specifier.contains(version), (str(requirement), version)
    major = int(version.split(".")[0])
    assert not requirement.specifier.contains(f"{major + 1}.0.0"), str(requirement)
    assert requirement.specifier, f"{requirement} pins no range"


@pytest.mark.parametrize("plugin", ["medical", "agriculture"])
def test_the_bundled_plugins_declare_this_contract_and_pin_tlcore(plugin: str) -> None:
    module = __import__(f"tlcore_{plugin}")
    assert module.TLCORE_HOOKS == tlcore.HOOKS_VERSION
    check_hooks_version(module, plugin)
    assert_pin_speaks_this_contract(tlcore_pin((ROOT / "plugins" / plugin / "pyproject.toml").read_text()))
    if any(ep.name == plugin for ep in entry_points(group="tlcore")):
        host = PluginHost(load_entrypoints=False)
        assert host.add_plugin(module, name=plugin)
        assert (info(host, plugin).hooks_version, info(host, plugin).note) == (tlcore.HOOKS_VERSION, None)


def test_a_scaffolded_plugin_declares_this_contract_and_pins_tlcore() -> None:
    files = render("pinned")
    package = files[f"{module_name('pinned')}/__init__.py"]
    assert f'\nTLCORE_HOOKS = "{tlcore.HOOKS_VERSION}"\n' in package
    requirement = tlcore_pin(files["pyproject.toml"])
    assert f'"{tlcore_requirement()}"' in files["pyproject.toml"]
    assert_pin_speaks_this_contract(requirement)
    assert tlcore_requirement("0.4.2") == "tlcore>=0.4,<1"
    assert tlcore_requirement("2.1.0rc1") == "tlcore>=2.1,<3"
    assert "TLCORE_HOOKS" in files["README.md"]

    module = ModuleType("tlcore_pinned")
    exec(compile(package, "tlcore_pinned/__init__.py", "exec"), module.__dict__)
    check_hooks_version(module, "pinned")
    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(module, name="pinned")
    assert (info(host, "pinned").hooks_version, info(host, "pinned").note) == (tlcore.HOOKS_VERSION, None)


# -- tlcore.testing -----------------------------------------------------------------------------------------


def preset_plugin(**attributes: Any) -> SimpleNamespace:
    def register_presets(register: Callable[[Preset], None]) -> None:
        register(Preset(name="vers/recipe", description="a recipe", settings={}, extends="feature-extraction"))

    return SimpleNamespace(register_presets=tlcore.hookimpl(register_presets), **attributes)


def test_check_plugin_requires_a_compatible_declaration(tmp_path: Path) -> None:
    check_plugin(preset_plugin(TLCORE_HOOKS=tlcore.HOOKS_VERSION), name="vers", workdir=tmp_path)

    with pytest.raises(AssertionError) as error:
        check_plugin(preset_plugin(), name="vers", workdir=tmp_path)
    assert str(error.value) == (
        "plugin 'vers' breaks the tlcore plugin contract (1 problems):\n"
        f"  - plugin 'vers' declares no hook contract: add TLCORE_HOOKS = {tlcore.HOOKS_VERSION!r} to the plugin "
        "object (the contract of the tlcore it is built for, tlcore.HOOKS_VERSION)"
    )
    with pytest.raises(AssertionError, match=r"add TLCORE_HOOKS = .* to module tlcore_medical"):
        check_hooks_version(ModuleType("tlcore_medical"), "medical")

    with pytest.raises(AssertionError) as error:
        check_plugin(preset_plugin(TLCORE_HOOKS=NEWER_MINOR), name="vers", workdir=tmp_path)
    assert str(error.value) == "plugin 'vers' did not load: " + built_for(
        NEWER_MINOR, f"upgrade tlcore, or install a plugin release for hook contract {tlcore.HOOKS_VERSION} or older"
    )
