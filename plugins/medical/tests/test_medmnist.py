"""medical/medmnist: official-format .npz files, grey or RGB, any size, single- or multi-label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tlcore.errors import DataError
from tlcore.plugins import PluginHost
from tlcore.specs import DatasetAdapter


@pytest.fixture
def adapter(host: PluginHost) -> DatasetAdapter:
    return host.adapters.get("medical/medmnist")


def test_grey_binary_set_with_official_names(adapter: DatasetAdapter, tmp_path: Path, medmnist_npz: Any) -> None:
    path = medmnist_npz(tmp_path / "pneumoniamnist.npz", {"train": 10, "val": 4, "test": 6})
    assert adapter.detect is not None and adapter.detect(tmp_path) and adapter.detect(path)
    ds = adapter.load(tmp_path, {})
    assert ds.classes == ["normal", "pneumonia"]
    assert ds.task == "classification"
    assert {s: len(r) for s, r in ds.splits.items()} == {"train": 10, "val": 4, "test": 6}
    record = ds.splits["val"][3]
    assert record.path.endswith("pneumoniamnist.npz::val:3") and record.target == 1
    image = ds.reader(record.path)
    with np.load(path) as data:
        original = data["val_images"][3]
    assert image.shape == (28, 28, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[:, :, 0], original)
    grey = adapter.load(path, {"channels": 1})
    assert grey.channels == 1 and grey.reader(record.path).shape == (28, 28, 1)


def test_rgb_224_and_size_choice(adapter: DatasetAdapter, tmp_path: Path, medmnist_npz: Any) -> None:
    medmnist_npz(tmp_path / "dermamnist.npz", {"train": 7, "val": 7, "test": 7}, labels=7, rgb=True)
    medmnist_npz(tmp_path / "dermamnist_224.npz", {"train": 7, "val": 7, "test": 7}, size=224, labels=7, rgb=True)
    with pytest.raises(DataError, match="holds 2 MedMNIST files"):
        adapter.load(tmp_path, {})
    ds = adapter.load(tmp_path, {"size": 224})
    assert ds.provenance["file"] == "dermamnist_224.npz" and ds.provenance["source_channels"] == 3
    assert ds.classes[4] == "melanoma" and len(ds.classes) == 7
    assert ds.reader(ds.splits["test"][0].path).shape == (224, 224, 3)
    assert adapter.load(tmp_path, {"size": 28}).provenance["file"] == "dermamnist.npz"


def test_multilabel_chest_set(adapter: DatasetAdapter, tmp_path: Path, medmnist_npz: Any) -> None:
    path = medmnist_npz(tmp_path / "chestmnist_64.npz", {"train": 6, "test": 3}, size=64, labels=14,
                        multilabel=True)
    ds = adapter.load(path, {})
    assert ds.task == "multilabel" and len(ds.classes) == 14 and ds.classes[1] == "cardiomegaly"
    with np.load(path) as data:
        want = data["train_labels"][2]
    assert ds.splits["train"][2].target == tuple(float(v) for v in want)
    assert "val" not in ds.splits  # carved out of train by the engine


def test_unknown_sets_get_index_names_or_the_option(adapter: DatasetAdapter, tmp_path: Path,
                                                    medmnist_npz: Any) -> None:
    path = medmnist_npz(tmp_path / "mysetmnist.npz", {"train": 6, "test": 3}, labels=3)
    assert adapter.load(path, {}).classes == ["0", "1", "2"]
    assert adapter.load(path, {"classes": ["a", "b", "c"]}).classes == ["a", "b", "c"]
    with pytest.raises(DataError, match="2 class names for 3"):
        adapter.load(path, {"classes": ["a", "b"]})
    (tmp_path / "other.npz").write_bytes(b"junk")
    assert adapter.detect is not None and not adapter.detect(tmp_path / "other.npz")
