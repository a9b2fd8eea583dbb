"""Build a timm model from a :class:`~tlcore.specs.Backbone` and its weights."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, cast
from urllib.parse import urlparse

from torch import nn

from tlcore.errors import WeightsError
from tlcore.models.weights import WeightsSource, resolve_weights
from tlcore.specs import Backbone


@dataclass(frozen=True)
class Preprocessing:
    """The input pipeline that travels with the weights (from timm's pretrained config)."""

    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    crop_pct: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
        }


def _offline_hint(name: str) -> str:
    return (
        f"no network to fetch {name!r} weights: use weights=PATH to a local file, an offline backbone "
        "(tf_efficientnet_lite0/1/2), or weights=none to train from scratch"
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub; a proxy setting is trusted instead (it may be the only way out)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _offline_unless_reachable(hub: bool) -> Iterator[None]:
    """Without a network, use only the local hub cache: no minute of retries, one clear error instead."""
    from huggingface_hub import constants

    if not hub or constants.HF_HUB_OFFLINE or _hub_reachable():  # offline already: no probe to wait for
        yield
        return

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def create_backbone(
    backbone: Backbone,
    weights: str = "default",
    in_chans: int = 3,
    drop_path_rate: float = 0.0,
) -> tuple[nn.Module, WeightsSource, Preprocessing]:
    """A feature extractor (timm model with ``num_classes=0``), its weights source and preprocessing."""
    from tlcore.models import hub_models

    if hub_models.is_hub_name(backbone.timm_name):
        model, source = _create_hub_backbone(backbone, weights, in_chans, drop_path_rate)
        return model, source, _preprocessing(model, in_chans)
    import timm

    source = resolve_weights(weights, backbone.timm_name, backbone.default_weights, backbone.weights_file)
    kwargs: dict[str, Any] = {"num_classes": 0, "in_chans": in_chans}
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate
    if source.kind == "file":
        kwargs["pretrained_cfg_overlay"] = {"file": str(source.file)}
    try:
        with _offline_unless_reachable(source.kind == "hub"):
            model = timm.create_model(backbone.timm_name, pretrained=source.pretrained, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        text = f"{type(exc).__name__}: {exc}"
        if source.kind == "hub" and any(
            s in text for s in ("LocalEntryNotFound", "connect", "Connection", "resolve", "offline", "Network")
        ):
            raise WeightsError(
                f"could not download pretrained weights for {backbone.timm_name}", _offline_hint(backbone.timm_name)
            ) from None
        if source.kind == "file":
            raise WeightsError(f"weights do not fit {backbone.timm_name}: {str(exc).splitlines()[0][:200]}") from None
        raise
    return model, source, _preprocessing(model, in_chans)


def _create_hub_backbone(
    backbone: Backbone, weights: str, in_chans: int, drop_path_rate: float
) -> tuple[nn.Module, WeightsSource]:
    """A backbone named by a hub id: its config.json pinned to one commit, then timm's ``hf-hub:`` path
    (the hub's own weights by default; ``none`` and ``FILE`` use only its architecture)."""
    import timm

    from tlcore.models import hub_models

    model_id = hub_models.hub_model_id(backbone.timm_name)
    kwargs: dict[str, Any] = {"num_classes": 0, "in_chans": in_chans}
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate
    with _offline_unless_reachable(True):
        hub = hub_models.fetch_config(model_id)
        source = resolve_weights(weights, hub.pinned, backbone.default_weights, backbone.weights_file)
        if source.kind == "file":  # the file instead of the hub's weights
            kwargs["pretrained_cfg_overlay"] = {"file": str(source.file), "source": "file"}
        try:
            model = timm.create_model(hub.pinned, pretrained=source.pretrained, **kwargs)
        except (OSError, RuntimeError, ValueError) as exc:
            error = hub_models.hub_error(model_id, exc)
            if error is not None:
                raise error from None
            if source.pretrained:
                what = hub.repo_id if source.kind == "hub" else str(source.origin)
                raise WeightsError(
                    f"weights of {what} do not fit {hub.architecture}: {str(exc).splitlines()[0][:200]}"
                ) from None
            raise
        record = hub_models.record(hub, weights_loaded=source.kind == "hub")
    if source.kind == "hub":
        source = replace(source, origin=f"Hugging Face hub: {hub.repo_id}@{hub.commit}")
    return model, replace(source, hub=record)


def rebuild_backbone(backbone: Backbone, in_chans: int, hub: dict[str, Any] | None = None) -> nn.Module:
    """The architecture a run trained, without its weights and without the network: a hub model from the
    record the run stored (``hub``), any other from its timm name."""
    from tlcore.models import hub_models

    if hub:
        return hub_models.rebuild(hub, in_chans)
    model, _, _ = create_backbone(backbone, weights="none", in_chans=in_chans)
    return model


def _preprocessing(model: nn.Module, in_chans: int) -> Preprocessing:
    """The input pipeline of ``model``'s pretrained config (for a hub model, its config.json's)."""
    from timm.data.config import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    _, h, w = cfg["input_size"]
    return Preprocessing(
        input_size=(int(h), int(w)),
        mean=tuple(float(m) for m in cfg["mean"]) if in_chans == len(cfg["mean"]) else _fit(cfg["mean"], in_chans),
        std=tuple(float(s) for s in cfg["std"]) if in_chans == len(cfg["std"]) else _fit(cfg["std"], in_chans),
        interpolation=str(cfg.get("interpolation", "bicubic")),
        crop_pct=float(cfg.get("crop_pct", 0.875)),
    )


def _fit(values: Any, channels: int) -> tuple[float, ...]:
    """Mean/std for a channel count other than the pretrained one: the channel average, repeated."""
    avg = float(sum(values) / len(values))
    return (avg,) * channels


def feature_dim(model: nn.Module) -> int:
    """Width of the pooled features: timm's ``head_hidden_size``, else ``num_features``.

    They differ where a conv head follows the pooling (MobileNetV3/V4, EfficientViT, GhostNet, HGNetV2):
    ``num_features`` is the width before it, and a head built on it would not fit the features."""
    width = getattr(model, "head_hidden_size", None)
    return int(width if isinstance(width, int) and width > 0 else cast(int, model.num_features))


def stage_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """Parameters grouped by stage, input first (stem = group 0), from timm's own group matcher.

    The same grouping timm uses for layer-wise learning-rate decay; partial freezing and
    gradual unfreezing walk it from the input side.
    """
    from timm.models import group_parameters

    matcher = getattr(model, "group_matcher", None)
    if matcher is None:
        raise WeightsError(f"{type(model).__name__} has no timm group matcher", "use strategy=full or head-only")
    named = dict(model.named_parameters())
    groups = group_parameters(model, matcher(coarse=True))
    return [[named[n] for n in names if n in named] for _, names in sorted(groups.items())]


def set_trainable(params: list[nn.Parameter], trainable: bool) -> None:
    for p in params:
        p.requires_grad_(trainable)


def keep_frozen_bn_in_eval(model: nn.Module) -> None:
    """Call after ``model.train()``: BatchNorm layers whose affine parameters are frozen keep
    their running statistics (small batches of a new domain would otherwise wreck them)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None and not m.weight.requires_grad:
            m.eval()


def count_parameters(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
