"""Default augmentation pipelines: photos and multi-band arrays (uint8 or float32, any channel count)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tlcore import hookimpl
from tlcore.specs import Augmentation, AugmentationContext

DESCRIPTIONS = {
    "standard": "random resized crop, horizontal flip; mild colour jitter on 3-channel uint8 photos only "
    "(any channels, uint8 or float32)",
    "light": "gentle: resize, small shift/scale/rotate and horizontal flip (geometric only; any channels and dtype)",
    "trivial": "TrivialAugment-style: random resized crop and flip, then one operation (rotate, shear, shift, "
    "brightness, contrast, sharpness, posterize, solarize, equalize, autocontrast; saturation on photos) at a "
    "random strength; params hflip (default true), vflip (false), scale",
    "none": "no augmentation: the eval preprocessing for training too (any channels and dtype)",
}


def _lazy(name: str) -> Callable[[AugmentationContext], Any]:
    # albumentations and OpenCV load only when a pipeline is built, so `tl list` stays fast.
    def build(ctx: AugmentationContext) -> Any:
        from tlcore.data import transforms

        return getattr(transforms, name)(ctx)

    return build


@hookimpl
def register_augmentations(register: Callable[[Augmentation], None]) -> None:
    for name, description in DESCRIPTIONS.items():
        register(Augmentation(name=name, description=description, build=_lazy(name)))
