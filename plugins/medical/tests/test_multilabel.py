"""medical/multilabel: ChestX-ray14 and CheXpert manifests become multi-label records grouped by patient."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tlcore.errors import ConfigError
from tlcore.plugins import PluginHost
from tlcore.specs import DatasetAdapter


@pytest.fixture
def adapter(host: PluginHost) -> DatasetAdapter:
    return host.adapters.get("medical/multilabel")


def png(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16), dtype=np.uint8)).save(path)


def test_chestxray14_style_with_the_official_split_lists(adapter: DatasetAdapter, tmp_path: Path) -> None:
    rows = [
        ("00000001_000.png", "Cardiomegaly", 1),
        ("00000001_001.png", "Cardiomegaly|Emphysema", 1),
        ("00000002_000.png", "No Finding", 2),
        ("00000003_000.png", "Effusion|Infiltration", 3),
        ("00000004_000.png", "Hernia", 4),
    ]
    for i, (name, _, _) in enumerate(rows):
        png(tmp_path / f"images_00{1 + i % 2}" / "images" / name, i)  # the archive's nested folders
    pd.DataFrame(rows, columns=["Image Index", "Finding Labels", "Patient ID"]).assign(
        **{"Patient Age": [58, 58, 81, 34, 70]}
    ).to_csv(tmp_path / "Data_Entry_2017.csv", index=False)
    (tmp_path / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n00000002_000.png\n")
    (tmp_path / "test_list.txt").write_text("00000003_000.png\n00000004_000.png\n")
    assert adapter.detect is not None and adapter.detect(tmp_path)
    ds = adapter.load(tmp_path, {})
    assert ds.task == "multilabel"
    assert ds.classes == ["Cardiomegaly", "Effusion", "Emphysema", "Hernia", "Infiltration"]
    train = {Path(r.path).name: r for r in ds.splits["train"]}
    assert train["00000001_001.png"].target == (1.0, 0.0, 1.0, 0.0, 0.0)
    assert train["00000002_000.png"].target == (0.0,) * 5  # No Finding
    assert train["00000001_000.png"].group == "1"
    assert [Path(r.path).name for r in ds.splits["test"]] == ["00000003_000.png", "00000004_000.png"]
    assert ds.provenance["split_lists"] == "official list files"
    assert ds.reader(ds.splits["test"][0].path).shape == (16, 16, 3)


def chexpert(root: Path) -> Path:
    folder = root / "CheXpert-v1.0-small"
    rows = []
    for p, study, values in [(1, 1, ("1.0", "", "-1.0")), (1, 2, ("0.0", "1.0", "")), (2, 1, ("-1.0", "0.0", "1.0"))]:
        name = f"CheXpert-v1.0-small/train/patient0000{p}/study{study}/view1_frontal.jpg"
        png(root / name.replace(".jpg", ".png"), p)
        (root / name.replace(".jpg", ".png")).rename(root / name)
        rows.append({"Path": name, "Sex": "Female", "Age": 68, "Frontal/Lateral": "Frontal",
                     "Edema": values[0], "Atelectasis": values[1], "Cardiomegaly": values[2]})
    pd.DataFrame(rows).to_csv(folder / "train.csv", index=False)
    return folder


def test_chexpert_style_uncertain_and_blank_policies(adapter: DatasetAdapter, tmp_path: Path) -> None:
    folder = chexpert(tmp_path)
    assert adapter.detect is not None and adapter.detect(folder)
    ds = adapter.load(folder, {})  # paths start with the dataset's own folder name
    assert ds.classes == ["Edema", "Atelectasis", "Cardiomegaly"]  # Age and Sex are not findings
    first, second, _ = ds.splits["train"]
    assert first.target[0] == 1.0 and first.target[1] == 0.0 and math.isnan(first.target[2])  # -1 ignored
    assert second.target == (0.0, 1.0, 0.0)  # blank: zeros
    assert [r.group for r in ds.splits["train"]] == ["patient00001", "patient00001", "patient00002"]
    ones = adapter.load(folder, {"uncertain": "ones", "blank": "ignore"})
    assert ones.splits["train"][0].target[2] == 1.0 and math.isnan(ones.splits["train"][0].target[1])
    mixed = adapter.load(folder, {"uncertain": {"Edema": "zeros", "default": "ones"}})
    assert mixed.splits["train"][2].target[0] == 0.0 and mixed.splits["train"][0].target[2] == 1.0
    assert adapter.load(folder, {"label_columns": ["Edema"]}).classes == ["Edema"]
    with pytest.raises(ConfigError, match="zeros, ones or ignore"):
        adapter.load(folder, {"uncertain": "maybe"})


def test_a_single_label_manifest_is_not_multilabel(adapter: DatasetAdapter, tmp_path: Path) -> None:
    pd.DataFrame({"path": ["a.png"], "label": [1], "patient_id": ["p"]}).to_csv(tmp_path / "m.csv", index=False)
    assert adapter.detect is not None and not adapter.detect(tmp_path)
