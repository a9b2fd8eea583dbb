"""One test per hook in tlcore.hookspecs: what a plugin registers reaches the engine, under the plugin's name.

tests/test_hook_docs.py requires a test named after every hook; these are they.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import tlcore
from tlcore.catalog import Catalog, CatalogEntry
from tlcore.config import RunConfig, build_config, preset_settings
from tlcore.data import image_folder
from tlcore.data.prepare import prepare_data
from tlcore.data.transforms import eval_transform
from tlcore.default_plugins.presets import FINE_TUNING
from tlcore.errors import ConfigError, TlcoreError, UnknownNameError
from tlcore.plugins import PluginHost
from tlcore.specs import (
    Augmentation,
    AugmentationContext,
    Backbone,
    DatasetAdapter,
    Head,
    HeadContext,
    LabeledDataset,
    Perturbation,
    Preset,
)
from tlcore.testing import check_augmentation, check_head, check_perturbation


def plugin(**hooks: Callable[..., Any]) -> SimpleNamespace:
    """An in-memory plugin module: each keyword is a hook implementation."""
    return SimpleNamespace(**{name: tlcore.hookimpl(fn) for name, fn in hooks.items()})


def host_with(name: str, **hooks: Callable[..., Any]) -> PluginHost:
    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(plugin(**hooks), name=name)
    return host


def status(host: PluginHost, name: str) -> tuple[str, str | None]:
    info = next(i for i in host.plugins() if i.name == name)
    return info.status, info.error


# -- register_dataset_adapters ----------------------------------------------------------------------


def test_register_dataset_adapters_plugin_adapter_wins_auto_detection_by_priority(
    tmp_path: Path, make_folder: Callable[..., Path]
) -> None:
    """A plugin adapter that recognises its own marker outranks the core image-folder adapter."""

    def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
        dataset = image_folder.load(root, options)
        return dataclasses.replace(dataset, provenance={"site": (root / "SITE").read_text().strip()})

    def register_dataset_adapters(register: Callable[[DatasetAdapter], None]) -> None:
        register(
            DatasetAdapter(
                name="acme/site-folder",
                description="image folders with a SITE file",
                load=load,
                detect=lambda root: (root / "SITE").is_file(),
                priority=5,
            )
        )

    host = host_with("acme", register_dataset_adapters=register_dataset_adapters)
    assert host.adapters.entry("acme/site-folder").plugin == "acme"
    assert host.adapters.entry("image-folder").plugin == "tlcore.default_plugins.datasets"

    marked = make_folder(tmp_path / "marked", {"train": 4, "val": 2, "test": 2})
    (marked / "SITE").write_text("hospital-7\n")
    prepared = prepare_data(host, str(marked), RunConfig())
    assert prepared.adapter == "acme/site-folder"
    assert prepared.dataset.provenance == {"site": "hospital-7"}
    assert prepared.dataset.classes == ["blue", "green", "red"]

    plain = make_folder(tmp_path / "plain", {"train": 4, "val": 2, "test": 2})
    assert prepare_data(host, str(plain), RunConfig()).adapter == "image-folder"
    assert status(host, "acme") == ("loaded", None)


def test_register_dataset_adapters_predict_inputs_decide_what_tl_predict_reads(tmp_path: Path) -> None:
    """An adapter's predict_inputs gets the user's paths, the run's options and channels; one that crashes
    is a one-line PluginError naming the plugin; a run from an adapter without it reads image files."""
    from tlcore.data.prediction_inputs import prediction_inputs
    from tlcore.errors import PluginError
    from tlcore.specs import PredictionInputs

    calls: list[tuple[list[Path], dict[str, Any], int]] = []

    def predict_inputs(paths: list[Path], options: Mapping[str, Any], channels: int) -> PredictionInputs:
        calls.append((paths, dict(options), channels))
        scale = float(options["scale"])
        return PredictionInputs([f"{p}::{i}" for p in paths for i in range(2)],
                                lambda item: np.full((4, 4, channels), int(item[-1]) * scale, np.uint8))

    def broken(paths: list[Path], options: Mapping[str, Any], channels: int) -> PredictionInputs:
        raise KeyError("scale")

    def register_dataset_adapters(register: Callable[[DatasetAdapter], None]) -> None:
        register(DatasetAdapter(name="acme/stack", description="stacks", load=image_folder.load,
                                predict_inputs=predict_inputs))
        register(DatasetAdapter(name="acme/broken", description="broken", load=image_folder.load,
                                predict_inputs=broken))

    host = host_with("acme", register_dataset_adapters=register_dataset_adapters)
    stack = tmp_path / "a.stack"
    stack.write_bytes(b"")
    inputs, used = prediction_inputs(host, "acme/stack", {"scale": 7}, [stack], 1)
    assert used == "acme/stack"
    assert calls == [([stack], {"scale": 7}, 1)]
    assert inputs.items == [f"{stack}::0", f"{stack}::1"]
    assert inputs.reader(inputs.items[1]).tolist() == np.full((4, 4, 1), 7).tolist()

    with pytest.raises(PluginError, match=r"adapter 'acme/broken' \(predict_inputs\) from plugin 'acme' failed"):
        prediction_inputs(host, "acme/broken", {}, [stack], 3)

    png = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(png)
    inputs, used = prediction_inputs(host, "image-folder", {}, [tmp_path], 3)
    assert used == "generic" and inputs.items == [str(png)]
    assert inputs.reader(str(png)).shape == (5, 6, 3)


# -- register_augmentations -------------------------------------------------------------------------


def test_register_augmentations_plugin_pipeline_is_built_for_train_and_eval() -> None:
    contexts: list[AugmentationContext] = []

    def build(ctx: AugmentationContext) -> Any:
        import albumentations as A

        contexts.append(ctx)
        if not ctx.train:
            return eval_transform(ctx)
        return A.Compose([*eval_transform(ctx).transforms, A.VerticalFlip(p=1.0)])

    def register_augmentations(register: Callable[[Augmentation], None]) -> None:
        register(Augmentation(name="acme/flip", description="always flips vertically", build=build))

    host = host_with("acme", register_augmentations=register_augmentations)
    entry = host.augmentations.entry("acme/flip")
    assert entry.plugin == "acme"
    assert "standard" in host.augmentations  # the core's pipelines stay
    check_augmentation(entry.item)
    assert [c.train for c in contexts] == [True, False]
    assert all(c.image_size == (64, 64) for c in contexts)

    # What the engine does with it: a config that names it validates, and the train pipeline flips.
    assert build_config({"augmentation": "acme/flip"}, {}, "test").augmentation == "acme/flip"
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[:32] = 255
    ctx = AugmentationContext(image_size=(64, 64), train=True, crop_pct=1.0)
    flipped = entry.item.build(ctx)(image=image)["image"]
    assert flipped[:32].max() == 0 and flipped[32:].min() == 255


# -- register_perturbations -------------------------------------------------------------------------


def test_register_perturbations_plugin_change_is_listed_run_by_stress_and_checked() -> None:
    from tlcore.reports import stress

    def invert(u: np.ndarray) -> np.ndarray:
        return 1.0 - u

    def register_perturbations(register: Callable[[Perturbation], None]) -> None:
        register(Perturbation(name="acme/invert", description="negative film", apply=invert))

    host = host_with("acme", register_perturbations=register_perturbations)
    entry = host.perturbations.entry("acme/invert")
    assert entry.plugin == "acme" and "blur" in host.perturbations  # the core's changes stay
    check_perturbation(entry.item)
    # tl stress runs it when asked (--only, or a preset's stress_perturbations), after the core's changes
    assert "acme/invert" not in [e.name for e in stress.select(host.perturbations, None)]
    chosen = stress.select(host.perturbations, None, extra=["acme/invert"])
    assert chosen[-1].name == "acme/invert" and chosen[0].name == "blur" and len(chosen) == 17
    # on the image's own range (uint8 here)
    image = np.full((4, 4, 3), 200, np.uint8)
    out = stress.perturb(image, entry)
    assert out.dtype == np.uint8 and int(out[0, 0, 0]) == 55

    # a change that is not deterministic fails the contract check with a hint
    noisy = Perturbation("acme/noisy", "fresh noise each call", lambda u: u + np.random.normal(0, 0.1, u.shape))
    with pytest.raises(AssertionError, match="two calls on the same image differ"):
        check_perturbation(noisy)
    # registering something else fails the plugin, all or nothing
    bad = host_with("bad", register_perturbations=lambda register: register("blur twice"))
    assert "blur" in bad.perturbations  # the registry is built on first use
    state, error = status(bad, "bad")
    assert state == "failed" and "register_perturbations expects Perturbation objects, got str" in (error or "")


# -- register_backbones ---------------------------------------------------------------------------------


def test_register_backbones_registered_name_is_used_without_resolving() -> None:
    asked: list[str] = []

    def register_backbones(register: Callable[[Backbone], None]) -> None:
        register(
            Backbone(name="acme/tiny", description="resnet18, random", timm_name="resnet18", default_weights="none")
        )

    def resolve_backbone(name: str) -> Backbone | None:
        asked.append(name)
        return None

    host = host_with("acme", register_backbones=register_backbones, resolve_backbone=resolve_backbone)
    entry = host.backbones.entry("acme/tiny")
    assert entry.plugin == "acme"
    backbone = host.backbone("acme/tiny")
    assert (backbone.timm_name, backbone.default_weights) == ("resnet18", "none")
    assert asked == []  # a registered name never goes through resolve_backbone
    assert host.backbones.entry("tf_efficientnet_lite0").plugin == "tlcore.default_plugins.backbones"
    assert build_config({"backbone": "acme/tiny"}, {}, "test").backbone == "acme/tiny"


# -- resolve_backbone -------------------------------------------------------------------------------


def test_resolve_backbone_plugin_resolves_its_namespace_and_leaves_other_names() -> None:
    asked: list[str] = []

    def resolve_backbone(name: str) -> Backbone | None:
        asked.append(name)
        if not name.startswith("mycorp/"):
            return None
        arch = name.removeprefix("mycorp/")
        return Backbone(name=name, description=f"mycorp mirror of {arch}", timm_name=arch, default_weights="none")

    host = host_with("mycorp", resolve_backbone=resolve_backbone)
    assert "mycorp/convnext_nano" not in host.backbones
    mine = host.backbone("mycorp/convnext_nano")
    assert (mine.name, mine.timm_name, mine.description) == (
        "mycorp/convnext_nano",
        "convnext_nano",
        "mycorp mirror of convnext_nano",
    )
    # Plugins are asked before the core; returning None hands the name on to the core's timm resolver.
    core = host.backbone("resnet34")
    assert (core.timm_name, core.description) == ("resnet34", "timm model (hub weights)")
    with pytest.raises(UnknownNameError, match="unknown backbone 'no-such-net'"):
        host.backbone("no-such-net")
    assert asked == ["mycorp/convnext_nano", "resnet34", "no-such-net"]


def test_resolve_backbone_that_raises_is_a_one_line_error() -> None:
    def resolve_backbone(name: str) -> Backbone | None:
        raise RuntimeError("mirror unreachable")

    host = host_with("flaky", resolve_backbone=resolve_backbone)
    assert host.backbone("tf_efficientnet_lite0").name == "tf_efficientnet_lite0"  # registered: not resolved
    with pytest.raises(TlcoreError, match="resolving backbone 'resnet34' failed: RuntimeError: mirror unreachable"):
        host.backbone("resnet34")


# -- register_heads -------------------------------------------------------------------------------------


def test_register_heads_torch_and_sklearn_heads_build_from_the_context() -> None:
    seen: list[HeadContext] = []

    def torch_head(ctx: HeadContext) -> Any:
        from torch import nn

        seen.append(ctx)
        return nn.Sequential(nn.LayerNorm(ctx.in_features), nn.Linear(ctx.in_features, ctx.num_outputs))

    def sklearn_head(ctx: HeadContext) -> Any:
        from sklearn.neighbors import KNeighborsClassifier

        seen.append(ctx)
        return KNeighborsClassifier(n_neighbors=int(ctx.params.get("k", 3)))

    def register_heads(register: Callable[[Head], None]) -> None:
        register(Head(name="acme/norm-linear", description="layer norm + linear", kind="torch", build=torch_head))
        register(Head(name="acme/knn", description="k nearest neighbours", kind="sklearn", build=sklearn_head))

    host = host_with("acme", register_heads=register_heads)
    assert host.heads.entry("acme/norm-linear").plugin == host.heads.entry("acme/knn").plugin == "acme"
    assert host.heads.get("acme/knn").kind == "sklearn"
    check_head(host.heads.get("acme/norm-linear"))
    check_head(host.heads.get("acme/knn"))
    assert [(c.in_features, c.num_outputs, c.params["dropout"]) for c in seen] == [(16, 3, 0.2), (16, 3, 0.2)]
    assert {"linear", "mlp", "logistic-regression", "svm"} <= set(host.heads.names())


# -- register_presets -----------------------------------------------------------------------------------


def test_register_presets_extends_a_core_preset_and_validates() -> None:
    def register_presets(register: Callable[[Preset], None]) -> None:
        register(
            Preset(
                name="acme/quick",
                description="short fine-tuning",
                settings={"epochs": 2, "strategy": "full"},
                extends="fine-tuning",
            )
        )
        register(Preset(name="acme/quicker", description="even shorter", settings={"epochs": 1}, extends="acme/quick"))
        register(Preset(name="acme/orphan", description="extends nothing known", settings={}, extends="nope"))

    host = host_with("acme", register_presets=register_presets)
    assert host.presets.entry("acme/quicker").plugin == "acme"
    config = build_config(preset_settings(host.presets, "acme/quicker"), {}, "preset acme/quicker")
    assert (config.epochs, config.strategy, config.technique) == (1, "full", "fine-tuning")
    # backbone and freeze_stages come from the core's fine-tuning preset
    assert config.backbone == "tf_efficientnet_lite0"
    assert config.freeze_stages == FINE_TUNING.settings["freeze_stages"]
    assert build_config(preset_settings(host.presets, "acme/quick"), {"epochs": 5}, "x").epochs == 5
    with pytest.raises(ConfigError, match="'acme/orphan' extends unknown preset 'nope'"):
        preset_settings(host.presets, "acme/orphan")


# -- register_catalog_entries -----------------------------------------------------------------------


def entry(name: str, **fields: Any) -> CatalogEntry:
    values: dict[str, Any] = {
        "title": f"{name} title",
        "splits": ["train", "test"],
        "classes": ["benign", "malignant"],
        "modality": "dermoscopy",
        "licence": "CC-BY-NC-4.0",
        "citation": "Someone et al. (2024)",
        "intended_use": "research",
        **fields,
    }
    return CatalogEntry(name=name, **values)


def test_register_catalog_entries_entry_is_in_the_catalog_under_the_plugin_name() -> None:
    def register_catalog_entries(register: Callable[[CatalogEntry], None]) -> None:
        register(entry("acme/lesions", adapter="csv-manifest", adapter_options={"label_column": "dx"}))

    host = host_with("acme", register_catalog_entries=register_catalog_entries)
    registry = host.catalog.registry
    assert registry.entry("acme/lesions").plugin == "acme"
    assert host.catalog.get("acme/lesions").adapter_options == {"label_column": "dx"}
    assert registry.entry("beans").plugin == "datasets.yaml"  # the shipped entries stay
    assert "acme/lesions" in host.registries()["datasets"]
    with pytest.raises(TlcoreError, match="not public-downloadable"):
        host.catalog.resolve("acme/lesions")  # no download listed: says where to put the files


def test_register_catalog_entries_clash_with_datasets_yaml_fails_only_that_plugin() -> None:
    shipped = Catalog.load().registry.names()[0]

    def clashing(register: Callable[[CatalogEntry], None]) -> None:
        register(entry("thief/own"))
        register(entry(shipped))

    def fine(register: Callable[[CatalogEntry], None]) -> None:
        register(entry("fine/own"))

    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(plugin(register_catalog_entries=clashing), name="thief")
    assert host.add_plugin(plugin(register_catalog_entries=fine), name="fine")
    registry = host.catalog.registry  # does not raise
    assert registry.entry(shipped).plugin == "datasets.yaml"
    assert "thief/own" not in registry  # all or nothing
    assert registry.entry("fine/own").plugin == "fine"
    state, error = status(host, "thief")
    assert state == "failed"
    assert error is not None and f"'{shipped}'" in error and "'datasets.yaml'" in error
    assert status(host, "fine") == ("loaded", None)
