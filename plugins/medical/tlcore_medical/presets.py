"""Presets for MRI, dermoscopy and breast ultrasound; ``medical/chest-xray`` lives in ``__init__``.

All extend the core ``fine-tuning`` preset: LP-FT on the offline ImageNet EfficientNet-Lite0 (a linear
probe on cached features first, so a few hundred images do not wreck the pretrained features; then
everything but the stem fine-tunes at a 3x smaller learning rate), label smoothing, and the end of
a cosine schedule kept (``checkpoint: last``). What differs per modality is below, with the reason.

Shared choices:

- ``class_weights: balanced``: medical sets are imbalanced (HAM10000 is 2/3 nevi, BUSI has twice as
  many benign as malignant images). Weighting the loss keeps every image and every epoch the same
  length; oversampling (``balanced_sampling``) would repeat the few rare images many times per epoch.
- ``monitor: balanced_accuracy``: the mean per-class recall, which a majority-class model cannot
  game (the ISIC 2018 challenge ranked on it). It picks the epoch when ``checkpoint=best`` is set.
- Binary runs report an operating point chosen on val (``operating_point: youden``) with
  sensitivity/specificity/PPV/NPV on test and 95% bootstrap intervals (tlcore.metrics).
"""

from __future__ import annotations

from tlcore.specs import Preset

COMMON = {"class_weights": "balanced", "monitor": "balanced_accuracy"}

BRAIN_TUMOR_MRI = Preset(
    name="medical/brain-tumor-mri",
    description="brain MRI slices (e.g. glioma / meningioma / pituitary / no tumour): fine-tuning with MRI "
    "augmentation (grey levels, small rotations, left-right mirror), balanced class weights",
    settings={
        **COMMON,
        "augmentation": "medical/mri",
        # The two hemispheres mirror each other and a tumour can sit on either side, so a left-right
        # mirror image is a plausible scan; the same holds for the mirrored test-time view.
        "augmentation_params": {"hflip": True},
        "tta": True,
        # Public sets hold 3-7k slices (Cheng's figshare set: 3064): 10 epochs of ~70-150 steps.
        "epochs": 10,
        # `tl stress` also tries receive-coil inhomogeneity, which differs between scanners and coils.
        "stress_perturbations": ["medical/bias-field"],
    },
    extends="fine-tuning",
)

SKIN_LESION = Preset(
    name="medical/skin-lesion",
    description="dermoscopy (e.g. HAM10000 / ISIC: melanoma, nevus, ...): fine-tuning with rotations by any "
    "angle, flips and mild colour changes, balanced class weights; melanoma is the positive class",
    settings={
        **COMMON,
        "augmentation": "medical/dermoscopy",
        "tta": True,  # orientation carries no information in dermoscopy: average the mirror image too
        # HAM10000 has ~7k training images; 8 epochs is ~1.7k steps at batch 32 and keeps a CPU run in hours.
        "epochs": 8,
        # Binary melanoma-vs-rest sets: sensitivity and PPV are about melanoma (the second class otherwise).
        "positive_class": "melanoma",
    },
    extends="fine-tuning",
)

BREAST_ULTRASOUND = Preset(
    name="medical/breast-ultrasound",
    description="breast ultrasound (e.g. BUSI: normal / benign / malignant): fine-tuning at 256 px (short side "
    "uncropped) with speckle-like noise, gain changes and left-right mirror (never up-down), balanced class weights",
    settings={
        **COMMON,
        "augmentation": "medical/ultrasound",
        # Depth runs down the image, so never up-down; left-right only mirrors the probe's orientation.
        "augmentation_params": {"hflip": True},
        "tta": True,
        # The short side whole at 256 px, not the middle 224 px of it: a lesion near the edge of the
        # scan stays in view, and public sets are stored at about that size (BUS-BRA: a 256 px short
        # side), so nothing is upsampled. Chosen on val over the medical development sets (docs/results.md).
        "image_size": 256,
        "crop_pct": 1.0,
        # Hundreds of images (BUSI: 780, BreastMNIST: 780): the core's 15 epochs are only ~300 steps;
        # 20 epochs with stronger dropout lets the small set fit without memorising it.
        "epochs": 20,
        "drop_rate": 0.3,
        # Binary benign-vs-malignant sets: sensitivity and PPV are about malignancy.
        "positive_class": "malignant",
        # `tl stress` also tries another probe's speckle.
        "stress_perturbations": ["medical/speckle"],
    },
    extends="fine-tuning",
)

PRESETS = (BRAIN_TUMOR_MRI, SKIN_LESION, BREAST_ULTRASOUND)
