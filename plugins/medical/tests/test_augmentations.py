"""The MRI, dermoscopy and ultrasound augmentations: shapes, medical-safe steps, and flips only when allowed."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest

from tlcore.data.transforms import eval_transform
from tlcore.errors import ConfigError
from tlcore.plugins import PluginHost
from tlcore.specs import AugmentationContext

NAMES = ["medical/mri", "medical/dermoscopy", "medical/ultrasound"]
COLOUR = {"ColorJitter", "HueSaturationValue", "RGBShift", "ChannelShuffle"}


def steps(pipeline: A.Compose) -> list[str]:
    return [type(t).__name__ for t in pipeline.transforms]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("train", [True, False])
def test_output_is_uint8_at_the_model_size(host: PluginHost, name: str, channels: int, train: bool) -> None:
    ctx = AugmentationContext(image_size=(48, 48), train=train, channels=channels)
    pipeline = host.augmentations.get(name).build(ctx)
    image = np.random.default_rng(0).integers(0, 256, (70, 90, channels), dtype=np.uint8)
    forced = image
    for step in pipeline.transforms:  # every step once, rare ones included
        forced = step(image=forced, force_apply=True)["image"]
    assert forced.shape == (48, 48, channels) and forced.dtype == np.uint8
    assert pipeline(image=image)["image"].shape == (48, 48, channels)


@pytest.mark.parametrize("name", NAMES)
def test_eval_is_the_core_eval_transform(host: PluginHost, name: str) -> None:
    ctx = AugmentationContext(image_size=(32, 32), train=False, params={"hflip": True})
    assert steps(host.augmentations.get(name).build(ctx)) == steps(eval_transform(ctx))


def test_mri_is_grey_small_and_unflipped_by_default(host: PluginHost) -> None:
    build = host.augmentations.get("medical/mri").build
    train = build(AugmentationContext(image_size=(64, 64), train=True))
    assert {"Affine", "RandomBrightnessContrast", "RandomGamma", "CLAHE", "GaussNoise"} <= set(steps(train))
    assert not {"HorizontalFlip", "VerticalFlip"} & set(steps(train)) and not COLOUR & set(steps(train))
    affine = next(t for t in train.transforms if isinstance(t, A.Affine))
    assert tuple(affine.rotate) == (-10, 10)
    flipped = build(AugmentationContext(image_size=(64, 64), train=True, params={"hflip": True}))
    assert "HorizontalFlip" in steps(flipped) and "VerticalFlip" not in steps(flipped)


def test_dermoscopy_flips_rotates_freely_and_keeps_colour_mild(host: PluginHost) -> None:
    build = host.augmentations.get("medical/dermoscopy").build
    train = build(AugmentationContext(image_size=(64, 64), train=True))
    assert {"HorizontalFlip", "VerticalFlip", "RandomResizedCrop", "HueSaturationValue"} <= set(steps(train))
    assert tuple(next(t for t in train.transforms if isinstance(t, A.Affine)).rotate) == (-180, 180)
    hsv = next(t for t in train.transforms if isinstance(t, A.HueSaturationValue))
    assert max(abs(v) for v in hsv.hue_shift_limit) <= 5 and max(abs(v) for v in hsv.sat_shift_limit) <= 10
    grey = build(AugmentationContext(image_size=(64, 64), train=True, channels=1))
    assert not COLOUR & set(steps(grey))
    no_flip = build(AugmentationContext(image_size=(64, 64), train=True, params={"hflip": False, "vflip": False}))
    assert not {"HorizontalFlip", "VerticalFlip"} & set(steps(no_flip))


def test_ultrasound_has_speckle_and_never_flips_vertically(host: PluginHost) -> None:
    build = host.augmentations.get("medical/ultrasound").build
    train = build(AugmentationContext(image_size=(64, 64), train=True))
    assert {"MultiplicativeNoise", "RandomBrightnessContrast", "Affine"} <= set(steps(train))
    assert not {"HorizontalFlip", "VerticalFlip"} & set(steps(train)) and not COLOUR & set(steps(train))
    noise = next(t for t in train.transforms if isinstance(t, A.MultiplicativeNoise))
    assert noise.elementwise  # per pixel, like speckle
    flipped = build(AugmentationContext(image_size=(64, 64), train=True, params={"hflip": True}))
    assert "HorizontalFlip" in steps(flipped) and "VerticalFlip" not in steps(flipped)


@pytest.mark.parametrize("name", NAMES)
def test_flip_params_must_be_booleans(host: PluginHost, name: str) -> None:
    with pytest.raises(ConfigError, match="hflip must be true or false"):
        host.augmentations.get(name).build(AugmentationContext(image_size=(32, 32), train=True,
                                                               params={"hflip": "yes"}))
