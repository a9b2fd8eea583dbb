"""Medical-safe augmentations (albumentations): radiographs, MRI, dermoscopy and ultrasound.

Each keeps to what the modality allows: grey modalities get no colour jitter, and flips only where
the anatomy allows them (a preset turns them on with ``augmentation_params={hflip: true}``).
"""

from __future__ import annotations

import albumentations as A
import cv2

from tlcore.data.transforms import INTERPOLATION, eval_transform
from tlcore.errors import ConfigError
from tlcore.specs import AugmentationContext


def xray(ctx: AugmentationContext) -> A.Compose:
    """Radiographs: eval resize/crop, affine with independent x/y scale, exposure (brightness/contrast, gamma,
    CLAHE), detector resolution (blur or down-and-up sampling) and light noise; no flip (param hflip: true adds
    one) and no colour jitter."""
    hflip = ctx.params.get("hflip", False)
    if not isinstance(hflip, bool):
        raise ConfigError(f"medical/xray: hflip must be true or false, got {hflip!r}",
                          "--set augmentation_params={hflip: true}")
    if not ctx.train:
        return eval_transform(ctx)
    steps: list[A.BasicTransform] = [
        *eval_transform(ctx).transforms,
        # Framing: radiographers collimate tighter or looser; a stress test on val (`tl stress`) found a
        # model trained without this calling 13 % of normal films pneumonia when they were framed 1.2x tighter.
        # Small pose changes only: anatomy keeps its orientation; a black border like the detector edge.
        A.Affine(scale=(0.85, 1.25), keep_ratio=True, translate_percent=(-0.06, 0.06), rotate=(-10, 10),
                 border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.8),
        # Width and height scale independently: public sets squash films of many shapes to a square, so the
        # thorax's aspect ratio says which device (and often which class) a film came from, not the disease.
        A.Affine(scale={"x": (0.9, 1.1), "y": (0.9, 1.1)}, border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.5),
        # Exposure and processing differ between sites and devices.
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.6),
        A.RandomGamma(gamma_limit=(80, 120), p=0.4),
        A.CLAHE(clip_limit=(1.0, 3.0), tile_grid_size=(8, 8), p=0.3),
        # Detector resolution and film size vary too: soften some films so sharpness is not a cue.
        A.OneOf([
            A.GaussianBlur(sigma_limit=(0.3, 1.2), p=1.0),
            A.Downscale(scale_range=(0.5, 0.9), p=1.0),
        ], p=0.3),
        # Sites export films at different JPEG qualities; unchecked, block artefacts became a pneumonia cue
        # (10 % of val normals re-saved at quality 30 were called pneumonia).
        A.ImageCompression(quality_range=(30, 95), p=0.3),
        # std as a fraction of the 0-255 range: 1-3 %.
        A.GaussNoise(std_range=(0.01, 0.03), p=0.2),
    ]
    # Left/right matters in chest films (heart, situs); flip only when the user asks for it.
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    return A.Compose(steps)


def _flag(ctx: AugmentationContext, name: str, key: str, default: bool) -> bool:
    value = ctx.params.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{name}: {key} must be true or false, got {value!r}",
                          f"--set augmentation_params={{{key}: {str(default).lower()}}}")
    return value


def mri(ctx: AugmentationContext) -> A.Compose:
    """MRI slices: eval resize/crop, small affine (rotate 10°), brightness/contrast, gamma, CLAHE, light noise;
    grey levels only, no flip unless ``hflip: true`` (a preset says when left and right may swap)."""
    hflip = _flag(ctx, "medical/mri", "hflip", False)
    if not ctx.train:
        return eval_transform(ctx)
    steps: list[A.BasicTransform] = [
        *eval_transform(ctx).transforms,
        # Slices are positioned by the scanner: only small pose changes; zero outside like the MR background.
        A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-10, 10),
                 border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.7),
        # Intensities vary between scanners and sequences (no absolute scale in MR): contrast and gamma.
        A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.15, p=0.5),
        A.RandomGamma(gamma_limit=(80, 120), p=0.4),
        A.CLAHE(clip_limit=(1.0, 2.0), tile_grid_size=(8, 8), p=0.2),
        A.GaussNoise(std_range=(0.005, 0.02), p=0.2),
    ]
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    return A.Compose(steps)


def dermoscopy(ctx: AugmentationContext) -> A.Compose:
    """Dermoscopy: random resized crop (scale 0.6-1), horizontal and vertical flips, rotation by any angle,
    mild brightness/contrast and colour (hue ±4, saturation ±10); ``hflip``/``vflip: false`` turn flips off."""
    hflip = _flag(ctx, "medical/dermoscopy", "hflip", True)
    vflip = _flag(ctx, "medical/dermoscopy", "vflip", True)
    if not ctx.train:
        return eval_transform(ctx)
    h, w = ctx.image_size
    interp = INTERPOLATION.get(ctx.interpolation, cv2.INTER_CUBIC)
    # A lesion seen from above has no up, down, left or right: every rotation and mirror image is a real view.
    steps: list[A.BasicTransform] = [
        A.Affine(rotate=(-180, 180), border_mode=cv2.BORDER_REFLECT_101, p=0.8),
        A.RandomResizedCrop(size=(h, w), scale=(0.6, 1.0), ratio=(0.8, 1.25), interpolation=interp),
    ]
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    if vflip:
        steps.append(A.VerticalFlip(p=0.5))
    steps.append(A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5))
    if ctx.channels == 3:
        # Colour is diagnostic (blue-white veil, pigment): only as much change as lighting and cameras bring.
        steps.append(A.HueSaturationValue(hue_shift_limit=4, sat_shift_limit=10, val_shift_limit=0, p=0.4))
    return A.Compose(steps)


def ultrasound(ctx: AugmentationContext) -> A.Compose:
    """Ultrasound: eval resize/crop, small affine (rotate 7°), brightness/contrast, gamma, multiplicative
    speckle-like noise, slight blur; no flip unless ``hflip: true``, and never a vertical one (depth)."""
    hflip = _flag(ctx, "medical/ultrasound", "hflip", False)
    if not ctx.train:
        return eval_transform(ctx)
    steps: list[A.BasicTransform] = [
        *eval_transform(ctx).transforms,
        A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-7, 7),
                 border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.7),
        # Gain and time-gain compensation differ between operators and machines.
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.5),
        A.RandomGamma(gamma_limit=(85, 115), p=0.3),
        # Speckle is multiplicative, per pixel; a slight blur mimics other probes' speckle size.
        A.MultiplicativeNoise(multiplier=(0.85, 1.15), elementwise=True, p=0.4),
        A.GaussianBlur(blur_limit=(3, 3), p=0.15),
    ]
    # Depth runs down the image (shadows fall below a lesion), so a vertical flip is never anatomical;
    # left-right depends on the probe orientation convention: a preset may allow it.
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    return A.Compose(steps)
