"""The core's standard albumentations pipelines (resize/crop at the model's input size).

Every pipeline takes ``HxWxC`` uint8 or float32 arrays with any channel count: the geometric steps
(resize, crop, flip, affine) work on all of them; colour jitter applies only to 3-channel uint8
photos and leaves other data unchanged (its brightness/saturation model and 0-255 range do not fit bands).
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np

from tlcore.specs import AugmentationContext

INTERPOLATION = {
    "bicubic": cv2.INTER_CUBIC,
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


class PhotoColorJitter(A.ColorJitter):  # type: ignore[misc]  # albumentations is untyped
    """Colour jitter for uint8 photos; float32 bands (raw units, not 0-1) pass through unchanged."""

    def apply(self, img: np.ndarray, *args: Any, **params: Any) -> np.ndarray:
        if img.dtype != np.uint8 or img.shape[-1] != 3:
            return img
        out: np.ndarray = super().apply(img, *args, **params)
        return out


def eval_transform(ctx: AugmentationContext) -> A.Compose:
    """Resize the short side to size/crop_pct, then centre-crop: timm's eval preprocessing."""
    h, w = ctx.image_size
    interp = INTERPOLATION.get(ctx.interpolation, cv2.INTER_CUBIC)
    if h != w:  # timm does the same for non-square inputs: resize both sides, then crop
        resize: A.BasicTransform = A.Resize(int(h / ctx.crop_pct), int(w / ctx.crop_pct), interpolation=interp)
    else:
        resize = A.SmallestMaxSize(max_size=round(h / ctx.crop_pct), interpolation=interp)
    return A.Compose([resize, A.CenterCrop(height=h, width=w)])


def standard(ctx: AugmentationContext) -> A.Compose:
    """Random resized crop, horizontal flip, and mild colour jitter on 3-channel uint8 photos."""
    if not ctx.train:
        return eval_transform(ctx)
    h, w = ctx.image_size
    interp = INTERPOLATION.get(ctx.interpolation, cv2.INTER_CUBIC)
    scale = tuple(ctx.params.get("scale", (0.35, 1.0)))
    steps: list[A.BasicTransform] = [
        A.RandomResizedCrop(size=(h, w), scale=scale, interpolation=interp),
        A.HorizontalFlip(p=0.5),
    ]
    if ctx.channels == 3:
        steps.append(PhotoColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5))
    return A.Compose(steps)


def light(ctx: AugmentationContext) -> A.Compose:
    """Gentle: resize, small shift/scale/rotate and horizontal flip."""
    if not ctx.train:
        return eval_transform(ctx)
    return A.Compose(
        [
            *eval_transform(ctx).transforms,
            A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-10, 10), p=0.7),
            A.HorizontalFlip(p=0.5),
        ]
    )


def none(ctx: AugmentationContext) -> A.Compose:
    """No augmentation: the eval preprocessing for training too."""
    return eval_transform(ctx)
