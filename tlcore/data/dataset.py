"""A torch Dataset over records: decode and augment (albumentations) on the CPU, normalise on the device.

Batches of ordinary images travel as uint8 (4x less to collate, pin and copy than float32);
other data (float32 or uint16 bands, any channel count) travels as float32. :class:`Normalizer`
turns either into the model's normalised float input on the device, in channels_last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tlcore.errors import DataError
from tlcore.specs import Record

#: uint8 images use the weights' mean/std, given for 0-1 pixels; raw band statistics are in the data's units.
UINT8_SCALE = 255.0


class Normalizer:
    """``NCHW`` batch -> normalised float on ``device``: ``(x - mean * scale) / (std * scale)``.

    ``scale`` is 255 for uint8 images with the pretrained mean/std, 1 for band statistics in the data's units.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], scale: float = UINT8_SCALE) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * scale
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * scale
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        if device not in self._on:
            self._on[device] = (self.mean.to(device), self.std.to(device))
        mean, std = self._on[device]
        x = x.to(device, non_blocking=device.type == "cuda").contiguous(memory_format=torch.channels_last)
        return (x.float() - mean) / std


class ImageDataset(Dataset[tuple[torch.Tensor, Any]]):
    def __init__(
        self,
        records: Sequence[Record],
        reader: Callable[[str], np.ndarray],
        transform: Any,
        mean: Sequence[float],
        std: Sequence[float],
        scale: float = UINT8_SCALE,
    ) -> None:
        self.records = list(records)
        self.reader = reader
        self.transform = transform
        self.normalize = Normalizer(mean, std, scale)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        record = self.records[index]
        image = self.transform(image=as_model_input(self.reader(record.path)))["image"]
        dtype = np.uint8 if image.dtype == np.uint8 else np.float32
        array = np.ascontiguousarray(image, dtype=dtype)
        if not array.flags.writeable:  # a decoded image no transform copied (e.g. no resize at crop_pct 1)
            array = array.copy()
        x = torch.from_numpy(array).permute(2, 0, 1)
        target = record.target
        return x, torch.tensor(target, dtype=torch.long if isinstance(target, int) else torch.float32)


def as_model_input(image: np.ndarray) -> np.ndarray:
    """``HxW`` or ``HxWxC``, uint8 kept, any other dtype as float32 (what albumentations handles)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise DataError(f"reader returned an array of shape {image.shape}", "readers return HxWxC arrays")
    return image if image.dtype == np.uint8 else image.astype(np.float32, copy=False)


def channel_stats(
    records: Sequence[Record], reader: Callable[[str], np.ndarray], max_images: int = 256, max_pixels: int = 65536
) -> dict[str, Any]:
    """Per-channel mean and std of the raw arrays, streamed over at most ``max_images`` evenly spaced
    records and ``max_pixels`` pixels of each (a strided subsample): bounded memory and time.

    NaN and infinite pixels are left out; a constant channel gets std 1 (it then only shifts).
    """
    if not records:
        raise DataError("no training images to compute channel statistics from")
    step = max(1, len(records) / max_images)
    picked = sorted({int(i * step) for i in range(min(max_images, len(records)))})
    total = count = total_sq = None
    for i in picked:
        image = as_model_input(reader(records[i].path))
        pixels = image.reshape(-1, image.shape[2])
        pixels = pixels[:: max(1, math.ceil(len(pixels) / max_pixels))].astype(np.float64)
        finite = np.isfinite(pixels)
        values = np.where(finite, pixels, 0.0)
        if total is None:
            total, total_sq, count = np.zeros(pixels.shape[1]), np.zeros(pixels.shape[1]), np.zeros(pixels.shape[1])
        if values.shape[1] != len(total):
            raise DataError(f"{records[i].path} has {values.shape[1]} channels, earlier images {len(total)}")
        total += values.sum(axis=0)
        total_sq += (values**2).sum(axis=0)
        count += finite.sum(axis=0)
    assert total is not None and total_sq is not None and count is not None
    n = np.maximum(count, 1)
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
    std = np.where(std > 1e-12, std, 1.0)
    return {"mean": mean.tolist(), "std": std.tolist(), "images": len(picked)}


def read_for_prediction(path: str, channels: int) -> np.ndarray:
    """The reader ``tl predict`` uses: ``.npy`` arrays as stored, multi-band TIFFs through tifffile,
    other images decoded to ``channels`` (1 or 3)."""
    from tlcore.images import read_image

    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix in (".tif", ".tiff") and channels not in (1, 3):
        import tifffile

        array = np.asarray(tifffile.imread(path))
        # Band-first files (C x H x W, C small) are turned channel-last.
        return np.moveaxis(array, 0, -1) if array.ndim == 3 and array.shape[0] == channels else array
    return read_image(path, channels=channels if channels in (1, 3) else 3)


def reseed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: give each worker's augmentations their own reproducible stream."""
    info = torch.utils.data.get_worker_info()
    if info is not None:
        seed = int(info.seed % 2**31)
        dataset = info.dataset
        transform = getattr(dataset, "transform", None)
        if transform is not None and hasattr(transform, "set_random_seed"):
            transform.set_random_seed(seed)
        np.random.seed(seed)
        # torch's worker loop already runs one torch thread per worker; OpenCV is made single-threaded
        # in the parent before the workers fork (runtime.loader_options): calling into an OpenCV
        # thread pool inherited through fork can deadlock, as cv2.setNumThreads here did.
