"""medical/nifti: slices and 2.5-D stacks from volumes written with nibabel, labels from masks or folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tlcore.config import RunConfig
from tlcore.data.prepare import prepare_data
from tlcore.errors import ConfigError, DataError
from tlcore.plugins import PluginHost
from tlcore.specs import DatasetAdapter
from tlcore_medical.nifti import NiftiSliceReader, VolumeSettings, load_volume

SHAPE = (20, 24, 12)  # x, y, z (axial slices along z)


@pytest.fixture
def adapter(host: PluginHost) -> DatasetAdapter:
    return host.adapters.get("medical/nifti")


def paired(root: Path, nifti: Any, brain: Any, patients: int = 3) -> Path:
    """root/images/sub-<i>.nii.gz and root/masks/sub-<i>.nii.gz; lesion in slices 5, 6, 7."""
    for i in range(patients):
        volume, mask = brain(SHAPE, lesion=(5, 8), seed=i)
        nifti(root / "images" / f"sub-{i}.nii.gz", volume)
        nifti(root / "masks" / f"sub-{i}.nii.gz", mask)
    return root


def test_mask_labels_slices_and_slices_of_a_patient_share_a_group(adapter: DatasetAdapter, tmp_path: Path,
                                                                  nifti: Any, brain: Any) -> None:
    root = paired(tmp_path / "mri", nifti, brain)
    assert adapter.detect is not None and adapter.detect(root)
    ds = adapter.load(root, {"min_mask_voxels": 9})
    assert ds.classes == ["no_lesion", "lesion"]
    records = ds.splits["train"]
    by_volume: dict[str, dict[int, int]] = {}
    for r in records:
        file, _, index = r.path.rpartition("::")
        by_volume.setdefault(Path(file).name, {})[int(index)] = int(r.target)
        assert r.group == Path(file).name.removesuffix(".nii.gz")
    # the head spans |z| < 0.75: slices 2..9 hold tissue; 0, 1, 10, 11 are empty and left out
    assert by_volume["sub-0.nii.gz"] == {2: 0, 3: 0, 4: 0, 5: 1, 6: 1, 7: 1, 8: 0, 9: 0}
    assert ds.provenance["slices_left_out"] == {"empty": 12, "ambiguous": 0}
    # more voxels needed than the lesion has: its slices are ambiguous, neither positive nor negative
    strict = adapter.load(root, {"min_mask_voxels": 10})
    assert {int(r.target) for r in strict.splits["train"]} == {0}
    assert strict.provenance["slices_left_out"]["ambiguous"] == 9


def test_2d_slice_and_2_5d_stack(adapter: DatasetAdapter, tmp_path: Path, nifti: Any, brain: Any) -> None:
    root = paired(tmp_path / "mri", nifti, brain, patients=1)
    flat = adapter.load(root, {"min_mask_voxels": 9})
    stack = adapter.load(root, {"mode": "2.5d", "context": 1, "min_mask_voxels": 9})
    path = next(r.path for r in flat.splits["train"] if r.path.endswith("::6"))
    volume = load_volume(path.rpartition("::")[0], VolumeSettings())
    one = flat.reader(path)
    # an axial slice, rotated so anterior is up: (y, x) -> 24 rows, 20 columns; grey in 3 channels
    assert one.shape == (24, 20, 3) and one.dtype == np.uint8
    np.testing.assert_array_equal(one[:, :, 0], np.rot90(volume[:, :, 6]))
    assert one[12 - 1, 10, 0] == 255  # the bright lesion at the centre, at the top of the percentile range
    three = stack.reader(path)
    assert three.shape == (24, 20, 3)
    for channel, z in enumerate((5, 6, 7)):
        np.testing.assert_array_equal(three[:, :, channel], np.rot90(volume[:, :, z]))
    edge = stack.reader(path.replace("::6", "::2"))
    np.testing.assert_array_equal(edge[:, :, 0], np.rot90(volume[:, :, 1]))
    assert stack.provenance["mode"] == "2.5d"


def test_orientation_is_canonical_whatever_the_affine(tmp_path: Path, nifti: Any, brain: Any) -> None:
    volume, _ = brain(SHAPE, seed=0)
    volume[0, :, :] = 2000.0  # mark the right-most x plane
    nifti(tmp_path / "ras.nii.gz", volume)
    nifti(tmp_path / "las.nii.gz", volume[::-1].copy(), affine=np.diag([-1.0, 1.0, 1.0, 1.0]))
    reader = NiftiSliceReader()
    np.testing.assert_array_equal(reader(f"{tmp_path}/ras.nii.gz::6"), reader(f"{tmp_path}/las.nii.gz::6"))
    sagittal = NiftiSliceReader(axis=0)(f"{tmp_path}/ras.nii.gz::10")
    assert sagittal.shape == (12, 24, 3)


def test_volume_labels_from_class_folders_and_a_manifest(adapter: DatasetAdapter, tmp_path: Path, nifti: Any,
                                                           brain: Any, host: PluginHost) -> None:
    root = tmp_path / "vols"
    for i in range(4):
        for label in ("glioma", "healthy"):
            volume, _ = brain(SHAPE, lesion=(5, 8) if label == "glioma" else None, seed=i)
            nifti(root / label / f"s{i}_{label}.nii", volume)
    ds = adapter.load(root, {"axis": "axial", "slice_range": [0.25, 0.75], "stride": 2})
    assert ds.classes == ["glioma", "healthy"]
    assert {r.path.rpartition("::")[2] for r in ds.splits["train"]} == {"3", "5", "7"}  # z in [3, 9), every 2nd
    assert len(ds.splits["train"]) == 8 * 3
    prepared = prepare_data(host, str(root), RunConfig(val_fraction=0.25), check_leakage=True)
    groups = {s: {r.group for r in rs} for s, rs in prepared.dataset.splits.items()}
    assert not groups["train"] & groups["val"] and not groups["train"] & groups["test"]

    rows = [{"path": f"{label}/s{i}_{label}.nii", "diagnosis": label, "subject_id": f"S{i}"}
            for i in range(4) for label in ("glioma", "healthy")]
    pd.DataFrame(rows).to_csv(root / "volumes.csv", index=False)
    listed = adapter.load(root / "volumes.csv", {"min_foreground": 0.2})
    assert listed.classes == ["glioma", "healthy"]
    assert {r.group for r in listed.splits["train"]} == {"S0", "S1", "S2", "S3"}


def test_a_manifest_with_mask_paths(adapter: DatasetAdapter, tmp_path: Path, nifti: Any, brain: Any) -> None:
    root = paired(tmp_path / "mri", nifti, brain, patients=2)
    pd.DataFrame({"image": ["images/sub-0.nii.gz", "images/sub-1.nii.gz"],
                  "segmentation": ["masks/sub-0.nii.gz", "masks/sub-1.nii.gz"],
                  "patient_id": ["A", "B"], "split": ["train", "test"]}).to_csv(root / "list.csv", index=False)
    ds = adapter.load(root, {"csv": "list.csv", "classes": ["clear", "tumour"], "min_mask_voxels": 5})
    assert ds.classes == ["clear", "tumour"]
    assert {r.group for r in ds.splits["test"]} == {"B"}
    assert sum(int(r.target) for r in ds.splits["train"]) == 3


def test_errors_are_one_line(adapter: DatasetAdapter, tmp_path: Path, nifti: Any, brain: Any) -> None:
    root = paired(tmp_path / "mri", nifti, brain, patients=1)
    with pytest.raises(ConfigError, match="axis"):
        adapter.load(root, {"axis": "oblique"})
    with pytest.raises(ConfigError, match=r"2\.5d makes 3 channels"):
        adapter.load(root, {"mode": "2.5d", "channels": 1})
    nifti(root / "masks" / "sub-0.nii.gz", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(DataError, match="voxel grid"):
        adapter.load(root, {})
