"""The medical entries of datasets.yaml: published checksums, adapters that exist, and local layouts that load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tlcore.catalog import SHIPPED_CATALOG, load_catalog_file
from tlcore.config import RunConfig
from tlcore.data.prepare import prepare_data
from tlcore.plugins import PluginHost

MEDICAL = ["chest_xray_pneumonia", "pneumoniamnist", "pneumoniamnist_224", "breastmnist", "breastmnist_224",
           "dermamnist", "dermamnist_224", "brain_tumor_figshare", "busi", "ham10000", "nih_chestxray14"]


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TLCORE_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def test_entries_name_adapters_and_carry_licence_citation_and_source(host: PluginHost) -> None:
    entries = {e.name: e for e in load_catalog_file(SHIPPED_CATALOG)}
    for name in MEDICAL:
        entry = entries[name]
        assert entry.domain == "medical" and entry.adapter in host.adapters, name
        assert entry.licence and entry.citation and entry.intended_use and entry.homepage, name
        for file in entry.download:  # MedMNIST: the md5 published in medmnist's INFO dict
            assert file.url.startswith("https://zenodo.org/records/10519652/files/"), name
            assert file.checksum[0] == "md5" and file.name == f"{name}.npz", name
    assert entries["pneumoniamnist"].download[0].md5 == "28209eda62fecd6e6a2d98b1501bb15f"
    assert entries["nih_chestxray14"].task == "multilabel"
    assert not entries["busi"].download and not entries["ham10000"].download  # no published checksum


def test_medmnist_entry_loads_its_file(host: PluginHost, data_root: Path, medmnist_npz: Any) -> None:
    medmnist_npz(data_root / "breastmnist" / "breastmnist.npz", {"train": 8, "val": 4, "test": 4})
    medmnist_npz(data_root / "breastmnist" / "breastmnist_224.npz", {"train": 2, "val": 2, "test": 2}, size=224)
    prepared = prepare_data(host, "breastmnist", RunConfig())
    assert prepared.adapter == "medical/medmnist"
    assert prepared.dataset.classes == ["malignant", "normal, benign"]
    assert len(prepared.dataset.splits["train"]) == 8


def test_ham10000_entry_loads_metadata_and_groups_by_lesion(host: PluginHost, data_root: Path) -> None:
    root = data_root / "ham10000"
    rng = np.random.default_rng(0)
    rows = []
    for i in range(14):
        part = root / f"HAM10000_images_part_{1 + i % 2}"
        part.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(part / f"ISIC_{i:07d}.jpg")
        rows.append({"lesion_id": f"HAM_{i // 2:07d}", "image_id": f"ISIC_{i:07d}", "dx": "mel" if i % 4 == 0 else "nv",
                     "dx_type": "histo", "age": 50, "sex": "male", "localization": "back"})
    pd.DataFrame(rows).to_csv(root / "HAM10000_metadata.csv", index=False)
    prepared = prepare_data(host, "ham10000", RunConfig(val_fraction=0.3))
    assert prepared.adapter == "medical/manifest"
    lesions = {s: {r.group for r in rs} for s, rs in prepared.dataset.splits.items()}
    assert not lesions["train"] & lesions["test"] and not lesions["train"] & lesions["val"]


def test_busi_entry_leaves_masks_out(host: PluginHost, data_root: Path) -> None:
    root = data_root / "busi" / "Dataset_BUSI_with_GT"
    rng = np.random.default_rng(1)
    for label in ("benign", "malignant", "normal"):
        (root / label).mkdir(parents=True)
        for i in range(1, 6):
            Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(root / label / f"{label} ({i}).png")
            Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / label / f"{label} ({i})_mask.png")
        Image.fromarray(np.zeros((20, 20), np.uint8)).save(root / label / f"{label} (1)_mask_1.png")
    prepared = prepare_data(host, "busi", RunConfig(val_fraction=0.2))
    assert prepared.adapter == "medical/masked-folder"
    paths = [r.path for rs in prepared.dataset.splits.values() for r in rs]
    assert len(paths) == 15 and not any("mask" in Path(p).name for p in paths)
    assert prepared.dataset.provenance["masks_left_out"] == 18


def test_nih_entry_uses_the_official_lists(host: PluginHost, data_root: Path) -> None:
    root = data_root / "nih_chestxray14"
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(12):
        name = f"{i:08d}_000.png"
        Image.fromarray(np.full((16, 16), i * 10, np.uint8)).save(root / "images" / name)
        rows.append({"Image Index": name, "Finding Labels": ["No Finding", "Mass|Nodule", "Effusion"][i % 3],
                     "Follow-up #": 0, "Patient ID": i // 2, "Patient Age": 40, "Patient Sex": "F"})
    pd.DataFrame(rows).to_csv(root / "Data_Entry_2017_v2020.csv", index=False)
    pd.DataFrame({"Image Index": ["x"], "Finding Label": ["Mass"]}).to_csv(root / "BBox_List_2017.csv", index=False)
    (root / "train_val_list.txt").write_text("\n".join(r["Image Index"] for r in rows[:8]))
    (root / "test_list.txt").write_text("\n".join(r["Image Index"] for r in rows[8:]))
    prepared = prepare_data(host, "nih_chestxray14", RunConfig(val_fraction=0.25))  # the entry's csv pattern
    ds = prepared.dataset
    assert prepared.adapter == "medical/multilabel" and ds.task == "multilabel"
    assert ds.classes == ["Effusion", "Mass", "Nodule"]
    assert len(ds.splits["train"]) + len(ds.splits["val"]) == 8 and len(ds.splits["test"]) == 4
    assert ds.splits["test"][0].group == "4"
    assert not {r.group for r in ds.splits["train"]} & {r.group for r in ds.splits["val"]}
