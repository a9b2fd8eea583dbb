"""medical/dicom: rescale, windowing, MONOCHROME1 inversion, 16-bit data, and the patient as the group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tlcore.errors import ConfigError, DataError
from tlcore.plugins import PluginHost
from tlcore.specs import DatasetAdapter
from tlcore_medical.dicom import DicomReader

# Stored 12-bit values; with slope 2 and intercept -1024 they become -1024, 0, 1024, ... 7166 (beyond 8 bits).
STORED = np.array([[0, 256, 512, 768], [1024, 1536, 2048, 4095]], dtype=np.uint16)


def expected(stored: np.ndarray, slope: float, intercept: float, center: float, width: float,
             invert: bool) -> np.ndarray:
    """The DICOM LINEAR window (PS3.3 C.11.2.1.2.1) written out by hand, to 0-255."""
    x = stored.astype(np.float64) * slope + intercept
    unit = np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    unit = 1 - unit if invert else unit
    return np.rint(unit * 255).astype(np.uint8)


@pytest.fixture
def adapter(host: PluginHost) -> DatasetAdapter:
    return host.adapters.get("medical/dicom")


def test_monochrome1_rescaled_16_bit_is_windowed_from_the_header_then_inverted(tmp_path: Path, dicom: Any) -> None:
    path = dicom(tmp_path / "a.dcm", STORED, photometric="MONOCHROME1", slope=2.0, intercept=-1024.0,
                 window=(1000.0, 4000.0), bits_stored=12)
    out = DicomReader()(str(path))
    assert out.shape == (2, 4, 3) and out.dtype == np.uint8
    want = expected(STORED, 2.0, -1024.0, 1000.0, 4000.0, invert=True)
    np.testing.assert_array_equal(out[:, :, 0], want)
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])
    # MONOCHROME1: the lowest value is white; values above the window are black.
    assert out[0, 0, 0] == 255 - expected(STORED, 2, -1024, 1000, 4000, invert=False)[0, 0]
    assert out[1, 3, 0] == 0
    # the 12-bit values were not squeezed into 8 bits before windowing: 0..1024 raw all differ
    assert len(set(want[0].tolist())) == 4


def test_monochrome2_is_not_inverted_and_an_option_window_wins(tmp_path: Path, dicom: Any) -> None:
    path = dicom(tmp_path / "b.dcm", STORED, slope=2.0, intercept=-1024.0, window=(1000.0, 4000.0))
    header = DicomReader()(str(path))[:, :, 0]
    np.testing.assert_array_equal(header, expected(STORED, 2.0, -1024.0, 1000.0, 4000.0, invert=False))
    narrow = DicomReader(window=(0.0, 2049.0), channels=1)(str(path))
    assert narrow.shape == (2, 4, 1)
    np.testing.assert_array_equal(narrow[:, :, 0], expected(STORED, 2.0, -1024.0, 0.0, 2049.0, invert=False))
    assert narrow[0, 0, 0] == 0 and narrow[0, 2, 0] == 128 and narrow[1, 0, 0] == 255  # -1024, 0, 1024 HU


def test_no_window_falls_back_to_percentiles(tmp_path: Path, dicom: Any) -> None:
    ramp = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000  # up to 63000: needs all 16 bits
    out = DicomReader(percentiles=(0.0, 100.0))(str(dicom(tmp_path / "c.dcm", ramp)))[:, :, 0]
    assert out.min() == 0 and out.max() == 255
    assert np.all(np.diff(out.ravel().astype(int)) >= 0) and len(np.unique(out)) == 64


def test_a_voi_lut_sequence_beats_the_window_and_a_sigmoid_window_is_followed(tmp_path: Path, dicom: Any) -> None:
    import pydicom
    from pydicom.dataset import Dataset

    path = dicom(tmp_path / "lut.dcm", STORED, window=(1000.0, 4000.0), bits_stored=12)
    ds = pydicom.dcmread(path)
    # A 12-bit display curve over stored values 0..4095: the square root, scaled to 12 bits (non-linear).
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 12])  # LUT Descriptor: entries, first stored value, bits
    item.add_new(0x00283006, "US", [round(np.sqrt(v / 4095) * 4095) for v in range(4096)])  # LUT Data
    ds.VOILUTSequence = [item]
    ds.save_as(path, enforce_file_format=True)
    out = DicomReader()(str(path))[:, :, 0]
    want = np.rint(np.rint(np.sqrt(STORED / 4095) * 4095) / 4095 * 255).astype(np.uint8)
    np.testing.assert_array_equal(out, want)
    assert out[0, 1] == 64  # 256 of 4095 is 1/16 of the range; the curve lifts it to 1/4 (a window gives 16)
    # an explicit window still wins over the file's curve
    np.testing.assert_array_equal(DicomReader(window=(1000.0, 4000.0))(str(path))[:, :, 0],
                                  expected(STORED, 1.0, 0.0, 1000.0, 4000.0, invert=False))

    sig = dicom(tmp_path / "sig.dcm", STORED, window=(1024.0, 1024.0), bits_stored=12)
    ds = pydicom.dcmread(sig)
    ds.VOILUTFunction = "SIGMOID"
    ds.save_as(sig, enforce_file_format=True)
    out = DicomReader()(str(sig))[:, :, 0]
    sigmoid = 1 / (1 + np.exp(-4 * (STORED.astype(np.float64) - 1024) / 1024))
    np.testing.assert_array_equal(out, np.rint(sigmoid * 255).astype(np.uint8))
    assert out[1, 0] == 128 and 0 < out[0, 0] < 10 and out[1, 3] == 255  # centre at mid-grey, no hard clip


def write_tree(root: Path, dicom: Any) -> Path:
    """train/{normal,effusion}: 3 patients x 2 images each; test/: one patient per class."""
    rng = np.random.default_rng(0)
    for split, patients in (("train", ["p1", "p2", "p3"]), ("test", ["p9"])):
        for label in ("normal", "effusion"):
            for p in patients:
                for i in range(2):
                    stored = rng.integers(0, 4096, (12, 10)).astype(np.uint16)
                    # PACS exports often have no suffix: the DICM preamble identifies them
                    name = f"{label}_{p}_{i}.dcm" if i == 0 else f"{label}_{p}_{i}"
                    dicom(root / split / label / name, stored, patient=f"{label}-{p}", window=(2048, 4096))
    return root


def test_folder_layout_groups_by_patient_id(adapter: DatasetAdapter, tmp_path: Path, dicom: Any) -> None:
    root = write_tree(tmp_path / "cxr", dicom)
    assert adapter.detect is not None and adapter.detect(root)
    ds = adapter.load(root, {})
    assert ds.classes == ["effusion", "normal"]
    assert len(ds.splits["train"]) == 12 and len(ds.splits["test"]) == 4
    groups = {r.group for r in ds.splits["train"]}
    assert groups == {f"{c}-{p}" for c in ("normal", "effusion") for p in ("p1", "p2", "p3")}
    assert ds.provenance["group"] == "PatientID"
    image = ds.reader(ds.splits["train"][0].path)
    assert image.shape == (12, 10, 3) and image.dtype == np.uint8
    grey = adapter.load(root, {"channels": 1, "window": [2048, 4096]})
    assert grey.channels == 1 and grey.reader(grey.splits["test"][0].path).shape == (12, 10, 1)


def test_engine_carves_val_without_sharing_a_patient(host: PluginHost, tmp_path: Path, dicom: Any) -> None:
    from tlcore.config import RunConfig
    from tlcore.data.prepare import prepare_data

    root = write_tree(tmp_path / "cxr", dicom)
    prepared = prepare_data(host, str(root), RunConfig(val_fraction=0.34), check_leakage=True)
    assert prepared.adapter == "medical/dicom"
    train = {r.group for r in prepared.dataset.splits["train"]}
    val = {r.group for r in prepared.dataset.splits["val"]}
    assert val and train and not train & val
    assert prepared.leakage is not None and prepared.leakage.groups == 0


def test_one_anonymised_id_everywhere_is_not_used_as_a_patient(adapter: DatasetAdapter, tmp_path: Path,
                                                                dicom: Any) -> None:
    for label in ("a", "b"):
        for i in range(2):
            dicom(tmp_path / "d" / label / f"{i}.dcm", STORED, patient="ANONYMOUS")
    ds = adapter.load(tmp_path / "d", {})
    assert {r.group for r in ds.splits["train"]} == {None}
    assert ds.provenance["group"] == "PatientID identical in every file"


def test_bad_files_and_options_are_one_line_errors(adapter: DatasetAdapter, tmp_path: Path) -> None:
    bad = tmp_path / "x.dcm"
    bad.write_bytes(b"not dicom")
    with pytest.raises(DataError, match="cannot decode DICOM"):
        DicomReader()(str(bad))
    with pytest.raises(ConfigError, match="window must be two numbers"):
        adapter.load(tmp_path, {"window": 40})
    with pytest.raises(ConfigError, match="channels must be 1 or 3"):
        adapter.load(tmp_path, {"channels": 2})


def test_given_split_folders_that_share_a_patient_are_caught(host: PluginHost, tmp_path: Path, dicom: Any) -> None:
    from tlcore.config import RunConfig
    from tlcore.data.prepare import prepare_data

    root = write_tree(tmp_path / "cxr", dicom)
    # a follow-up film of a training patient filed under test/
    dicom(root / "test" / "normal" / "followup.dcm", STORED, patient="normal-p2", window=(2048, 4096))
    prepared = prepare_data(host, str(root), RunConfig(), check_leakage=True)
    assert prepared.leakage is not None and prepared.leakage.groups == 1
    assert prepared.leakage.group_examples[0] == {"group": "normal-p2", "splits": {"train": 2, "test": 1}}
