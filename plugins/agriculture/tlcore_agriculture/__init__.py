"""tlcore-agriculture: transfer-learning recipes for crop-disease photos and aerial crop imagery.

Registers, through the hooks in :mod:`tlcore.hookspecs`: the ``agriculture/field``, ``agriculture/lab``
and ``agriculture/aerial`` augmentations, the ``agriculture/plantvillage`` and ``agriculture/aerial-tiles``
dataset adapters, and the ``agriculture/leaf-disease``, ``agriculture/plantvillage`` and
``agriculture/aerial-yield`` presets. Installed through the ``tlcore`` entry-point group. Heavy
libraries (albumentations, pandas, tifffile) load when they are used, not when ``tl list`` imports
the plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from tlcore import hookimpl
from tlcore.specs import Augmentation, AugmentationContext, DatasetAdapter, LabeledDataset, Perturbation, Preset
from tlcore_agriculture import plantvillage
from tlcore_agriculture.presets import PRESETS

try:
    __version__ = version("tlcore-agriculture")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: The tlcore hook contract this plugin is built for (tlcore.HOOKS_VERSION); tlcore loads it only when it speaks it.
TLCORE_HOOKS = "1.0"


def _field(ctx: AugmentationContext) -> Any:
    from tlcore_agriculture.augmentations import field

    return field(ctx)


def _lab(ctx: AugmentationContext) -> Any:
    from tlcore_agriculture.augmentations import lab

    return lab(ctx)


def _aerial(ctx: AugmentationContext) -> Any:
    from tlcore_agriculture.augmentations import aerial

    return aerial(ctx)


@hookimpl
def register_augmentations(register: Callable[[Augmentation], None]) -> None:
    register(
        Augmentation(
            name="agriculture/field",
            description="leaf photos in the field: random resized crop (0.3-1), flips, any-angle rotation, "
            "brightness/contrast, shadows, sun flare, white balance, small hue shifts, blur, noise, JPEG",
            build=_field,
        )
    )
    register(
        Augmentation(
            name="agriculture/lab",
            description="lab leaf photos on a uniform background: crop (0.6-1), flips and turns, small rotation, "
            "mild brightness/contrast and hue",
            build=_lab,
        )
    )
    register(
        Augmentation(
            name="agriculture/aerial",
            description="multispectral tiles (any band count, float32): flips and 90° turns, small shift, "
            "per-band gain; the whole tile is resized, never cropped",
            build=_aerial,
        )
    )


def _aerial_load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    from tlcore_agriculture.aerial_tiles import load  # pandas and tifffile load with the data

    return load(root, options)


def _aerial_detect(root: Path) -> bool:
    from tlcore_agriculture.aerial_tiles import detect

    return detect(root)


@hookimpl
def register_dataset_adapters(register: Callable[[DatasetAdapter], None]) -> None:
    register(
        DatasetAdapter(
            name="agriculture/plantvillage",
            description="PlantVillage-style Crop___Disease class folders (flat, split or color/grayscale/segmented "
            "layouts); options target: crop_disease|disease|crop, crops (a list), image_set, exclude",
            load=plantvillage.load,
            detect=plantvillage.detect,
            priority=10,
        )
    )
    register(
        DatasetAdapter(
            name="agriculture/aerial-tiles",
            description="CSV of aerial tiles (GeoTIFF, .npy; any band count) -> a number such as yield (regression); "
            "options bands, indices (ndvi, ndre, ...), a field column or spatial_blocks: N for grouped splits",
            load=_aerial_load,
            detect=_aerial_detect,
            # Ahead of image-folder (a folder of .tif tiles looks like images) and of csv-manifest.
            priority=20,
        )
    )


@hookimpl
def register_presets(register: Callable[[Preset], None]) -> None:
    for preset in PRESETS:
        register(preset)


def _perturbation(name: str) -> Callable[[Any], Any]:
    def apply(image: Any) -> Any:
        # OpenCV loads when a stress test runs, not when `tl list` loads the plugin.
        from tlcore_agriculture import perturbations

        return getattr(perturbations, name)(image)

    return apply


@hookimpl
def register_perturbations(register: Callable[[Perturbation], None]) -> None:
    register(Perturbation(
        name="agriculture/shadow",
        description="left 40 % of the image in shade, 45 % less light, soft edge (a leaf, the photographer, "
        "a cloud)",
        apply=_perturbation("shadow"),
    ))
    register(Perturbation(
        name="agriculture/motion-blur",
        description="7 px horizontal motion blur (hand-held phone, moving drone)",
        apply=_perturbation("motion_blur"),
    ))
