"""--adapt-bn: BatchNorm statistics re-estimated on a new site's unlabelled images, nothing else changed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tlcore.data.dataset import ImageDataset
from tlcore.errors import ConfigError
from tlcore.models.bn_adapt import adapt_batchnorm
from tlcore.specs import Record

Tl = Callable[..., tuple[int, str, str]]


def loader_of(images: list[np.ndarray], batch_size: int = 5) -> DataLoader[Any]:
    """Identity transform, mean 0 / std 1 on the 0-1 scale: the model sees pixel / 255."""
    records = [Record(str(i), 0) for i in range(len(images))]
    ds = ImageDataset(records, lambda path: images[int(path)], lambda image: {"image": image}, (0.0,) * 3,
                      (1.0,) * 3)
    return DataLoader(ds, batch_size=batch_size)


def test_statistics_become_those_of_the_new_images_and_nothing_else_changes() -> None:
    rng = np.random.default_rng(0)
    # a "new site": brighter and higher-contrast in channel 0 than anything the layer was trained on
    images = [rng.integers(0, 256, (6, 7, 3), dtype=np.uint8) for _ in range(23)]
    model = nn.Sequential(nn.BatchNorm2d(3, momentum=0.3), nn.Conv2d(3, 2, 1), nn.Dropout(0.5))
    model[0].weight.data.fill_(2.0)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}

    n = adapt_batchnorm(model, loader_of(images), torch.device("cpu"))

    assert n == 23
    pixels = np.stack(images).astype(np.float64) / 255  # (N, H, W, C)
    bn = model[0]
    # momentum=None during adaptation: a cumulative average of the 5 batch means (batches of 5, 5, 5, 5, 3)
    batch_means = [pixels[i : i + 5].mean(axis=(0, 1, 2)) for i in range(0, 23, 5)]
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean(batch_means, axis=0), rtol=1e-5)
    batch_vars = [pixels[i : i + 5].reshape(-1, 3).var(axis=0, ddof=1) for i in range(0, 23, 5)]
    np.testing.assert_allclose(bn.running_var.numpy(), np.mean(batch_vars, axis=0), rtol=1e-4)
    assert bn.momentum == 0.3 and not model.training and not bn.training
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key


def test_too_few_images_or_no_batchnorm_is_a_config_error() -> None:
    images = [np.zeros((4, 4, 3), np.uint8)] * 5
    with pytest.raises(ConfigError, match="at least 16 images"):
        adapt_batchnorm(nn.Sequential(nn.BatchNorm2d(3)), loader_of(images), torch.device("cpu"))
    with pytest.raises(ConfigError, match="no BatchNorm"):
        adapt_batchnorm(nn.Sequential(nn.Conv2d(3, 1, 1)), loader_of(images * 4), torch.device("cpu"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, make_folder: Callable[..., Path],
        tl_module: Callable[..., int], fast: list[str]) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("adapt")
    data = make_folder(base / "colours", {"train": 8, "val": 3, "test": 3})
    out = base / "run"
    assert tl_module("train", "--preset", "feature-extraction", "--data", data, "--output", out, *fast) == 0
    return {"data": data, "run": out}


def test_evaluate_with_adapt_bn_writes_its_own_labelled_report(run: dict[str, Path], tl: Tl) -> None:
    code, out, err = tl("evaluate", run["run"], "--data", run["data"], "--split", "train")
    assert code == 0, err
    plain = json.loads((run["run"] / "evaluation-train.json").read_text())
    code, out, err = tl("evaluate", run["run"], "--data", run["data"], "--split", "train", "--adapt-bn")
    assert code == 0, err
    adapted = json.loads((run["run"] / "evaluation-train-adapted-bn.json").read_text())
    assert adapted["adapted_batchnorm"] == {"images": 24, "from": "the train split's images", "labels_used": False}
    assert "adapted_batchnorm" not in plain
    assert json.loads(out)["n"] == 24
    # other statistics give other outputs: the log loss moves (the weights are the same)
    assert adapted["metrics"]["log_loss"] != pytest.approx(plain["metrics"]["log_loss"], abs=1e-6)


def test_predict_with_adapt_bn_on_too_few_images_is_one_line(run: dict[str, Path], tl: Tl) -> None:
    code, out, err = tl("predict", run["run"], run["data"] / "test", "--adapt-bn")
    assert code == 2 and out == ""
    assert "--adapt-bn needs at least 16 images from the new site, got 9" in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = tl("predict", run["run"], run["data"] / "train", "--adapt-bn")
    assert code == 0, err
    assert len(out.splitlines()) == 24
