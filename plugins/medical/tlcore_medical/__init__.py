"""tlcore-medical: transfer-learning recipes for medical imaging.

Registers, through the hooks in :mod:`tlcore.hookspecs` (entry-point group ``tlcore``):

- dataset adapters ``medical/manifest``, ``medical/dicom``, ``medical/nifti``, ``medical/medmnist``,
  ``medical/multilabel``, ``medical/masked-folder`` and ``medical/brain-tumor-mat``;
- augmentations ``medical/xray``, ``medical/mri``, ``medical/dermoscopy`` and ``medical/ultrasound``;
- presets ``medical/chest-xray``, ``medical/brain-tumor-mri``, ``medical/skin-lesion`` and
  ``medical/breast-ultrasound``.

Heavy imports (pydicom, nibabel, pandas, albumentations) wait until an adapter loads or a pipeline
is built, so ``tl list`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from tlcore import hookimpl
from tlcore.specs import Augmentation, AugmentationContext, DatasetAdapter, LabeledDataset, Perturbation, Preset
from tlcore_medical.presets import PRESETS

try:
    __version__ = version("tlcore-medical")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: The tlcore hook contract this plugin is built for (tlcore.HOOKS_VERSION); tlcore loads it only when it speaks it.
TLCORE_HOOKS = "1.0"

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
        # A radiograph is framed by the radiographer: the costophrenic angles and apices sit at its edges,
        # so the eval view keeps the whole film instead of timm's 87.5 % centre crop.
        "crop_pct": 1.0,
        # `tl stress` also tries uneven exposure across the film (plus the core's changes).
        "stress_perturbations": ["medical/bias-field"],
    },
    extends="fine-tuning",
)


def _augmentation(name: str) -> Callable[[AugmentationContext], Any]:
    def build(ctx: AugmentationContext) -> Any:
        # albumentations is imported when a pipeline is built, not when `tl list` loads the plugin.
        from tlcore_medical import augmentations

        return getattr(augmentations, name)(ctx)

    return build


def _xray(ctx: AugmentationContext) -> Any:
    return _augmentation("xray")(ctx)


@hookimpl
def register_augmentations(register: Callable[[Augmentation], None]) -> None:
    register(Augmentation(
        name="medical/xray",
        description="grey radiographs: eval resize/crop, framing zoom 0.85-1.25, shift 6%, rotate 10°, x/y "
        "scale 0.9-1.1 apart, brightness/contrast, gamma, CLAHE, blur or downscale, JPEG quality 30-95, light "
        "noise; no flip (param hflip: true adds one), no colour jitter",
        build=_xray,
    ))
    register(Augmentation(
        name="medical/mri",
        description="grey MRI slices: eval resize/crop, small affine (rotate 10°), brightness/contrast, gamma, "
        "CLAHE, light noise; no colour jitter; no flip unless param hflip: true",
        build=_augmentation("mri"),
    ))
    register(Augmentation(
        name="medical/dermoscopy",
        description="dermoscopy: random resized crop (0.6-1), rotation by any angle, horizontal and vertical "
        "flips (params hflip/vflip), mild brightness/contrast and colour",
        build=_augmentation("dermoscopy"),
    ))
    register(Augmentation(
        name="medical/ultrasound",
        description="ultrasound: eval resize/crop, small affine (rotate 7°), gain/contrast, gamma, multiplicative "
        "speckle-like noise, slight blur; no flip unless param hflip: true, never vertical",
        build=_augmentation("ultrasound"),
    ))


def _lazy(module: str, function: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        # pandas, pydicom, nibabel and OpenCV are imported when an adapter or a stress-test change is used,
        # not when the plugin loads.
        import importlib

        return getattr(importlib.import_module(f"tlcore_medical.{module}"), function)(*args)

    return call


def _load(module: str) -> Callable[[Path, Any], LabeledDataset]:
    return _lazy(module, "load")


def _detect(module: str) -> Callable[[Path], bool]:
    return _lazy(module, "detect")


@hookimpl
def register_dataset_adapters(register: Callable[[DatasetAdapter], None]) -> None:
    # Priorities: specific formats above the core's image-folder (0) and csv-manifest (-10) adapters.
    register(DatasetAdapter(
        name="medical/medmnist",
        description="MedMNIST .npz (train/val/test_images and _labels; 28-224 px, grey or RGB; multi-label for "
        "ChestMNIST); options: file, size, classes, channels",
        load=_load("medmnist"), detect=_detect("medmnist"), priority=30,
        predict_inputs=_lazy("medmnist", "predict_inputs"),
    ))
    register(DatasetAdapter(
        name="medical/dicom",
        description="DICOM class folders or a CSV of DICOM paths (pydicom): rescale slope/intercept, window from "
        "the header (VOI LUT or window) or option window (center, width), MONOCHROME1 inverted; PatientID is the group",
        load=_load("dicom"), detect=_detect("dicom"), priority=20,
        predict_inputs=_lazy("dicom", "predict_inputs"),
    ))
    register(DatasetAdapter(
        name="medical/nifti",
        description="NIfTI volumes (nibabel) as 2-D slices or 2.5-D stacks (options axis, mode, context); labels "
        "from class folders, a manifest, or masks (min_mask_voxels); percentile or window normalisation",
        load=_load("nifti"), detect=_detect("nifti"), priority=20,
        predict_inputs=_lazy("nifti", "predict_inputs"),
    ))
    register(DatasetAdapter(
        name="medical/brain-tumor-mat",
        description="Cheng's figshare brain tumour set as published (MATLAB v7.3 .mat: cjdata image, label, PID); "
        "the patient id is the group",
        load=_load("brain_mat"), detect=_detect("brain_mat"), priority=20,
        predict_inputs=_lazy("brain_mat", "predict_inputs"),
    ))
    register(DatasetAdapter(
        name="medical/multilabel",
        description="multi-label manifests: ChestX-ray14 (Finding Labels, Patient ID, official split lists) or "
        "CheXpert (1/0/-1/blank columns; options uncertain, blank: zeros|ones|ignore)",
        load=_load("multilabel"), detect=_detect("multilabel"), priority=15,
    ))
    register(DatasetAdapter(
        name="medical/manifest",
        description="CSV with path, label and patient/study/lesion columns (names auto-detected or set with "
        "path_column, label_column, group_column); patient-level splits; optional split column",
        load=_load("manifest"), detect=_detect("manifest"), priority=5,
        predict_inputs=_lazy("manifest", "predict_inputs"),
    ))
    register(DatasetAdapter(
        name="medical/masked-folder",
        description="image class folders with segmentation masks beside the images (BUSI's *_mask.png): the "
        "masks are left out",
        load=_load("masked_folder"), detect=_detect("masked_folder"), priority=5,
    ))


@hookimpl
def register_presets(register: Callable[[Preset], None]) -> None:
    register(CHEST_XRAY)
    for preset in PRESETS:
        register(preset)


@hookimpl
def register_perturbations(register: Callable[[Perturbation], None]) -> None:
    register(Perturbation(
        name="medical/bias-field",
        description="smooth intensity ramp, 25 % brighter to 25 % darker across the image (MR coil "
        "inhomogeneity, uneven exposure)",
        apply=_lazy("perturbations", "bias_field"),
    ))
    register(Perturbation(
        name="medical/speckle",
        description="multiplicative speckle, 2 px grains, 20 % (another ultrasound probe or gain)",
        apply=_lazy("perturbations", "speckle"),
    ))
