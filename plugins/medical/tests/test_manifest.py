"""medical/manifest: column auto-detection, patient-level splits, safe paths, and leak detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tlcore.config import RunConfig
from tlcore.data.prepare import prepare_data
from tlcore.errors import DataError
from tlcore.plugins import PluginHost
from tlcore.specs import DatasetAdapter, read_rgb


@pytest.fixture
def adapter(host: PluginHost) -> DatasetAdapter:
    return host.adapters.get("medical/manifest")


def write_study(root: Path, patients: int = 12, per_patient: int = 3, seed: int = 0) -> list[dict[str, str]]:
    """PNG images under root/img/, several per patient; each patient has one diagnosis."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for p in range(patients):
        label = "malignant" if p % 3 == 0 else "benign"
        for i in range(per_patient):
            name = f"img/p{p}_{i}.png"
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(root / name)
            rows.append({"Image Path": name, "Diagnosis": label, "Patient ID": f"P{p:03d}"})
    return rows


def test_columns_are_recognised_in_any_spelling(adapter: DatasetAdapter, tmp_path: Path) -> None:
    rows = write_study(tmp_path)
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    assert adapter.detect is not None and adapter.detect(tmp_path) and adapter.detect(tmp_path / "labels.csv")
    ds = adapter.load(tmp_path, {})
    assert ds.classes == ["benign", "malignant"]
    assert list(ds.splits) == ["train"]  # no split column: the engine carves val/test by patient
    assert len(ds.splits["train"]) == 36
    first = ds.splits["train"][0]
    assert (Path(first.path).name, first.target, first.group) == ("p0_0.png", 1, "P000")
    assert ds.reader is read_rgb  # plain images: the engine screens them as usual
    assert ds.provenance["group_column"] == "Patient ID"
    renamed = pd.DataFrame(rows).rename(columns={"Patient ID": "PatientID", "Image Path": "file", "Diagnosis": "dx"})
    renamed.to_csv(tmp_path / "labels.csv", index=False)
    assert adapter.load(tmp_path, {}).splits["train"][0].group == "P000"


def test_named_columns_and_a_split_column(adapter: DatasetAdapter, tmp_path: Path) -> None:
    rows = write_study(tmp_path)
    df = pd.DataFrame(rows).rename(columns={"Patient ID": "mrn", "Diagnosis": "finding_code"})
    df["partition"] = ["test" if r["mrn"] in ("P000", "P001") else "train" for r in df.to_dict("records")]
    df.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DataError, match="no label column"):
        adapter.load(tmp_path / "m.csv", {})
    ds = adapter.load(tmp_path / "m.csv", {"label_column": "finding_code", "group_column": "mrn", "channels": 1})
    assert sorted(ds.splits) == ["test", "train"] and len(ds.splits["test"]) == 6
    assert ds.channels == 1 and ds.reader(ds.splits["test"][0].path).shape == (24, 24, 1)


def test_patient_level_split_puts_no_patient_in_two_splits(host: PluginHost, tmp_path: Path) -> None:
    pd.DataFrame(write_study(tmp_path, patients=20)).to_csv(tmp_path / "labels.csv", index=False)
    prepared = prepare_data(host, str(tmp_path / "labels.csv"), RunConfig(val_fraction=0.2), check_leakage=True)
    assert prepared.adapter == "medical/manifest"
    patients = {s: {r.group for r in rs} for s, rs in prepared.dataset.splits.items()}
    assert all(patients[s] for s in ("train", "val", "test"))
    assert not patients["train"] & patients["val"]
    assert not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert sum(len(p) for p in patients.values()) == 20
    assert prepared.leakage is not None and not prepared.leakage.found


def test_a_supplied_split_that_leaks_a_patient_is_caught(host: PluginHost, tmp_path: Path) -> None:
    rows = write_study(tmp_path)
    for row in rows:  # patient P004's second and third image went to test, the first stayed in train
        row["split"] = "test" if row["Patient ID"] in ("P001", "P002") or row["Image Path"] in (
            "img/p4_1.png", "img/p4_2.png") else "train"
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    prepared = prepare_data(host, str(tmp_path), RunConfig(), check_leakage=True)
    assert prepared.leakage is not None
    assert prepared.leakage.groups == 1
    assert prepared.leakage.group_examples[0]["group"] == "P004"
    assert "1 group(s) in more than one split" in prepared.leakage.summary()
    with pytest.raises(DataError, match="group 'P004'"):
        prepare_data(host, str(tmp_path), RunConfig(strict=True), check_leakage=True)


def test_paths_may_not_leave_the_data_root(adapter: DatasetAdapter, tmp_path: Path) -> None:
    root = tmp_path / "data"
    rows = write_study(root, patients=2)
    rows[0]["Image Path"] = "../secret.png"
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    with pytest.raises(DataError, match=r"points outside the data root") as info:
        adapter.load(root, {})
    assert "\n" not in str(info.value)
    rows[0]["Image Path"] = "/etc/passwd"
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    with pytest.raises(DataError, match="outside"):
        adapter.load(root, {})


def test_missing_files_fail_or_are_skipped_and_ids_find_files(adapter: DatasetAdapter, tmp_path: Path) -> None:
    rows = write_study(tmp_path, patients=3)
    rows.append({"Image Path": "img/gone.png", "Diagnosis": "benign", "Patient ID": "P9"})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match="1 manifest file"):
        adapter.load(tmp_path, {})
    ds = adapter.load(tmp_path, {"missing": "skip"})
    assert ds.provenance["missing_files_skipped"] == 1 and len(ds.splits["train"]) == 9
    # HAM10000-style: an image id without folder or suffix, and a lesion id as the group
    ids = pd.DataFrame({"image_id": ["p0_0", "p1_0", "p2_0"], "dx": ["nv", "mel", "nv"],
                        "lesion_id": ["L1", "L2", "L1"]})
    ids.to_csv(tmp_path / "labels.csv", index=False)
    found = adapter.load(tmp_path, {})  # common suffixes are tried; `suffixes: [.x]` adds others
    assert [Path(r.path).name for r in found.splits["train"]] == ["p0_0.png", "p1_0.png", "p2_0.png"]
    assert [r.group for r in found.splits["train"]] == ["L1", "L2", "L1"]
