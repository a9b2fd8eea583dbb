"""tlcore-agriculture: transfer-learning recipes for crop and plant-disease imaging.

Registers the ``agriculture/field`` augmentation, the ``agriculture/plantvillage`` dataset
adapter and the ``agriculture/leaf-disease`` preset through the hooks in
:mod:`tlcore.hookspecs`; installed through the ``tlcore`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from tlcore import hookimpl
from tlcore.specs import Augmentation, AugmentationContext, DatasetAdapter, Preset
from tlcore_agriculture import plantvillage

try:
    __version__ = version("tlcore-agriculture")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

LEAF_DISEASE = Preset(
    name="agriculture/leaf-disease",
    description="plant leaf-disease photos (PlantVillage-style or taken in the field): fine-tuning with "
    "field-condition augmentation (crops, flips, shadows, blur, JPEG artefacts)",
    settings={"augmentation": "agriculture/field"},
    extends="fine-tuning",
)


def _field(ctx: AugmentationContext) -> Any:
    # albumentations is imported when a pipeline is built, not when `tl list` loads the plugin.
    from tlcore_agriculture.augmentations import field

    return field(ctx)


@hookimpl
def register_augmentations(register: Callable[[Augmentation], None]) -> None:
    register(Augmentation(
        name="agriculture/field",
        description="field conditions: random resized crop (scale 0.3-1), flips and 90° turns, brightness/contrast, "
        "shadows, hue/saturation, motion blur, JPEG artefacts",
        build=_field,
    ))


@hookimpl
def register_dataset_adapters(register: Callable[[DatasetAdapter], None]) -> None:
    register(DatasetAdapter(
        name="agriculture/plantvillage",
        description="PlantVillage-style class folders named Crop___Disease (image-folder layout); "
        "records crop and disease per class; option crop: NAME keeps one crop",
        load=plantvillage.load,
        detect=plantvillage.detect,
        priority=10,
    ))


@hookimpl
def register_presets(register: Callable[[Preset], None]) -> None:
    register(LEAF_DISEASE)
