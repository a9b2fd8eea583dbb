"""tlcore-agriculture: its hooks, its entry point, lazy imports, and its presets as run configurations."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tlcore.config import build_config, preset_settings
from tlcore.data.prepare import prepare_data
from tlcore.plugins import PluginHost

CROP_DISEASE = ["agriculture/leaf-disease", "agriculture/plantvillage"]


def test_hooks_register_what_the_plugin_claims(host: PluginHost) -> None:
    info = next(i for i in host.plugins() if i.name == "agriculture")
    assert info.hooks == ["register_augmentations", "register_dataset_adapters", "register_perturbations",
                          "register_presets"]
    for registry, names in (
        (host.perturbations, ["agriculture/shadow", "agriculture/motion-blur"]),
        (host.augmentations, ["agriculture/field", "agriculture/lab", "agriculture/aerial"]),
        (host.adapters, ["agriculture/plantvillage", "agriculture/aerial-tiles"]),
        (host.presets, CROP_DISEASE),
    ):
        for name in names:
            assert registry.entry(name).plugin == "agriculture"
    assert host.adapters.get("agriculture/aerial-tiles").priority > host.adapters.get("image-folder").priority
    assert host.failures() == []
    assert info.status == "loaded"


def test_entry_point_is_installed() -> None:
    (ep,) = entry_points(group="tlcore", name="agriculture")
    assert ep.value == "tlcore_agriculture"
    assert ep.dist is not None and ep.dist.metadata["Name"] == "tlcore-agriculture"
    info = next(i for i in PluginHost().plugins() if i.name == "agriculture")
    assert (info.status, info.distribution, info.version, info.error) == ("loaded", "tlcore-agriculture", "0.1.0", None)


def test_loading_the_plugin_imports_no_heavy_library() -> None:
    """`tl list` and `tl plugins` import every plugin; albumentations, pandas and tifffile wait until used."""
    code = (
        "import sys, tlcore_agriculture; "
        "print([m for m in ('albumentations', 'pandas', 'tifffile') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", CROP_DISEASE)
def test_crop_disease_presets_resolve_to_small_data_fine_tuning(host: PluginHost, name: str) -> None:
    preset = host.presets.get(name)
    assert preset.extends == "fine-tuning"
    config = build_config(preset_settings(host.presets, name), {}, "preset")
    assert config.technique == "fine-tuning"
    assert (config.backbone, config.weights) == ("tf_efficientnet_lite0", "default")  # offline ImageNet weights
    assert (config.strategy, config.freeze_stages, config.checkpoint) == ("lp-ft", 1, "last")
    assert config.augmentation in host.augmentations
    assert config.adapter == "auto"  # PlantVillage folders, CSV manifests and image folders all work
    assert config.tta


def test_preset_settings_differ_where_the_domain_does(host: PluginHost) -> None:
    field = build_config(preset_settings(host.presets, "agriculture/leaf-disease"), {}, "preset")
    lab = build_config(preset_settings(host.presets, "agriculture/plantvillage"), {}, "preset")
    assert (field.augmentation, lab.augmentation) == ("agriculture/field", "agriculture/lab")
    assert field.epochs == 15 and lab.epochs < field.epochs
    assert (field.class_weights, lab.class_weights) == ("none", "balanced")
    overridden = build_config(
        preset_settings(host.presets, "agriculture/plantvillage"),
        {"adapter_options": {"crops": ["Tomato"], "target": "disease"}},
        "preset",
    )
    assert overridden.adapter_options == {"crops": ["Tomato"], "target": "disease"}


@pytest.mark.parametrize("name", CROP_DISEASE)
def test_presets_load_core_image_folders_and_csv_manifests(
    host: PluginHost, name: str, tmp_path: Path, images: Callable[..., list[Path]]
) -> None:
    """Plain class folders go to image-folder, a CSV to csv-manifest: the presets name no adapter."""
    config = build_config(preset_settings(host.presets, name), {}, "preset")
    folder = tmp_path / "folder"
    for k, cls in enumerate(("angular_leaf_spot", "bean_rust", "healthy")):
        images(folder / "train" / cls, 6, seed=k)
        images(folder / "test" / cls, 2, seed=10 + k)
    prepared = prepare_data(host, str(folder), config)
    assert prepared.adapter == "image-folder"
    assert prepared.dataset.classes == ["angular_leaf_spot", "bean_rust", "healthy"]

    rows = ["path,label"] + [f"{p.relative_to(folder)},{p.parent.name}" for p in sorted(folder.rglob("*.png"))]
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    prepared = prepare_data(host, str(folder / "labels.csv"), config)
    assert prepared.adapter == "csv-manifest"
    assert sum(len(r) for r in prepared.dataset.splits.values()) == 24
