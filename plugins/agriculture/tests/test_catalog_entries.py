"""The crop-disease datasets in the shipped datasets.yaml: valid entries whose layouts the adapters load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tlcore.catalog import SHIPPED_CATALOG, load_catalog_file
from tlcore.config import RunConfig
from tlcore.data.prepare import prepare_data
from tlcore.errors import TlcoreError
from tlcore.plugins import PluginHost

CROP_DISEASE = ("beans", "plant_village", "plantdoc", "cassava", "rice_leaf_diseases")


@pytest.fixture
def entries() -> dict[str, object]:
    return {e.name: e for e in load_catalog_file(SHIPPED_CATALOG)}


def test_entries_are_complete(entries: dict, host: PluginHost) -> None:
    for name in CROP_DISEASE:
        entry = entries[name]
        assert entry.domain == "agriculture", name
        assert entry.licence and entry.citation and entry.homepage and entry.intended_use, name
        assert entry.adapter in host.adapters, name
        # a download only where a published checksum exists; otherwise the comment says where to put the files
        for file in entry.download:
            assert file.url.startswith("https://") and len(file.sha256) == 64
    assert [f.name for f in entries["plant_village"].download] == [
        "Plant_leaf_diseases_dataset_without_augmentation.zip"
    ]
    assert entries["plantdoc"].download == [] and entries["rice_leaf_diseases"].download == []
    assert len(entries["plant_village"].classes) == 38


def test_plant_village_entry_loads_the_mendeley_layout(
    host: PluginHost, entries: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images: Callable
) -> None:
    """Files already in $TLCORE_DATA/plant_village: no download, the background folder is left out."""
    monkeypatch.setenv("TLCORE_DATA", str(tmp_path))
    root = tmp_path / "plant_village" / "Plant_leave_diseases_dataset_without_augmentation"
    for k, name in enumerate(
        ("Tomato___healthy", "Tomato___Late_blight", "Apple___healthy", "Background_without_leaves")
    ):
        images(root / name, 7, seed=k)
    prepared = prepare_data(host, "plant_village", RunConfig(adapter_options={"crops": ["tomato"]}))
    assert prepared.adapter == "agriculture/plantvillage"
    assert prepared.dataset.classes == ["Tomato___Late_blight", "Tomato___healthy"]
    assert set(prepared.dataset.classes) <= set(entries["plant_village"].classes)
    assert sum(len(r) for r in prepared.dataset.splits.values()) == 14


def test_cassava_entry_loads_the_tfds_layout(
    host: PluginHost, entries: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images: Callable
) -> None:
    monkeypatch.setenv("TLCORE_DATA", str(tmp_path))
    root = tmp_path / "cassava" / "cassavaleafdata"
    for split in ("train", "validation", "test"):
        for k, name in enumerate(entries["cassava"].classes):
            images(root / split / name, 2, seed=k)
    prepared = prepare_data(host, "cassava", RunConfig())
    assert prepared.dataset.classes == entries["cassava"].classes
    assert set(prepared.dataset.splits) == {"train", "val", "test"}
    assert prepared.split_origin == {"train": "given", "val": "given", "test": "given"}


def test_an_entry_without_download_says_where_to_put_the_files(
    host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TLCORE_DATA", str(tmp_path))
    with pytest.raises(TlcoreError, match="not public-downloadable") as info:
        prepare_data(host, "plantdoc", RunConfig())
    assert "github.com/pratikkayal/PlantDoc-Dataset" in str(info.value.hint)
