"""The plain baseline's data side, shared by the benchmarks: what a user writes without tlcore.

PIL decoding and the usual torchvision transforms (RandomResizedCrop + flip for training; resize to
size/0.875 + centre crop for evaluation), over a list of tlcore records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

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


def pretrained_state(host: Any, config: Any) -> tuple[str, dict[str, torch.Tensor] | None]:
    """The backbone's timm name and the ImageNet state dict tlcore would load (None: no weights; {}: the hub)."""
    from safetensors.torch import load_file

    from tlcore.models.weights import resolve_weights

    spec = host.backbone(config.backbone)
    source = resolve_weights(config.weights, spec.timm_name, spec.default_weights, spec.weights_file)
    if source.kind == "file" and source.file is not None:
        return spec.timm_name, load_file(str(source.file))
    return spec.timm_name, None if source.kind == "none" else {}


def plain_model(host: Any, config: Any, k: int) -> tuple[nn.Module, str, str]:
    """``timm.create_model`` with ``k`` outputs and the preset's ImageNet weights, as a user would load them:
    (model, timm name, where the weights came from)."""
    import timm

    timm_name, state = pretrained_state(host, config)
    model = timm.create_model(timm_name, pretrained=state == {}, num_classes=k)
    if state:
        classifier = str(cast(dict[str, Any], model.pretrained_cfg).get("classifier", "classifier"))
        missing, unexpected = model.load_state_dict(
            {n: t for n, t in state.items() if not n.startswith(classifier)}, strict=False
        )
        assert not unexpected and all(n.startswith(classifier) for n in missing), (missing, unexpected)
    origin = "tlcore's ImageNet file" if state else ("timm hub" if state == {} else "none")
    return model, timm_name, origin


def train_epoch(
    model: nn.Module,
    loader: DataLoader[Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    device: torch.device,
    stop: Callable[[], bool] = lambda: False,
) -> bool:
    """One epoch of the plain loop (cross-entropy, bf16 autocast on CUDA); True when ``stop`` ended it early."""
    from tlcore.runtime import autocast

    model.train()
    loss_fn = nn.CrossEntropyLoss()
    for x, y in loader:
        if stop():
            return True
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device):
            loss = loss_fn(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return False
