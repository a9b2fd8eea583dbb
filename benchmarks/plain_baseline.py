"""The plain baseline's data side, shared by the benchmarks: what a user writes without tlcore.

PIL decoding and the usual torchvision transforms (RandomResizedCrop + flip for training; resize to
size/0.875 + centre crop for evaluation), over a list of tlcore records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from tlcore.specs import Record

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def plain_transforms(
    size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> tuple[Any, Any]:
    """(train, eval) torchvision pipelines at ``size`` pixels."""
    from torchvision import transforms

    normalize = transforms.Normalize(mean, std)
    train = transforms.Compose(
        [transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalize]
    )
    evaluate = transforms.Compose(
        [transforms.Resize(int(size / 0.875)), transforms.CenterCrop(size), transforms.ToTensor(), normalize]
    )
    return train, evaluate


class PathDataset(Dataset[tuple[torch.Tensor, int]]):
    """Images from a list of records (path, class index), decoded with PIL."""

    def __init__(self, records: list[Record], transform: Any) -> None:
        self.items = [(r.path, int(r.target)) for r in records]  # type: ignore[arg-type]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, target = self.items[i]
        with Image.open(path) as img:
            return self.transform(img.convert("RGB")), target
