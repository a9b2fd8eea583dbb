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


def _random_resized_crop(ctx: AugmentationContext) -> A.RandomResizedCrop:
    """The crop of the photo pipelines: 35-100 % of the image (``scale`` param), resized to the input size."""
    scale = tuple(ctx.params.get("scale", (0.35, 1.0)))
    interp = INTERPOLATION.get(ctx.interpolation, cv2.INTER_CUBIC)
    return A.RandomResizedCrop(size=ctx.image_size, scale=scale, interpolation=interp)


def standard(ctx: AugmentationContext) -> A.Compose:
    """Random resized crop, horizontal flip, and mild colour jitter on 3-channel uint8 photos."""
    if not ctx.train:
        return eval_transform(ctx)
    steps: list[A.BasicTransform] = [_random_resized_crop(ctx), A.HorizontalFlip(p=0.5)]
    if ctx.channels == 3:
        steps.append(PhotoColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5))
    return A.Compose(steps)


class _UInt8Only(A.BaseCompose):  # type: ignore[misc]  # albumentations is untyped
    """Applies its transform to uint8 images of 1 or 3 channels; passes any other array through."""

    def __init__(self, transform: A.BasicTransform) -> None:
        super().__init__([transform], p=1.0)

    def __call__(self, *args: Any, force_apply: bool = False, **data: Any) -> dict[str, Any]:
        image = data["image"]
        if image.dtype != np.uint8 or image.shape[-1] not in (1, 3):
            return data
        out: dict[str, Any] = self.transforms[0](force_apply=force_apply, **data)
        return out


def trivial(ctx: AugmentationContext) -> A.Compose:
    """TrivialAugment-style (Müller & Hutter, 2021): random resized crop and flip, then ONE operation drawn
    uniformly from a wide pool, at a magnitude drawn uniformly from its range. One knob-free policy instead
    of hand-tuned strengths. Intensity operations that need 8-bit grey or RGB (posterize, solarize,
    equalize, autocontrast, sharpen) pass other data through; geometric ones apply to any array."""
    if not ctx.train:
        return eval_transform(ctx)
    interp = INTERPOLATION.get(ctx.interpolation, cv2.INTER_CUBIC)
    pool: list[A.BasicTransform] = [
        A.NoOp(),
        A.Affine(rotate=(-30, 30), interpolation=interp, p=1.0),
        A.Affine(shear={"x": (-17, 17), "y": (0, 0)}, interpolation=interp, p=1.0),
        A.Affine(shear={"x": (0, 0), "y": (-17, 17)}, interpolation=interp, p=1.0),
        A.Affine(translate_percent={"x": (-0.15, 0.15), "y": (0, 0)}, p=1.0),
        A.Affine(translate_percent={"x": (0, 0), "y": (-0.15, 0.15)}, p=1.0),
        _UInt8Only(A.RandomBrightnessContrast(brightness_limit=(-0.45, 0.45), contrast_limit=0, p=1.0)),
        _UInt8Only(A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=(-0.45, 0.45), p=1.0)),
        _UInt8Only(A.Sharpen(alpha=(0.1, 0.9), lightness=(0.8, 1.2), p=1.0)),
        _UInt8Only(A.Posterize(num_bits=(2, 8), p=1.0)),
        _UInt8Only(A.Solarize(threshold_range=(0.0, 1.0), p=1.0)),
        _UInt8Only(A.Equalize(p=1.0)),
        _UInt8Only(A.AutoContrast(p=1.0)),
    ]
    if ctx.channels == 3:
        pool.append(PhotoColorJitter(brightness=0, contrast=0, saturation=(0.05, 1.95), hue=0, p=1.0))
    steps: list[A.BasicTransform] = [_random_resized_crop(ctx)]
    if ctx.params.get("hflip", True):
        steps.append(A.HorizontalFlip(p=0.5))
    if ctx.params.get("vflip", False):
        steps.append(A.VerticalFlip(p=0.5))
    return A.Compose([*steps, A.OneOf(pool, p=1.0)])


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


#: Images the eval half of an augmentation is compared on: landscape and portrait, so resize and crop both show.
_PROBE_SHAPES = ((80, 100), (100, 70))


def eval_half_difference(transform: Any, ctx: AugmentationContext) -> str | None:
    """Why ``transform`` (an augmentation's ``build(train=False)``) is not the eval view of ``ctx``, or None.

    Every command sees an image through :func:`eval_transform` at the run's preprocessing (tlcore.predict),
    so an eval half that maps images any other way would describe a model no command runs."""
    reference = eval_transform(ctx)
    rng = np.random.default_rng(0)
    for height, width in _PROBE_SHAPES:
        image = rng.integers(0, 256, (height, width, ctx.channels), dtype=np.uint8)
        try:
            got = np.asarray(transform(image=image.copy())["image"])
        except Exception as exc:
            return f"it raised {type(exc).__name__} on a {image.shape} uint8 image"
        want = np.asarray(reference(image=image.copy())["image"])
        if got.shape != want.shape or not np.array_equal(got, want):
            return (f"on a {image.shape} uint8 image its output ({got.dtype} {got.shape}) differs from the eval "
                    f"view's ({want.dtype} {want.shape})")  # fmt: skip
    return None


def check_eval_half(name: str, plugin: str, transform: Any, ctx: AugmentationContext) -> None:
    """A one-line error naming the plugin when augmentation ``name``'s eval half is not the eval view."""
    from tlcore.errors import PluginError

    why = eval_half_difference(transform, ctx)
    if why is not None:
        raise PluginError(
            f"augmentation {name!r} from plugin {plugin!r}: its eval transform (train=False) is not the eval "
            f"view: {why}",
            "return tlcore.data.transforms.eval_transform(ctx) when ctx.train is False; every command scores "
            "through that view",
        )
