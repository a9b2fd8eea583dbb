"""Augmentation for grey radiographs (chest X-ray and similar)."""

from __future__ import annotations

import albumentations as A
import cv2

from tlcore.data.transforms import eval_transform
from tlcore.errors import ConfigError
from tlcore.specs import AugmentationContext


def xray(ctx: AugmentationContext) -> A.Compose:
    """Radiographs: eval resize/crop, small affine, brightness/contrast, gamma, CLAHE, light noise; no flip
    (param hflip: true adds one) and no colour jitter."""
    hflip = ctx.params.get("hflip", False)
    if not isinstance(hflip, bool):
        raise ConfigError(f"medical/xray: hflip must be true or false, got {hflip!r}",
                          "--set augmentation_params={hflip: true}")
    if not ctx.train:
        return eval_transform(ctx)
    steps: list[A.BasicTransform] = [
        *eval_transform(ctx).transforms,
        # Small pose changes only: anatomy keeps its orientation; a black border like the detector edge.
        A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-10, 10),
                 border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.7),
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.5),
        A.RandomGamma(gamma_limit=(85, 115), p=0.3),
        A.CLAHE(clip_limit=(1.0, 3.0), tile_grid_size=(8, 8), p=0.3),
        # std as a fraction of the 0-255 range: 1-3 %.
        A.GaussNoise(std_range=(0.01, 0.03), p=0.2),
    ]
    # Left/right matters in chest films (heart, situs); flip only when the user asks for it.
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    return A.Compose(steps)
