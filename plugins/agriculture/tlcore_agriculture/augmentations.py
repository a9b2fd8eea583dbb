"""Augmentation for crop and leaf photos taken in the field."""

from __future__ import annotations

import albumentations as A

from tlcore.data.transforms import INTERPOLATION, eval_transform
from tlcore.specs import AugmentationContext


def field(ctx: AugmentationContext) -> A.Compose:
    """Field conditions: random resized crop (scale 0.3-1), flips and 90° turns, brightness/contrast,
    shadows, hue/saturation, motion blur and JPEG artefacts."""
    if not ctx.train:
        return eval_transform(ctx)
    h, w = ctx.image_size
    interp = INTERPOLATION.get(ctx.interpolation, INTERPOLATION["bicubic"])
    steps: list[A.BasicTransform] = [
        # Leaves have no up or down. Turned before the crop so a non-square input size keeps its shape.
        A.RandomRotate90(p=0.5),
        A.RandomResizedCrop(size=(h, w), scale=(0.3, 1.0), interpolation=interp),
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=0.5),
        A.RandomShadow(shadow_roi=(0, 0, 1, 1), num_shadows_limit=(1, 2), shadow_dimension=5,
                       shadow_intensity_range=(0.3, 0.6), p=0.15),
    ]
    if ctx.channels == 3:
        # Hue shifts stay small: leaf colour (yellowing, browning) is often the symptom itself.
        steps.append(A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=20, val_shift_limit=15, p=0.4))
    steps += [
        A.MotionBlur(blur_limit=(3, 5), p=0.1),  # hand-held phone, wind
        A.ImageCompression(quality_range=(60, 95), p=0.2),  # phone and messaging-app JPEGs
    ]
    return A.Compose(steps)
