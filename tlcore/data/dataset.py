"""A torch Dataset over records: decode, augment (albumentations), normalise with the weights' mean/std."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from tlcore.specs import Record


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
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1) * 255

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        record = self.records[index]
        image = self.transform(image=self.reader(record.path))["image"]
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        x = (x - self.mean) / self.std
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
