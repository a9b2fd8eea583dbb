"""The plugin contract: defaults go through the hooks, and a bad plugin never hides the good ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import tlcore
from tlcore.plugins import PluginHost, PluginInfo
from tlcore.specs import Augmentation, Preset

DOMAIN_PLUGINS = ("agriculture", "medical")


def info(host: PluginHost, name: str) -> PluginInfo:
    found = [i for i in host.plugins() if i.name == name]
    assert found, f"plugin {name!r} not in {[i.name for i in host.plugins()]}"
    return found[0]


def plugin(**hooks: Callable[..., Any]) -> SimpleNamespace:
    """An in-memory plugin module: each keyword is a hook implementation."""
    return SimpleNamespace(**{name: tlcore.hookimpl(fn) for name, fn in hooks.items()})


def preset_plugin(*names: str, description: str = "") -> SimpleNamespace:
    def register_presets(register: Callable[[Preset], None]) -> None:
        for name in names:
            register(Preset(name=name, description=description, settings={"epochs": 1}))

    return plugin(register_presets=register_presets)


def domain_plugins_installed() -> bool:
    return {ep.name for ep in entry_points(group="tlcore")} >= set(DOMAIN_PLUGINS)


needs_domain_plugins = pytest.mark.skipif(
    not domain_plugins_installed(),
    reason="needs the medical and agriculture plugins: pip install -e plugins/medical -e plugins/agriculture",
)


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TLCORE_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("TLCORE_LOAD_PLUGINS", raising=False)


# -- the core's defaults ---------------------------------------------------------------------


def test_default_plugins_register_through_the_hooks() -> None:
    host = PluginHost(load_entrypoints=False)
    expected = {
        "adapters": {"image-folder": "datasets", "csv-manifest": "datasets"},
        "augmentations": {"standard": "augmentations"},
        "backbones": {"tf_efficientnet_lite0": "backbones"},
        "heads": {"linear": "heads", "logistic-regression": "heads"},
        "presets": {"feature-extraction": "presets", "fine-tuning": "presets"},
        "perturbations": {"blur": "perturbations", "zoom-in": "perturbations"},
        "loggers": {"mlflow": "loggers", "tensorboard": "loggers"},
    }
    registries = host.registries()
    for kind, names in expected.items():
        for name, module in names.items():
            assert registries[kind].entry(name).plugin == f"tlcore.default_plugins.{module}", (kind, name)

    defaults = host.plugins()
    assert [i.name for i in defaults] == [
        f"tlcore.default_plugins.{m}"
        for m in ("augmentations", "backbones", "datasets", "heads", "loggers", "perturbations", "presets")
    ]
    assert all(i.default and i.status == "loaded" and i.error is None for i in defaults)
    assert info(host, "tlcore.default_plugins.backbones").hooks == ["register_backbones", "resolve_backbone"]
    assert info(host, "tlcore.default_plugins.presets").hooks == ["register_presets"]
    assert info(host, "tlcore.default_plugins.perturbations").hooks == ["register_perturbations"]
    assert info(host, "tlcore.default_plugins.loggers").hooks == ["register_loggers"]
    assert host.failures() == []


def test_unregistered_timm_backbone_resolves_through_the_hook() -> None:
    host = PluginHost(load_entrypoints=False)
    assert "resnet34" not in host.backbones
    backbone = host.backbone("resnet34")
    assert (backbone.name, backbone.timm_name, backbone.default_weights) == ("resnet34", "resnet34", "hub")


def test_no_default_plugins() -> None:
    host = PluginHost(load_entrypoints=False, default_plugins=False)
    assert host.plugins() == []
    assert len(host.presets) == 0


# -- bad in-memory plugins -------------------------------------------------------------------


def test_duplicate_name_fails_the_second_plugin_and_keeps_the_first() -> None:
    class First:
        @tlcore.hookimpl
        def register_presets(self, register: Callable[[Preset], None]) -> None:
            register(Preset(name="shared/recipe", description="from first", settings={}))

    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(First(), name="first")
    assert host.add_plugin(preset_plugin("shared/recipe", description="from second"), name="second")

    entry = host.presets.entry("shared/recipe")
    assert (entry.plugin, entry.item.description) == ("first", "from first")
    assert info(host, "first").status == "loaded"
    second = info(host, "second")
    assert second.status == "failed"
    assert second.error is not None
    assert "'shared/recipe'" in second.error and "'first'" in second.error and "'second'" in second.error
    assert "fine-tuning" in host.presets  # the core's presets are untouched
    assert [i.name for i in host.failures()] == ["second"]


def test_plugin_cannot_take_over_a_core_name() -> None:
    """A plugin registered after the defaults that reuses a core name fails; the core keeps the name."""
    host = PluginHost(load_entrypoints=False)
    host.add_plugin(preset_plugin("fine-tuning", description="hijacked"), name="copycat")
    assert host.presets.entry("fine-tuning").plugin == "tlcore.default_plugins.presets"
    assert host.presets.get("fine-tuning").description != "hijacked"
    assert info(host, "tlcore.default_plugins.presets").status == "loaded"
    assert info(host, "copycat").status == "failed"
    assert "feature-extraction" in host.presets


def test_plugin_that_raises_in_a_hook_fails_alone() -> None:
    def explode(register: Callable[[Augmentation], None]) -> None:
        register(Augmentation(name="exploding/half", description="", build=lambda ctx: None))
        raise RuntimeError("boom")

    def healthy(register: Callable[[Augmentation], None]) -> None:
        register(Augmentation(name="healthy/aug", description="", build=lambda ctx: None))

    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(plugin(register_augmentations=explode), name="exploding")
    assert host.add_plugin(plugin(register_augmentations=healthy), name="healthy")

    augmentations = host.augmentations
    assert augmentations.entry("healthy/aug").plugin == "healthy"
    assert "standard" in augmentations
    assert "exploding/half" not in augmentations  # nothing from a hook call that raised
    failed = info(host, "exploding")
    assert failed.status == "failed"
    assert failed.error is not None
    assert "register_augmentations" in failed.error and "RuntimeError: boom" in failed.error
    assert info(host, "healthy").status == "loaded"


def test_plugin_that_registers_the_wrong_type_fails() -> None:
    host = PluginHost(load_entrypoints=False)
    host.add_plugin(plugin(register_presets=lambda register: register("fast")), name="sloppy")
    host.add_plugin(preset_plugin("ok/preset"), name="ok")
    assert "ok/preset" in host.presets
    sloppy = info(host, "sloppy")
    assert sloppy.status == "failed"
    assert sloppy.error is not None and "Preset" in sloppy.error and "str" in sloppy.error


def test_misspelled_hook_is_rejected_and_others_load() -> None:
    def register_preset(register: Callable[[Preset], None]) -> None:  # missing "s"
        register(Preset(name="typo/preset", description="", settings={}))

    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(preset_plugin("before/preset"), name="before")
    assert not host.add_plugin(plugin(register_preset=register_preset), name="typo")
    assert host.add_plugin(preset_plugin("after/preset"), name="after")

    typo = info(host, "typo")
    assert typo.status == "failed"
    assert typo.error is not None and "register_preset" in typo.error
    assert host.pm.get_plugin("typo") is None  # unregistered, so it cannot half-work
    assert {"before/preset", "after/preset", "fine-tuning"} <= set(host.presets.names())
    assert "typo/preset" not in host.presets
    assert info(host, "before").status == info(host, "after").status == "loaded"


def test_hook_with_wrong_arguments_is_rejected() -> None:
    def register_presets(reg: Callable[[Preset], None]) -> None:  # the hook passes `register`
        reg(Preset(name="wrong/args", description="", settings={}))

    host = PluginHost(load_entrypoints=False)
    assert not host.add_plugin(plugin(register_presets=register_presets), name="wrongargs")
    wrong = info(host, "wrongargs")
    assert wrong.status == "failed"
    assert wrong.error is not None and "reg" in wrong.error
    assert "wrong/args" not in host.presets
    assert "fine-tuning" in host.presets


# -- the installed domain plugins and the environment switches --------------------------------


@needs_domain_plugins
def test_domain_plugins_load_from_entry_points() -> None:
    host = PluginHost()
    for name in DOMAIN_PLUGINS:
        plugin_info = info(host, name)
        assert (plugin_info.status, plugin_info.default, plugin_info.error) == ("loaded", False, None)
        assert plugin_info.distribution == f"tlcore-{name}"
        assert plugin_info.version == "0.1.0"
    assert host.presets.entry("medical/chest-xray").plugin == "medical"
    assert host.adapters.entry("agriculture/plantvillage").plugin == "agriculture"
    assert host.failures() == []


@needs_domain_plugins
def test_disable_plugins_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLCORE_DISABLE_PLUGINS", " medical , nonexistent")
    host = PluginHost()
    medical = info(host, "medical")
    assert (medical.status, medical.distribution, medical.version) == ("disabled", "tlcore-medical", "0.1.0")
    assert info(host, "agriculture").status == "loaded"
    assert "medical/chest-xray" not in host.presets
    assert "medical/xray" not in host.augmentations
    assert "agriculture/leaf-disease" in host.presets
    assert "fine-tuning" in host.presets


@needs_domain_plugins
def test_load_plugins_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLCORE_LOAD_PLUGINS", "agriculture")
    host = PluginHost()
    assert info(host, "agriculture").status == "loaded"
    assert info(host, "medical").status == "disabled"
    assert "medical/chest-xray" not in host.presets
    assert "agriculture/leaf-disease" in host.presets

    monkeypatch.setenv("TLCORE_LOAD_PLUGINS", "")  # empty: no entry-point plugins, defaults only
    host = PluginHost()
    statuses = {i.name: i.status for i in host.plugins() if not i.default}
    assert all(statuses[name] == "disabled" for name in DOMAIN_PLUGINS)
    assert all(i.status == "loaded" for i in host.plugins() if i.default)
    assert host.presets.names() == ["feature-extraction", "fine-tuning"]


# -- the CLI (skipped until tlcore.cli imports) -------------------------------------------------


def host_description(kind: str, name: str) -> str:
    return str(PluginHost().registries()[kind].get(name).description)


@pytest.fixture(scope="module")
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    pytest.importorskip("tlcore.cli", reason="tlcore.cli is not written yet")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tlcore.cli", *args], capture_output=True, text=True,
                              env=_clean_env(), timeout=120)

    return run


def test_cli_plugins_and_list(cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    version = cli("--version")
    assert version.returncode == 0, version.stderr
    assert tlcore.__version__ in version.stdout

    result = cli("plugins", "--all", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    for row in plugins.values():
        assert set(row) == {
            "name", "version", "distribution", "hooks", "status", "error", "default", "hooks_version", "note"
        }
    assert plugins["tlcore.default_plugins.presets"]["default"] is True
    assert plugins["tlcore.default_plugins.presets"]["status"] == "loaded"
    assert plugins["tlcore.default_plugins.presets"]["hooks"] == ["register_presets"]
    assert plugins["tlcore.default_plugins.presets"]["hooks_version"] == tlcore.HOOKS_VERSION
    result = cli("list", "presets", "--json")
    assert result.returncode == 0, result.stderr
    presets = {p["name"]: p for p in json.loads(result.stdout)}
    assert set(presets["fine-tuning"]) == {"name", "description", "plugin"}
    assert presets["fine-tuning"]["plugin"] == "tlcore.default_plugins.presets"
    assert presets["feature-extraction"]["description"]

    if domain_plugins_installed():
        assert plugins["medical"]["status"] == plugins["agriculture"]["status"] == "loaded"
        result = cli("list", "adapters", "agri*", "--json")  # a shell pattern
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == [
            {"name": name, "description": host_description("adapters", name), "plugin": "agriculture"}
            for name in ("agriculture/aerial-tiles", "agriculture/plantvillage")
        ]


# -- real third-party distributions, installed with pip ----------------------------------------

THIRDPARTY_MODULE = '''
"""A third-party tlcore plugin, written by the test suite."""

from tlcore import hookimpl
from tlcore.specs import Augmentation, Backbone, DatasetAdapter, Head, LabeledDataset, Preset


def _load(root, options):
    return LabeledDataset(classes=["a", "b"], splits={"train": []}, root=root)


def _augment(ctx):
    from tlcore.data.transforms import eval_transform
    return eval_transform(ctx)


def _head(ctx):
    import torch
    return torch.nn.Linear(ctx.in_features, ctx.num_outputs)


@hookimpl
def register_dataset_adapters(register):
    register(DatasetAdapter(name="thirdparty/adapter", description="test adapter", load=_load))


@hookimpl
def register_augmentations(register):
    register(Augmentation(name="thirdparty/aug", description="test augmentation", build=_augment))


@hookimpl
def register_backbones(register):
    register(Backbone(name="thirdparty/tiny", description="test backbone", timm_name="resnet18",
                      default_weights="none", family="resnet"))


@hookimpl
def register_heads(register):
    register(Head(name="thirdparty/head", description="test head", kind="torch", build=_head))


@hookimpl
def register_presets(register):
    register(Preset(name="thirdparty/preset", description="test preset", extends="fine-tuning",
                    settings={"backbone": "thirdparty/tiny", "head": "thirdparty/head",
                              "augmentation": "thirdparty/aug", "adapter": "thirdparty/adapter"}))
'''

BROKEN_MODULE = '''
raise ImportError("tlcore-broken-test needs a library that is not installed")
'''

PROBE = '''
import json
from tlcore.config import build_config, preset_settings
from tlcore.plugins import PluginHost

host = PluginHost()
config = build_config(preset_settings(host.presets, "thirdparty/preset"), {}, "preset thirdparty/preset")
print(json.dumps({
    "plugins": [i.as_dict() for i in host.plugins()],
    "items": {kind: {e.name: e.plugin for e in registry} for kind, registry in host.registries().items()
              if kind != "datasets"},
    "config": config.model_dump(),
    "backbone": host.backbone("thirdparty/tiny").timm_name,
}))
'''


def _write_distribution(root: Path, dist: str, module: str, entry_point: str, source: str) -> Path:
    project = root / dist
    (project / module).mkdir(parents=True)
    (project / module / "__init__.py").write_text(textwrap.dedent(source))
    (project / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "1.2.3"
        dependencies = ["tlcore"]

        [project.entry-points.tlcore]
        {entry_point} = "{module}"

        [tool.setuptools]
        packages = ["{module}"]
    '''))
    return project


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("TLCORE_DISABLE_PLUGINS", "TLCORE_LOAD_PLUGINS")}


THIRDPARTY_DISTS = ("tlcore-thirdparty-test", "tlcore-broken-test")


@pytest.fixture(scope="module")
def thirdparty_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Install a working and a broken plugin distribution into this interpreter; uninstall afterwards."""
    root = tmp_path_factory.mktemp("dists")
    projects = [
        _write_distribution(root, "tlcore-thirdparty-test", "tlcore_thirdparty_test", "thirdparty", THIRDPARTY_MODULE),
        _write_distribution(root, "tlcore-broken-test", "tlcore_broken_test", "broken", BROKEN_MODULE),
    ]
    try:
        editable = [arg for p in projects for arg in ("-e", str(p))]
        result = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", *editable)
        if result.returncode != 0:  # e.g. no setuptools in this environment: build in isolation instead
            result = _pip("install", "--no-deps", *map(str, projects))
        if result.returncode != 0:
            pytest.fail(f"pip install of the test plugins failed:\n{result.stdout}\n{result.stderr}")
        yield
    finally:
        _pip("uninstall", "-y", *THIRDPARTY_DISTS)


def test_thirdparty_distribution_installed_with_pip(thirdparty_installed: None) -> None:
    # A fresh interpreter, so the entry points of the new distributions are read.
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=_clean_env(),
                            timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    plugins = {p["name"]: p for p in report["plugins"]}

    thirdparty = plugins["thirdparty"]
    assert (thirdparty["status"], thirdparty["error"], thirdparty["default"]) == ("loaded", None, False)
    assert (thirdparty["distribution"], thirdparty["version"]) == ("tlcore-thirdparty-test", "1.2.3")
    assert thirdparty["hooks"] == ["register_augmentations", "register_backbones", "register_dataset_adapters",
                                   "register_heads", "register_presets"]
    items = report["items"]
    assert items["adapters"]["thirdparty/adapter"] == "thirdparty"
    assert items["augmentations"]["thirdparty/aug"] == "thirdparty"
    assert items["backbones"]["thirdparty/tiny"] == "thirdparty"
    assert items["heads"]["thirdparty/head"] == "thirdparty"
    assert items["presets"]["thirdparty/preset"] == "thirdparty"
    assert report["backbone"] == "resnet18"
    config = report["config"]
    assert (config["backbone"], config["head"], config["augmentation"]) == (
        "thirdparty/tiny", "thirdparty/head", "thirdparty/aug")
    assert config["strategy"] == "lp-ft"  # inherited from the core's fine-tuning

    broken = plugins["broken"]
    assert (broken["status"], broken["distribution"], broken["version"]) == ("failed", "tlcore-broken-test", "1.2.3")
    assert "could not import tlcore_broken_test" in broken["error"]
    assert "ImportError: tlcore-broken-test needs a library that is not installed" in broken["error"]

    # Everything else still loads.
    assert items["presets"]["fine-tuning"] == "tlcore.default_plugins.presets"
    if domain_plugins_installed():
        assert plugins["medical"]["status"] == plugins["agriculture"]["status"] == "loaded"
        assert items["presets"]["medical/chest-xray"] == "medical"
    assert [name for name, p in plugins.items() if p["status"] != "loaded"] == ["broken"]



def test_cli_shows_a_broken_plugin(
    cli: Callable[..., subprocess.CompletedProcess[str]], thirdparty_installed: None
) -> None:
    result = cli("plugins", "--json")  # without --all: installed plugins only
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert not any(row["default"] for row in plugins.values())
    assert plugins["broken"]["status"] == "failed"
    assert "ImportError" in plugins["broken"]["error"]
    assert plugins["thirdparty"]["status"] == "loaded"
    result = cli("list", "backbones", "thirdparty", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"name": "thirdparty/tiny", "description": "test backbone",
                                          "plugin": "thirdparty"}]
