"""Backbones named by a Hugging Face hub id (hf-hub:ORG/NAME): built from a local hub cache, offline.

The cache is written here, in huggingface_hub's layout (blobs, snapshots/<commit>, refs/main), with a
tiny timm model exported by timm's own ``save_for_hf``; HF_HUB_OFFLINE is on, so nothing is fetched.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tlcore.errors import ConfigError, WeightsError
from tlcore.models.backbones import create_backbone
from tlcore.models.transfer import load_model
from tlcore.plugins import PluginHost

Tl = Callable[..., tuple[int, str, str]]

REPO = "acme/tiny-xray"
OLD, NEW = "1" * 40, "2" * 40  # two commits; refs/main names NEW
MEAN, STD = [0.41, 0.31, 0.21], [0.22, 0.24, 0.26]  # the hub config's own normalisation (timm's: 0.5)


def _export(folder: Path, seed: int) -> dict[str, torch.Tensor]:
    """A tiny timm model saved as a hub repository holds it (config.json + model.safetensors)."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(seed)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=4)
    save_for_hf(model, str(folder), safe_serialization=True)
    config = json.loads((folder / "config.json").read_text())
    config["pretrained_cfg"].update(mean=MEAN, std=STD)
    (folder / "config.json").write_text(json.dumps(config))
    return {k: v.clone() for k, v in model.state_dict().items()}


def _add_snapshot(cache: Path, repo: str, commit: str, export: Path) -> None:
    """``export``'s files as huggingface_hub caches them: content-addressed blobs, symlinked from the snapshot."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir(exist_ok=True)
    for file in export.iterdir():
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, root / "blobs" / digest)
        (snapshot / file.name).symlink_to(Path("..", "..", "blobs", digest))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF_HOME, offline; huggingface_hub reads its cache folder once, so its live value is patched."""
    import huggingface_hub.constants as hf_constants

    home = tmp_path / "hf-home"
    (home / "hub").mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(home / "hub"))
    return home


@pytest.fixture
def hub_model(hf_home: Path, tmp_path: Path) -> dict[str, Any]:
    """REPO in the local hub cache at two commits (different weights); main is NEW."""
    states = {}
    for commit, seed in ((OLD, 1), (NEW, 2)):
        export = tmp_path / f"export-{commit[0]}"
        states[commit] = _export(export, seed)
        _add_snapshot(hf_home / "hub", REPO, commit, export)
    weights = hf_home / "hub" / f"models--{REPO.replace('/', '--')}" / "snapshots" / NEW / "model.safetensors"
    return {"states": states, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(load_entrypoints=False)


def _backbone_of(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def _assert_same(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=0, atol=0, msg=key)


# -- names ---------------------------------------------------------------------------------------


def test_hub_ids_resolve_to_timm_hub_names(host: PluginHost) -> None:
    spec = host.backbone(f"hf-hub:{REPO}")
    assert spec.timm_name == f"hf-hub:{REPO}"
    assert spec.default_weights == "hub"
    assert REPO in spec.description
    assert host.backbone(f"hf-hub:{REPO}@v1.0").timm_name == f"hf-hub:{REPO}@v1.0"
    assert host.backbone("timm/resnet18.a1_in1k").timm_name == "hf-hub:timm/resnet18.a1_in1k"
    assert host.backbone("resnet18").timm_name == "resnet18"  # registry names stay timm names


@pytest.mark.parametrize("name", ["hf-hub:no-org", "hf-hub:a/b/c", f"hf-hub:{REPO}@", "hf-hub:"])
def test_a_malformed_hub_id_says_the_form(host: PluginHost, name: str) -> None:
    with pytest.raises(ConfigError, match="hf-hub:ORG/NAME") as info:
        create_backbone(host.backbone(name), "default")
    assert info.value.message == f"{name!r} is not a Hugging Face hub model id"


# -- building from the cache ---------------------------------------------------------------------


def test_cached_hub_model_loads_its_own_weights_and_config(host: PluginHost, hub_model: dict[str, Any]) -> None:
    import timm

    model, source, pre = create_backbone(host.backbone(f"hf-hub:{REPO}"), "default")
    new = hub_model["states"][NEW]
    _assert_same(model.state_dict(), _backbone_of(new))
    assert source.kind == "hub"
    assert source.origin == f"Hugging Face hub: {REPO}@{NEW}"
    assert source.hub is not None
    assert source.hub["id"] == REPO
    assert source.hub["revision"] == NEW
    assert source.hub["architecture"] == "test_resnet"
    assert source.hub["file"] == "model.safetensors"
    assert source.hub["sha256"] == hub_model["sha256"]
    assert (pre.mean, pre.std) == (tuple(MEAN), tuple(STD))  # the hub config's preprocessing, not timm's default
    # the features are those of the published model
    reference: Any = timm.create_model("test_resnet", num_classes=4)
    reference.load_state_dict(new)
    batch = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    model.eval()
    reference.eval()
    with torch.inference_mode():
        expected = reference.forward_head(reference.forward_features(batch), pre_logits=True)
        torch.testing.assert_close(model(batch), expected)


def test_a_revision_pins_the_weights(host: PluginHost, hub_model: dict[str, Any]) -> None:
    model, source, _ = create_backbone(host.backbone(f"hf-hub:{REPO}@{OLD}"), "hub")
    _assert_same(model.state_dict(), _backbone_of(hub_model["states"][OLD]))
    assert source.hub is not None and source.hub["revision"] == OLD
    assert source.hub["sha256"] != hub_model["sha256"]


def test_weights_none_and_file_use_only_the_hub_architecture(
    host: PluginHost, hub_model: dict[str, Any], tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    spec = host.backbone(f"hf-hub:{REPO}")
    new = _backbone_of(hub_model["states"][NEW])
    random, source, _ = create_backbone(spec, "none")
    assert source.kind == "none"
    assert source.hub is not None and "sha256" not in source.hub and source.hub["architecture"] == "test_resnet"
    assert not torch.equal(random.state_dict()["conv1.0.weight"], new["conv1.0.weight"])
    mine = {k: v + 1.0 if v.is_floating_point() else v for k, v in hub_model["states"][OLD].items()}
    save_file({k: v.contiguous() for k, v in mine.items()}, str(tmp_path / "mine.safetensors"))
    model, source, _ = create_backbone(spec, str(tmp_path / "mine.safetensors"))
    assert source.kind == "file"
    _assert_same(model.state_dict(), _backbone_of(mine))


def test_offline_without_the_model_cached_is_one_line(host: PluginHost, hf_home: Path) -> None:
    with pytest.raises(WeightsError) as info:
        create_backbone(host.backbone("hf-hub:acme/not-cached"), "default")
    text = str(info.value)
    assert "acme/not-cached" in info.value.message
    assert "HF_HOME" in text and "weights=FILE" in text and "connect" in text
    assert "\n" not in text


# -- a run -------------------------------------------------------------------------------------


def test_train_on_a_cached_hub_model_offline_then_predict_without_the_hub(
    tl: Tl, fast: list[str], hub_model: dict[str, Any], hf_home: Path, small_folder: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from tlcore.plugins import get_host

    run = tmp_path / "run"
    code, out, err = tl(
        "train", "--preset", "fine-tuning", "--data", small_folder, "--output", run, *fast,
        "--set", f"backbone=hf-hub:{REPO}", "--set", "epochs=1",
    )  # fmt: skip
    assert code == 0, err
    assert f"weights: Hugging Face hub: {REPO}@{NEW}" in out
    report = json.loads((run / "report.json").read_text())
    weights = report["model"]["weights"]
    assert weights["source"] == "hub"
    assert weights["hub"]["id"] == REPO
    assert weights["hub"]["revision"] == NEW
    assert weights["hub"]["sha256"] == hub_model["sha256"]
    assert report["model"]["preprocessing"]["mean"] == MEAN
    meta = json.loads((run / "model.json").read_text())
    assert meta["hub"]["architecture"] == "test_resnet"
    assert meta["hub"]["revision"] == NEW
    # LP-FT keeps the stem frozen: the run's stem is the published one, tensor for tensor
    saved = load_file(str(run / "model.safetensors"))
    published = hub_model["states"][NEW]
    stem = [k for k in published if k.startswith(("conv1.", "bn1."))]
    assert stem
    _assert_same({k: saved[f"backbone.{k}"] for k in stem}, {k: published[k] for k in stem})

    shutil.rmtree(hf_home)  # the run needs the hub no more
    image = sorted((small_folder / "test" / "red").glob("*.png"))[0]
    code, out, err = tl("predict", run, image)
    assert code == 0, err
    assert json.loads(out)["predictions"][0]["label"] in {"red", "green", "blue"}
    code, out, err = tl("evaluate", run)
    assert code == 0, err
    assert json.loads(out)["n"] == 6
    model, _ = load_model(get_host(), run)
    _assert_same({k: v for k, v in model.state_dict().items()}, saved)


def test_train_offline_without_the_model_cached_exits_2(
    tl: Tl, fast: list[str], hf_home: Path, small_folder: Path
) -> None:
    code, _, err = tl(
        "train", "--preset", "feature-extraction", "--data", small_folder, *fast, "--set", "backbone=hf-hub:acme/absent"
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: could not download Hugging Face hub model acme/absent (")
    assert "HF_HOME" in lines[0] and "weights=FILE" in lines[0]


def test_plugin_checks_accept_a_hub_backbone_and_refuse_a_malformed_id() -> None:
    from tlcore.specs import Backbone
    from tlcore.testing import check_backbone

    check_backbone(Backbone(name="acme/xray", description="chest X-ray ResNet", timm_name=f"hf-hub:{REPO}"))
    with pytest.raises(AssertionError, match="not a Hugging Face hub model id"):
        check_backbone(Backbone(name="acme/bad", description="typo", timm_name="hf-hub:acme"))
    with pytest.raises(AssertionError, match="timm has no architecture"):
        check_backbone(Backbone(name="acme/none", description="no such model", timm_name="no_such_net"))
