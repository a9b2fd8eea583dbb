"""Re-estimate BatchNorm statistics on unlabelled images from a new site (AdaBN; Li et al. 2016, and
Schneider et al. 2020 for covariate shift).

A network's BatchNorm layers store the mean and variance of the training images' activations. When
images from another scanner, hospital or camera arrive, their activations sit elsewhere, and the
layers normalise them wrongly. Recomputing those statistics on the new images (no labels, no gradient
step, every weight unchanged) is the cheapest correction for that shift. It needs a few dozen images
that stand for the new site: statistics of a handful of images are noise.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader

from tlcore.data.dataset import ImageDataset
from tlcore.errors import ConfigError

#: Fewer images than this give statistics too noisy to trust.
MIN_IMAGES = 16


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, loader: DataLoader[Any], device: torch.device) -> int:
    """Replace every BatchNorm layer's running mean/var by those of ``loader``'s images; returns how many
    images were used. The model is left in eval mode; no other parameter changes."""
    layers = batchnorm_layers(model)
    if not layers:
        raise ConfigError("the model has no BatchNorm layers to adapt", "leave out --adapt-bn for this backbone")
    n_images = len(cast(ImageDataset, loader.dataset))
    if n_images < MIN_IMAGES:
        raise ConfigError(
            f"--adapt-bn needs at least {MIN_IMAGES} images from the new site, got {n_images}",
            "pass a folder with more of its images, or leave out --adapt-bn",
        )
    momenta = [layer.momentum for layer in layers]
    model.eval()  # dropout stays off; only the BatchNorm layers collect statistics
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over all batches, not an exponential one
        layer.train()
    normalize = cast(ImageDataset, loader.dataset).normalize
    try:
        for x, _ in loader:
            model(normalize(x, device))
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        model.eval()
    return n_images
