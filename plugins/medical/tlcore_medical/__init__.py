"""tlcore-medical: transfer-learning recipes for medical imaging.

Registers the ``medical/xray`` augmentation and the ``medical/chest-xray`` preset through the
hooks in :mod:`tlcore.hookspecs`; installed through the ``tlcore`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from tlcore import hookimpl
from tlcore.specs import Augmentation, AugmentationContext, Preset

try:
    __version__ = version("tlcore-medical")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

CHEST_XRAY = Preset(
    name="medical/chest-xray",
    description="chest radiographs (e.g. pneumonia vs normal): fine-tuning with radiograph augmentation "
    "(no flips or colour jitter), balanced class weights, model chosen on balanced accuracy",
    settings={
        "augmentation": "medical/xray",
        "class_weights": "balanced",
        "monitor": "balanced_accuracy",
        # A few thousand radiographs give 4-5x the optimiser steps per epoch of a small photo set:
        # 5 epochs of the cosine schedule is ~750 steps at batch 32, more than the core preset's
        # 15 epochs on ~1k images, and keeps a 2-core CPU run near 20-30 minutes.
        "epochs": 5,
        # Radiographs are not mirror-symmetric (heart on the left): no mirrored test-time views.
        "tta": False,
    },
    extends="fine-tuning",
)


def _xray(ctx: AugmentationContext) -> Any:
    # albumentations is imported when a pipeline is built, not when `tl list` loads the plugin.
    from tlcore_medical.augmentations import xray

    return xray(ctx)


@hookimpl
def register_augmentations(register: Callable[[Augmentation], None]) -> None:
    register(Augmentation(
        name="medical/xray",
        description="grey radiographs: eval resize/crop, small affine (scale 0.9-1.1, shift 5%, rotate 10°), "
        "brightness/contrast, gamma, CLAHE, light noise; no flip (param hflip: true adds one), no colour jitter",
        build=_xray,
    ))


@hookimpl
def register_presets(register: Callable[[Preset], None]) -> None:
    register(CHEST_XRAY)
