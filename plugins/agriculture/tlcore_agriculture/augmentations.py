"""Augmentation for crop imaging: leaf photos in the field, leaf photos in the lab, multispectral tiles.

Each pipeline maps an ``HxWxC`` image to the model's input size and keeps its dtype. Colour steps
run only on 3-channel input; ``aerial`` is geometric plus a per-band gain, so it is valid on any
band count and on float32 reflectances or digital numbers (nothing is clipped to 0-1).
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np

from tlcore.data.transforms import INTERPOLATION, eval_transform
from tlcore.specs import AugmentationContext


def _interp(ctx: AugmentationContext) -> int:
    return INTERPOLATION.get(ctx.interpolation, INTERPOLATION["bicubic"])


def field(ctx: AugmentationContext) -> A.Compose:
    """Phone photos of leaves in the field: framing, orientation, light, colour cast, blur, noise, JPEG.

    Probabilities are kept moderate: each image sees a few distortions, not all of them, so a
    15-epoch fine-tuning still fits the clean images well.
    """
    if not ctx.train:
        return eval_transform(ctx)
    h, w = ctx.image_size
    steps: list[A.BasicTransform] = [
        # Leaves have no up or down. Turned before the crop so a non-square input size keeps its shape.
        A.RandomRotate90(p=0.5),
        # Framing: a hand-held photo shows part of the leaf or the whole plant.
        A.RandomResizedCrop(size=(h, w), scale=(0.3, 1.0), interpolation=_interp(ctx)),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        # With the 90° turns above: any angle. Reflected borders look like more foliage, not black corners.
        A.Rotate(limit=45, border_mode=cv2.BORDER_REFLECT_101, p=0.3),
        # Illumination: exposure and contrast change with the sky and the time of day.
        A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=0.5),
        A.RandomShadow(
            shadow_roi=(0, 0, 1, 1),
            num_shadows_limit=(1, 2),
            shadow_dimension=5,
            shadow_intensity_range=(0.3, 0.6),
            p=0.15,
        ),
    ]
    if ctx.channels == 3:
        steps += [
            A.RandomSunFlare(
                flare_roi=(0, 0, 1, 0.5),
                src_radius=max(8, int(0.35 * min(h, w))),
                num_flare_circles_range=(3, 6),
                p=0.05,
            ),
            # White balance: the light source's colour temperature (shade, overcast, low sun).
            A.PlanckianJitter(mode="blackbody", temperature_limit=(4000, 9000), p=0.3),
            # Hue shifts stay small: leaf colour (yellowing, browning) is often the symptom itself.
            A.HueSaturationValue(hue_shift_limit=6, sat_shift_limit=20, val_shift_limit=10, p=0.3),
        ]
    steps += [
        A.OneOf(
            [
                A.MotionBlur(blur_limit=(3, 7)),  # hand-held phone, wind
                A.Defocus(radius=(1, 3), alias_blur=(0.1, 0.3)),  # the camera focused on the background
                A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.5)),
            ],
            p=0.2,
        ),
        A.OneOf(
            [
                A.GaussNoise(std_range=(0.02, 0.06)),  # low light
                A.ISONoise(color_shift=(0.01, 0.03), intensity=(0.1, 0.4)),
            ],
            p=0.15,
        )
        if ctx.channels == 3
        else A.GaussNoise(std_range=(0.02, 0.06), p=0.15),
        A.ImageCompression(quality_range=(50, 95), p=0.25),  # phone and messaging-app JPEGs
    ]
    return A.Compose(steps)


def lab(ctx: AugmentationContext) -> A.Compose:
    """Lab photos (one leaf on a uniform background, controlled light): mild and mostly geometric.

    The test images come from the same lab, so strong photometric changes would only teach the
    model conditions it will not see. The crop keeps most of the leaf (scale 0.6-1).
    """
    if not ctx.train:
        return eval_transform(ctx)
    h, w = ctx.image_size
    steps: list[A.BasicTransform] = [
        A.RandomRotate90(p=0.5),
        A.RandomResizedCrop(size=(h, w), scale=(0.6, 1.0), interpolation=_interp(ctx)),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        # Replicated borders continue the uniform background.
        A.Rotate(limit=20, border_mode=cv2.BORDER_REPLICATE, p=0.3),
        A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.3),
    ]
    if ctx.channels == 3:
        steps.append(A.HueSaturationValue(hue_shift_limit=3, sat_shift_limit=10, val_shift_limit=5, p=0.2))
    return A.Compose(steps)


class BandGain(A.ImageOnlyTransform):  # type: ignore[misc]
    """Multiply each band by its own random gain (sensor calibration, sun angle, haze between flights).

    Unlike albumentations' MultiplicativeNoise this never clips float input to 0-1, so it is valid on
    reflectances, digital numbers and appended index channels alike; uint8 input is clipped to 0-255.
    """

    def __init__(self, gain: tuple[float, float] = (0.9, 1.1), p: float = 0.5) -> None:
        super().__init__(p=p)
        self.gain = (float(gain[0]), float(gain[1]))

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        shape = params["shape"]
        bands = shape[2] if len(shape) == 3 else 1
        return {"gains": self.random_generator.uniform(self.gain[0], self.gain[1], size=bands).astype(np.float32)}

    def apply(self, img: np.ndarray, gains: np.ndarray, **params: Any) -> np.ndarray:
        out = img.astype(np.float32) * (gains if img.ndim == 3 else gains[0])
        uint8 = img.dtype == np.uint8
        result: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8) if uint8 else out.astype(img.dtype)
        return result

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("gain",)


def aerial(ctx: AugmentationContext) -> A.Compose:
    """Multispectral tiles: the 8 flips and right-angle turns, a small shift, per-band gain; nothing else.

    Nadir tiles have no up, down or handedness, so the dihedral group is free. The shift is small
    (up to 6%) because a tile's target is measured over that tile. Colour, blur and noise steps are
    left out: they assume RGB uint8 and would turn index channels (NDVI) into nonsense.
    """
    if not ctx.train:
        # The eval view every command uses; the aerial preset sets crop_pct 1.0, so a square tile is
        # resized whole: its target (yield) belongs to all of it.
        return eval_transform(ctx)
    shift = float(ctx.params.get("shift", 0.06))
    gain = ctx.params.get("band_gain", (0.9, 1.1))
    return A.Compose(
        [
            A.D4(p=1.0),
            A.Affine(translate_percent=(-shift, shift), border_mode=cv2.BORDER_REFLECT_101, p=0.5),
            *eval_transform(ctx).transforms,
            BandGain(gain=(float(gain[0]), float(gain[1])), p=0.5),
        ]
    )
