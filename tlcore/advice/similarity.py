"""How close the target images are to what a backbone was pretrained on, measured with the backbone itself.

Two measures, neither needing the pretraining data:

* **ImageNet-head confidence.** The pretrained 1000-class head applied to the cached pooled
  features: the mean maximum softmax probability and the mean normalised entropy of its
  predictions. Out-of-distribution inputs get less confident predictions (the maximum-softmax
  baseline of Hendrycks & Gimpel, ICLR 2017), so a low confidence / high entropy means the images
  are unlike the pretraining domain. The most frequent predicted classes are kept for reading.
* **BatchNorm statistics shift.** Every BatchNorm layer stores the mean and variance of its
  inputs over the pretraining data. On the target images, the per-channel 2-Wasserstein distance
  between the two Gaussians, in units of the stored standard deviation, averaged over channels
  and layers: 0 when the target activations look like the pretraining ones. That BN statistics
  carry the domain is the premise of AdaBN (Li et al., 2016); it looks at every depth, not only
  the last layer.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class HeadConfidence:
    max_softmax: float  # mean over images of the top class probability
    entropy: float  # mean normalised entropy (0 = certain, 1 = uniform over the 1000 classes)
    top_classes: list[tuple[str, float]]  # most frequent top-1 ImageNet classes and their share


def imagenet_head(
    model: nn.Module, weights_kind: str, weights_file: Any, timm_name: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """The pretrained classifier (weight C x D, bias C) that sat on top of ``model``'s pooled features,
    when the weights carry a 1000-class ImageNet head; ``None`` otherwise (random or re-headed weights)."""
    if weights_kind == "none":
        return None
    classifier = str(getattr(model, "pretrained_cfg", {}).get("classifier", ""))
    if not classifier:
        return None
    state: dict[str, Any]
    if weights_kind == "file" and weights_file is not None:
        from safetensors import safe_open

        with safe_open(str(weights_file), framework="pt") as fh:
            keys = set(fh.keys())
            wanted = (f"{classifier}.weight", f"{classifier}.bias")
            if not all(k in keys for k in wanted):
                return None
            state = {k: fh.get_tensor(k) for k in wanted}
    else:
        import timm

        full = timm.create_model(timm_name, pretrained=True)
        state = {k: v for k, v in full.state_dict().items() if k.startswith(classifier + ".")}
    weight, bias = state.get(f"{classifier}.weight"), state.get(f"{classifier}.bias")
    if weight is None or weight.ndim != 2 or weight.shape[0] != IMAGENET_CLASSES:
        return None
    b = bias.float().numpy() if bias is not None else np.zeros(IMAGENET_CLASSES, dtype=np.float32)
    return weight.float().numpy(), b


def head_confidence(features: np.ndarray, weight: np.ndarray, bias: np.ndarray, top: int = 3) -> HeadConfidence:
    logits = features.astype(np.float64) @ weight.T.astype(np.float64) + bias
    logits -= logits.max(1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(1) / np.log(p.shape[1])
    counts = Counter(p.argmax(1).tolist()).most_common(top)
    return HeadConfidence(
        max_softmax=float(p.max(1).mean()),
        entropy=float(entropy.mean()),
        top_classes=[(_imagenet_name(i), n / len(p)) for i, n in counts],
    )


@functools.cache
def _imagenet_names() -> Any:
    from timm.data.imagenet_info import ImageNetInfo

    return ImageNetInfo()


def _imagenet_name(index: int) -> str:
    try:
        return str(_imagenet_names().index_to_description(index)).split(",")[0]
    except Exception:  # older timm without the class table: the index still identifies the class
        return f"imagenet class {index}"


@torch.inference_mode()
def bn_shift(
    model: nn.Module,
    dataset: Dataset[Any],
    normalize: Callable[[torch.Tensor, torch.device], torch.Tensor],
    device: torch.device,
    batch_size: int = 32,
) -> float | None:
    """Mean normalised W2 distance between stored BatchNorm statistics and those of ``dataset``."""
    layers = [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None
    ]
    if not layers or len(dataset) == 0:  # type: ignore[arg-type]
        return None
    sums: dict[int, list[torch.Tensor]] = {}

    def hook(module: nn.Module, inputs: Sequence[torch.Tensor], _: Any) -> None:
        x = inputs[0].detach().float()
        dims = [0, *range(2, x.ndim)]
        n = x.numel() / x.shape[1]
        acc = sums.setdefault(id(module), [torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)] * 3)
        acc[0] = acc[0] + n
        acc[1] = acc[1] + x.sum(dims).double()
        acc[2] = acc[2] + (x * x).sum(dims).double()

    handles = [m.register_forward_hook(hook) for m in layers]
    model.eval()
    try:
        for x, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            model(normalize(x, device))
    finally:
        for h in handles:
            h.remove()
    distances = []
    for m in layers:
        n, s, ss = sums[id(m)]
        mu_t = s / n
        sd_t = (ss / n - mu_t**2).clamp_min(0).sqrt()
        mu_s = m.running_mean.double()  # type: ignore[union-attr]
        sd_s = (m.running_var.double() + m.eps).sqrt()  # type: ignore[union-attr]
        w2 = ((mu_t - mu_s) ** 2 + (sd_t - sd_s) ** 2).sqrt() / sd_s
        distances.append(float(w2.mean()))
    return float(np.mean(distances))
