"""A torch Dataset over records: decode and augment (albumentations) on the CPU, normalise on the device.

Batches travel as uint8 (4x less to collate, pin and copy than float32); :class:`Normalizer`
turns them into the weights' normalised float input on the device, in channels_last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tlcore.specs import Record


class Normalizer:
    """uint8 ``NCHW`` batch -> normalised float on ``device`` (mean/std of the pretrained weights)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255
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
    ) -> None:
        self.records = list(records)
        self.reader = reader
        self.transform = transform
        self.normalize = Normalizer(mean, std)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        record = self.records[index]
        image = self.transform(image=self.reader(record.path))["image"]
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.uint8)).permute(2, 0, 1)
        target = record.target
        return x, torch.tensor(target, dtype=torch.long if isinstance(target, int) else torch.float32)


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
        # One thread per worker: N workers x all-core OpenCV/torch pools oversubscribe the CPU.
        torch.set_num_threads(1)
        try:
            import cv2

            cv2.setNumThreads(1)
        except ImportError:
            pass
