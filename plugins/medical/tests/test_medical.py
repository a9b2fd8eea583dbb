"""tlcore-medical: its hooks, the medical/xray augmentation and the medical/chest-xray preset."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import albumentations as A
import numpy as np
import pytest

import tlcore_medical
from tlcore.config import build_config, preset_settings
from tlcore.data.transforms import eval_transform
from tlcore.errors import ConfigError
from tlcore.plugins import PluginHost
from tlcore.specs import AugmentationContext


@pytest.fixture
def host() -> PluginHost:
    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(tlcore_medical, name="medical")
    return host


def test_hooks_register_what_the_plugin_claims(host: PluginHost) -> None:
    info = next(i for i in host.plugins() if i.name == "medical")
    assert info.hooks == ["register_augmentations", "register_dataset_adapters", "register_perturbations",
                          "register_presets"]
    for name in ("medical/bias-field", "medical/speckle"):
        assert host.perturbations.entry(name).plugin == "medical"
    for name in ("medical/xray", "medical/mri", "medical/dermoscopy", "medical/ultrasound"):
        assert host.augmentations.entry(name).plugin == "medical"
    for name in ("medical/chest-xray", "medical/brain-tumor-mri", "medical/skin-lesion", "medical/breast-ultrasound"):
        assert host.presets.entry(name).plugin == "medical"
    for name in ("manifest", "dicom", "nifti", "medmnist", "multilabel", "masked-folder", "brain-tumor-mat"):
        assert host.adapters.entry(f"medical/{name}").plugin == "medical"
    assert "no flip" in host.augmentations.get("medical/xray").description
    assert host.failures() == []
    assert info.status == "loaded"


def test_entry_point_is_installed() -> None:
    (ep,) = entry_points(group="tlcore", name="medical")
    assert ep.value == "tlcore_medical"
    assert ep.dist is not None and ep.dist.metadata["Name"] == "tlcore-medical"
    info = next(i for i in PluginHost().plugins() if i.name == "medical")
    assert (info.status, info.distribution, info.version, info.error) == ("loaded", "tlcore-medical", "0.1.0", None)


def test_loading_the_plugin_does_not_import_albumentations() -> None:
    """`tl list` and `tl plugins` import every plugin; the pipelines' imports wait until a build."""
    code = "import sys, tlcore_medical; print('albumentations' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def _apply_every_step(pipeline: A.Compose, image: np.ndarray) -> np.ndarray:
    """Run each step with p=1 (force_apply), so rare branches run too, then the pipeline as composed."""
    out = image
    for step in pipeline.transforms:
        out = step(image=out, force_apply=True)["image"]
    for _ in range(5):
        assert pipeline(image=image)["image"].shape == out.shape
    return out


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("hflip", [False, True])
@pytest.mark.parametrize("input_hw", [(150, 170), (300, 90), (40, 50)])
def test_xray_keeps_shape_and_dtype(
    host: PluginHost, train: bool, channels: int, hflip: bool, input_hw: tuple[int, int]
) -> None:
    aug = host.augmentations.get("medical/xray")
    ctx = AugmentationContext(image_size=(96, 96), train=train, channels=channels, params={"hflip": hflip})
    image = np.random.default_rng(0).integers(0, 256, (*input_hw, channels), dtype=np.uint8)
    out = _apply_every_step(aug.build(ctx), image)
    assert out.shape == (96, 96, channels)
    assert out.dtype == np.uint8


def _steps(pipeline: A.Compose) -> list[str]:
    return [type(t).__name__ for t in pipeline.transforms]


def test_xray_train_steps_and_no_flip_by_default(host: PluginHost) -> None:
    build = host.augmentations.get("medical/xray").build
    train = build(AugmentationContext(image_size=(224, 224), train=True))
    steps = _steps(train)
    assert steps[:2] == _steps(eval_transform(AugmentationContext(image_size=(224, 224), train=False)))
    for name in ("Affine", "RandomBrightnessContrast", "RandomGamma", "CLAHE", "OneOf", "ImageCompression",
                 "GaussNoise"):
        assert name in steps
    blur = next(t for t in train.transforms if isinstance(t, A.OneOf))
    assert {type(t).__name__ for t in blur.transforms} == {"GaussianBlur", "Downscale"}
    assert not {"HorizontalFlip", "VerticalFlip", "ColorJitter", "HueSaturationValue"} & set(steps)
    clahe = next(t for t in train.transforms if isinstance(t, A.CLAHE))
    assert clahe.p == pytest.approx(0.3)
    jpeg = next(t for t in train.transforms if isinstance(t, A.ImageCompression))
    assert tuple(jpeg.quality_range) == (30, 95)
    framing, film_shape = (t for t in train.transforms if isinstance(t, A.Affine))
    assert tuple(framing.rotate) == (-10, 10)
    # framing zooms both axes together, up to 1.25x tighter (a stress test found 1.2x tighter films misread)
    assert framing.scale == {"x": (0.85, 1.25), "y": (0.85, 1.25)} and framing.keep_ratio
    # width and height scale apart, so a film's aspect ratio is not a cue
    assert not film_shape.keep_ratio and film_shape.scale == {"x": (0.9, 1.1), "y": (0.9, 1.1)}

    def bright_box(transform: A.BasicTransform, seed: int) -> tuple[int, int]:
        square = np.zeros((224, 224, 1), np.uint8)
        square[62:162, 62:162] = 255
        out = A.Compose([transform], seed=seed)(image=square, force_apply=True)["image"][..., 0] > 127
        rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
        return int(rows[-1] - rows[0]), int(cols[-1] - cols[0])

    shapes = {round(h / w, 2) for h, w in (bright_box(film_shape, seed) for seed in range(20))}
    assert max(shapes) - min(shapes) > 0.1  # the bright square comes out taller or wider
    framed = [bright_box(A.Affine(scale=framing.scale, keep_ratio=True, p=1.0), seed) for seed in range(20)]
    assert max(h for h, _ in framed) > 115 and min(h for h, _ in framed) < 95  # tighter and looser framing
    assert all(abs(h - w) <= 2 for h, w in framed)  # framing keeps the aspect ratio

    flipped = build(AugmentationContext(image_size=(224, 224), train=True, params={"hflip": True}))
    assert "HorizontalFlip" in _steps(flipped)
    assert "VerticalFlip" not in _steps(flipped)


def test_xray_eval_is_the_core_eval_transform(host: PluginHost) -> None:
    ctx = AugmentationContext(image_size=(64, 64), train=False, params={"hflip": True})
    image = np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    ours = host.augmentations.get("medical/xray").build(ctx)(image=image)["image"]
    core = eval_transform(ctx)(image=image)["image"]
    np.testing.assert_array_equal(ours, core)


def test_xray_rejects_a_non_boolean_hflip(host: PluginHost) -> None:
    with pytest.raises(ConfigError, match="hflip"):
        host.augmentations.get("medical/xray").build(
            AugmentationContext(image_size=(64, 64), train=True, params={"hflip": "yes"}))


def test_chest_xray_preset_resolves(host: PluginHost) -> None:
    preset = host.presets.get("medical/chest-xray")
    assert preset.extends == "fine-tuning"
    assert "chest" in preset.description
    config = build_config(preset_settings(host.presets, "medical/chest-xray"), {}, "preset medical/chest-xray")
    assert config.technique == "fine-tuning"
    assert config.strategy == "lp-ft"  # inherited from fine-tuning
    assert config.backbone == "tf_efficientnet_lite0"
    assert config.augmentation == "medical/xray"
    assert config.augmentation in host.augmentations
    assert config.class_weights == "balanced"
    assert config.monitor == "balanced_accuracy"
    assert config.crop_pct == 1.0  # the whole film is evaluated, not timm's centre crop
    # overrides still apply on top
    assert build_config(preset_settings(host.presets, "medical/chest-xray"), {"epochs": 2}, "x").epochs == 2
