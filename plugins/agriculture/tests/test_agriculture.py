"""tlcore-agriculture: its hooks, the field augmentation, the PlantVillage adapter and the preset."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
from PIL import Image

import tlcore_agriculture
from tlcore.config import build_config, preset_settings
from tlcore.data.transforms import eval_transform
from tlcore.errors import ConfigError, DataError
from tlcore.plugins import PluginHost
from tlcore.specs import AugmentationContext, DatasetAdapter

CLASSES = ["Apple___Apple_scab", "Apple___healthy", "Tomato___Late_blight", "Tomato___healthy"]


@pytest.fixture
def host() -> PluginHost:
    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(tlcore_agriculture, name="agriculture")
    return host


@pytest.fixture
def adapter(host: PluginHost) -> DatasetAdapter:
    return host.adapters.get("agriculture/plantvillage")


def write_images(folder: Path, n: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"leaf{i}.png")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """train/ with 3 images per class, val/ with 1 per class (Apple classes only in val)."""
    root = tmp_path / "plantvillage"
    for k, name in enumerate(CLASSES):
        write_images(root / "train" / name, 3, seed=k)
        if name.startswith("Apple"):
            write_images(root / "val" / name, 1, seed=10 + k)
    return root


def test_hooks_register_what_the_plugin_claims(host: PluginHost) -> None:
    info = next(i for i in host.plugins() if i.name == "agriculture")
    assert info.hooks == ["register_augmentations", "register_dataset_adapters", "register_presets"]
    assert host.augmentations.entry("agriculture/field").plugin == "agriculture"
    assert host.adapters.entry("agriculture/plantvillage").plugin == "agriculture"
    assert host.presets.entry("agriculture/leaf-disease").plugin == "agriculture"
    assert host.adapters.get("agriculture/plantvillage").priority == 10
    assert host.failures() == []
    assert info.status == "loaded"


def test_entry_point_is_installed() -> None:
    (ep,) = entry_points(group="tlcore", name="agriculture")
    assert ep.value == "tlcore_agriculture"
    assert ep.dist is not None and ep.dist.metadata["Name"] == "tlcore-agriculture"
    info = next(i for i in PluginHost().plugins() if i.name == "agriculture")
    assert (info.status, info.distribution, info.version, info.error) == ("loaded", "tlcore-agriculture", "0.1.0", None)


def test_loading_the_plugin_does_not_import_albumentations() -> None:
    """`tl list` and `tl plugins` import every plugin; the pipelines' imports wait until a build."""
    code = "import sys, tlcore_agriculture; print('albumentations' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# -- augmentation ---------------------------------------------------------------------------


def _apply_every_step(pipeline: A.Compose, image: np.ndarray) -> np.ndarray:
    """Run each step with p=1 (force_apply), so rare branches run too, then the pipeline as composed."""
    out = image
    for step in pipeline.transforms:
        out = step(image=out, force_apply=True)["image"]
    for _ in range(10):
        assert pipeline(image=image)["image"].shape == out.shape
    return out


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("input_hw", [(150, 170), (300, 90), (40, 50)])
def test_field_keeps_shape_and_dtype(host: PluginHost, train: bool, channels: int, input_hw: tuple[int, int]) -> None:
    ctx = AugmentationContext(image_size=(96, 96), train=train, channels=channels)
    image = np.random.default_rng(0).integers(0, 256, (*input_hw, channels), dtype=np.uint8)
    out = _apply_every_step(host.augmentations.get("agriculture/field").build(ctx), image)
    assert out.shape == (96, 96, channels)
    assert out.dtype == np.uint8


@pytest.mark.filterwarnings("error")
def test_field_train_keeps_a_non_square_size(host: PluginHost) -> None:
    # RandomRotate90 runs before the crop, so a 90° turn cannot swap height and width.
    pipeline = host.augmentations.get("agriculture/field").build(AugmentationContext(image_size=(64, 96), train=True))
    image = np.random.default_rng(2).integers(0, 256, (120, 150, 3), dtype=np.uint8)
    assert _apply_every_step(pipeline, image).shape == (64, 96, 3)


def test_field_steps(host: PluginHost) -> None:
    build = host.augmentations.get("agriculture/field").build
    train = build(AugmentationContext(image_size=(224, 224), train=True))
    steps = [type(t).__name__ for t in train.transforms]
    for name in ("RandomResizedCrop", "HorizontalFlip", "VerticalFlip", "RandomRotate90", "RandomBrightnessContrast",
                 "RandomShadow", "HueSaturationValue", "MotionBlur", "ImageCompression"):
        assert name in steps
    crop = next(t for t in train.transforms if isinstance(t, A.RandomResizedCrop))
    assert tuple(crop.scale) == (0.3, 1.0)
    for rare in (A.RandomShadow, A.MotionBlur, A.ImageCompression):
        assert next(t for t in train.transforms if isinstance(t, rare)).p <= 0.25
    grey = build(AugmentationContext(image_size=(224, 224), train=True, channels=1))
    assert not any(isinstance(t, A.HueSaturationValue) for t in grey.transforms)


def test_field_eval_is_the_core_eval_transform(host: PluginHost) -> None:
    ctx = AugmentationContext(image_size=(64, 64), train=False)
    image = np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    ours = host.augmentations.get("agriculture/field").build(ctx)(image=image)["image"]
    np.testing.assert_array_equal(ours, eval_transform(ctx)(image=image)["image"])


# -- PlantVillage adapter --------------------------------------------------------------------


def _check_labels(classes: list[str], records: list) -> None:
    for record in records:
        assert Path(record.path).parent.name == classes[record.target]


def test_plantvillage_parses_crop_and_disease(adapter: DatasetAdapter, tree: Path) -> None:
    ds = adapter.load(tree, {})
    assert ds.classes == CLASSES
    assert len(ds.splits["train"]) == 12 and len(ds.splits["val"]) == 2
    for split in ds.splits.values():
        _check_labels(ds.classes, split)
    parts = ds.provenance["class_parts"]
    assert parts["Tomato___Late_blight"] == {"crop": "Tomato", "disease": "Late_blight", "healthy": False}
    assert parts["Apple___healthy"] == {"crop": "Apple", "disease": "healthy", "healthy": True}
    assert list(parts) == CLASSES
    assert ds.provenance["crops"] == ["Apple", "Tomato"]
    assert ds.root == tree


def test_plantvillage_crop_option_keeps_one_crop(adapter: DatasetAdapter, tree: Path) -> None:
    ds = adapter.load(tree, {"crop": "tomato"})  # case-insensitive
    assert ds.classes == ["Tomato___Late_blight", "Tomato___healthy"]
    assert sorted({r.target for r in ds.splits["train"]}) == [0, 1]
    assert len(ds.splits["train"]) == 6
    _check_labels(ds.classes, ds.splits["train"])
    assert "val" not in ds.splits  # val had no tomato images: dropped, so the engine carves one out of train
    assert set(ds.provenance["class_parts"]) == set(ds.classes)
    assert ds.provenance["crops"] == ["Tomato"]
    assert ds.provenance["crop_filter"] == ["tomato"]

    apple = adapter.load(tree, {"crop": ["Apple"]})
    assert apple.classes == ["Apple___Apple_scab", "Apple___healthy"]
    assert len(apple.splits["val"]) == 2
    _check_labels(apple.classes, apple.splits["val"])

    both = adapter.load(tree, {"crop": ["Apple", "Tomato"]})
    assert both.classes == CLASSES


def test_plantvillage_unknown_crop_lists_the_crops(adapter: DatasetAdapter, tree: Path) -> None:
    with pytest.raises(DataError, match="Grape") as info:
        adapter.load(tree, {"crop": "Grape"})
    assert "Apple, Tomato" in str(info.value)
    with pytest.raises(ConfigError, match="crop"):
        adapter.load(tree, {"crop": 3})


def test_plantvillage_flat_layout(adapter: DatasetAdapter, tmp_path: Path) -> None:
    for name in ("Corn_(maize)___Common_rust_", "Corn_(maize)___healthy", "Pepper,_bell___Bacterial_spot"):
        write_images(tmp_path / name, 2)
    assert adapter.detect is not None and adapter.detect(tmp_path)
    ds = adapter.load(tmp_path, {"crop": "corn_(maize)"})
    assert ds.classes == ["Corn_(maize)___Common_rust_", "Corn_(maize)___healthy"]
    assert ds.provenance["class_parts"]["Corn_(maize)___Common_rust_"]["disease"] == "Common_rust_"
    assert list(ds.splits) == ["train"]


def test_plantvillage_rejects_a_class_without_separator(adapter: DatasetAdapter, tree: Path) -> None:
    write_images(tree / "train" / "Weeds", 1)
    with pytest.raises(DataError, match="Crop___Disease"):
        adapter.load(tree, {})


def test_plantvillage_detect(host: PluginHost, adapter: DatasetAdapter, tree: Path, tmp_path: Path) -> None:
    assert adapter.detect is not None
    assert adapter.detect(tree)
    # auto-detection tries higher priority first, so it wins over the generic image-folder adapter
    image_folder = host.adapters.get("image-folder")
    assert image_folder.detect is not None and image_folder.detect(tree)
    assert adapter.priority > image_folder.priority

    assert not adapter.detect(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not adapter.detect(empty)
    assert not adapter.detect(tree / "train" / "Apple___healthy" / "leaf0.png")  # a file, not a folder

    write_images(tree / "train" / "Weeds", 1)  # one class folder without ___
    assert not adapter.detect(tree)
    plain = tmp_path / "plain"
    write_images(plain / "cats", 1)
    write_images(plain / "dogs", 1)
    assert not adapter.detect(plain)


def test_plantvillage_detect_ignores_hidden_folders(adapter: DatasetAdapter, tree: Path) -> None:
    (tree / "train" / ".ipynb_checkpoints").mkdir()
    (tree / "train" / "__MACOSX").mkdir()
    assert adapter.detect is not None and adapter.detect(tree)
    assert adapter.load(tree, {}).classes == CLASSES


# -- preset ------------------------------------------------------------------------------------


def test_leaf_disease_preset_resolves(host: PluginHost) -> None:
    preset = host.presets.get("agriculture/leaf-disease")
    assert preset.extends == "fine-tuning"
    assert "leaf" in preset.description
    config = build_config(preset_settings(host.presets, "agriculture/leaf-disease"), {}, "preset")
    assert config.technique == "fine-tuning"
    assert config.backbone == "tf_efficientnet_lite0"
    assert config.augmentation == "agriculture/field"
    assert config.augmentation in host.augmentations
    with_crop = build_config(preset_settings(host.presets, "agriculture/leaf-disease"),
                             {"adapter_options": {"crop": "Tomato"}}, "preset")
    assert with_crop.adapter_options == {"crop": "Tomato"}


def test_plantvillage_is_auto_detected_by_prepare_data(host: PluginHost, tmp_path: Path) -> None:
    from tlcore.config import RunConfig
    from tlcore.data.prepare import prepare_data

    for k, name in enumerate(CLASSES):
        write_images(tmp_path / name, 10, seed=k)  # flat layout: val and test are carved out of train
    prepared = prepare_data(host, str(tmp_path), RunConfig(adapter_options={"crop": "Tomato"}))
    assert prepared.adapter == "agriculture/plantvillage"
    assert prepared.dataset.classes == ["Tomato___Late_blight", "Tomato___healthy"]
    assert sum(len(split) for split in prepared.dataset.splits.values()) == 20
    assert prepared.summary()["provenance"]["crops"] == ["Tomato"]
