"""A trained run loads back whatever the backbone's pooled width, timm models whose conv head follows the
pooling (MobileNetV3, GhostNet, EfficientViT: ``head_hidden_size`` != ``num_features``) included."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tlcore.models.backbones import feature_dim

Tl = Callable[..., tuple[int, str, str]]


@pytest.mark.parametrize("arch", ["mobilenetv3_small_050", "test_resnet", "test_vit"])
def test_feature_dim_is_the_width_of_the_pooled_features(arch: str) -> None:
    import timm

    model = timm.create_model(arch, pretrained=False, num_classes=0).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, *model.pretrained_cfg["input_size"][1:]))
    assert feature_dim(model) == out.shape[1]


def test_a_run_on_a_backbone_with_a_conv_head_predicts(
    tl: Tl, tmp_path: Path, make_folder: Callable[..., Path]
) -> None:
    data = make_folder(tmp_path / "data", {"train": 3, "val": 1, "test": 1})
    run = tmp_path / "run"
    fast = ["--set", "image_size=32", "--set", "batch_size=8", "--set", "progress=false"]
    backbone = ["--set", "backbone=mobilenetv3_small_050", "--set", "weights=none"]
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", data, "--output", run, *fast, *backbone)
    assert code == 0, err
    code, out, err = tl("predict", run, sorted((data / "test" / "red").glob("*.png"))[0])
    assert code == 0, err
    assert json.loads(out)["predictions"][0]["label"] in {"red", "green", "blue"}
