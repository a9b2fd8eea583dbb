"""The field, lab and aerial augmentations: every step runs, shapes and dtypes are kept, eval is deterministic."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from tlcore.data.transforms import eval_transform
from tlcore.plugins import PluginHost
from tlcore.specs import AugmentationContext
from tlcore_agriculture.augmentations import BandGain

NAMES = ["agriculture/field", "agriculture/lab", "agriculture/aerial"]


def _leaves(transform: A.BaseCompose) -> list[A.BasicTransform]:
    out: list[A.BasicTransform] = []
    for t in transform.transforms:
        out.extend(_leaves(t) if isinstance(t, A.BaseCompose) else [t])
    return out


def _apply_every_step(pipeline: A.Compose, image: np.ndarray) -> np.ndarray:
    """Run every step, those inside OneOf too, with p=1 (rare branches included), then the pipeline."""
    out = image
    for step in pipeline.transforms:
        for leaf in _leaves(step) if isinstance(step, A.BaseCompose) else [step]:
            trial = leaf(image=out, force_apply=True)["image"]
            assert trial.dtype == image.dtype, type(leaf).__name__
            assert trial.shape[2] == image.shape[2], type(leaf).__name__
        out = step(image=out, force_apply=True)["image"]
    for _ in range(10):
        assert pipeline(image=image)["image"].shape == out.shape
    return out


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("input_hw", [(150, 170), (300, 90), (40, 50)])
def test_uint8_keeps_size_channels_dtype(
    host: PluginHost, name: str, train: bool, channels: int, input_hw: tuple[int, int]
) -> None:
    ctx = AugmentationContext(image_size=(64, 96), train=train, channels=channels)
    image = np.random.default_rng(0).integers(0, 256, (*input_hw, channels), dtype=np.uint8)
    out = _apply_every_step(host.augmentations.get(name).build(ctx), image)
    assert out.shape == (64, 96, channels)
    assert out.dtype == np.uint8


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("train", [True, False])
def test_aerial_keeps_float_five_band_values(host: PluginHost, train: bool) -> None:
    """Float reflectances in digital numbers (0-3000) are not clipped to 0-1; every band survives."""
    rng = np.random.default_rng(3)
    tile = (rng.random((40, 56, 5)) * 3000).astype(np.float32)
    ctx = AugmentationContext(image_size=(32, 32), train=train, channels=5)
    out = _apply_every_step(host.augmentations.get("agriculture/aerial").build(ctx), tile)
    assert out.shape == (32, 32, 5) and out.dtype == np.float32
    assert out.max() > 1000  # not clipped
    # Geometry and a +-10% gain move each band's mean by little: bands are not swapped or mixed.
    ratio = out.reshape(-1, 5).mean(0) / tile.reshape(-1, 5).mean(0)
    assert np.all((ratio > 0.8) & (ratio < 1.2)), ratio


def test_aerial_eval_is_the_eval_view_and_keeps_the_whole_tile_at_the_presets_crop(host: PluginHost) -> None:
    """A bright right quarter stays a quarter of the output at the preset's crop_pct 1.0: nothing is cut away."""
    crop_pct = host.presets.get("agriculture/aerial-yield").settings["crop_pct"]
    tile = np.zeros((40, 40, 5), dtype=np.float32)
    tile[:, 30:] = 1.0
    ctx = AugmentationContext(image_size=(10, 10), train=False, channels=5, crop_pct=crop_pct)
    out = host.augmentations.get("agriculture/aerial").build(ctx)(image=tile)["image"]
    assert out.shape == (10, 10, 5)
    np.testing.assert_allclose(out.mean(), 0.25, atol=0.03)
    np.testing.assert_array_equal(out, eval_transform(ctx)(image=tile)["image"])


def test_band_gain_is_per_band_and_unclipped() -> None:
    tile = np.full((8, 8, 6), 2000.0, dtype=np.float32)
    gain = BandGain(gain=(0.5, 1.5), p=1.0)
    gain.set_random_seed(0)
    out = gain(image=tile)["image"]
    per_band = out[0, 0] / 2000.0
    assert np.all((per_band >= 0.5) & (per_band <= 1.5))
    assert len(np.unique(np.round(per_band, 4))) == 6  # each band its own gain
    np.testing.assert_allclose(out, per_band * tile)  # the same gain over the whole band
    bright = BandGain(gain=(2.0, 2.0), p=1.0)(image=np.full((4, 4, 3), 200, dtype=np.uint8))["image"]
    assert bright.dtype == np.uint8 and int(bright.max()) == 255  # uint8 clips instead of wrapping


def test_field_covers_the_field_conditions(host: PluginHost) -> None:
    train = host.augmentations.get("agriculture/field").build(AugmentationContext(image_size=(224, 224), train=True))
    steps = {type(t).__name__: t for t in _leaves(train)}
    for name in (
        "RandomResizedCrop",
        "HorizontalFlip",
        "VerticalFlip",
        "RandomRotate90",
        "Rotate",
        "RandomBrightnessContrast",
        "RandomShadow",
        "RandomSunFlare",
        "PlanckianJitter",
        "HueSaturationValue",
        "MotionBlur",
        "GaussianBlur",
        "Defocus",
        "GaussNoise",
        "ImageCompression",
    ):
        assert name in steps, name
    assert tuple(steps["RandomResizedCrop"].scale) == (0.3, 1.0)
    assert steps["Rotate"].limit == (-45, 45)  # with the 90° turns: any angle
    assert steps["HueSaturationValue"].hue_shift_limit[1] <= 8  # leaf colour is the symptom
    for rare in ("RandomShadow", "RandomSunFlare", "ImageCompression"):
        assert steps[rare].p <= 0.25
    grey = host.augmentations.get("agriculture/field").build(AugmentationContext((224, 224), True, channels=1))
    assert not {"HueSaturationValue", "PlanckianJitter", "RandomSunFlare"} & {type(t).__name__ for t in _leaves(grey)}


def test_lab_is_milder_than_field(host: PluginHost) -> None:
    ctx = AugmentationContext(image_size=(224, 224), train=True)
    lab = {type(t).__name__: t for t in _leaves(host.augmentations.get("agriculture/lab").build(ctx))}
    assert tuple(lab["RandomResizedCrop"].scale) == (0.6, 1.0)
    assert not {"RandomShadow", "RandomSunFlare", "ImageCompression", "MotionBlur"} & set(lab)
    assert lab["RandomBrightnessContrast"].brightness_limit[1] <= 0.1


def test_aerial_is_geometric_plus_gain(host: PluginHost) -> None:
    ctx = AugmentationContext(image_size=(64, 64), train=True, channels=5)
    names = [type(t).__name__ for t in _leaves(host.augmentations.get("agriculture/aerial").build(ctx))]
    assert names == ["D4", "Affine", "SmallestMaxSize", "CenterCrop", "BandGain"]  # the eval view, then gain


@pytest.mark.parametrize("name", ["agriculture/field", "agriculture/lab"])
def test_photo_eval_is_the_core_eval_transform(host: PluginHost, name: str) -> None:
    ctx = AugmentationContext(image_size=(64, 64), train=False)
    image = np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    ours = host.augmentations.get(name).build(ctx)(image=image)["image"]
    np.testing.assert_array_equal(ours, eval_transform(ctx)(image=image)["image"])


def test_field_train_is_reproducible_with_a_seed(host: PluginHost) -> None:
    image = np.random.default_rng(2).integers(0, 256, (120, 150, 3), dtype=np.uint8)
    ctx = AugmentationContext(image_size=(64, 64), train=True)
    outs = []
    for _ in range(2):
        pipeline = host.augmentations.get("agriculture/field").build(ctx)
        pipeline.set_random_seed(7)
        outs.append([pipeline(image=image)["image"] for _ in range(5)])
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)
