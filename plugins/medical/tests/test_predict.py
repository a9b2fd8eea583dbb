"""`tl predict` on new DICOMs and volumes: through the run's adapter, read exactly as training read them."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tlcore.plugins import PluginHost
from tlcore_medical.nifti import load_volume

SHAPE = (20, 24, 12)


def dicom_tree(root: Path, dicom: Any) -> Path:
    """train/{normal,effusion}: 3 patients x 2 films; test/: one patient per class. 'effusion' films are
    brighter, so even a frozen backbone separates them; half the files have no suffix, as PACS exports."""
    rng = np.random.default_rng(0)
    for split, patients in (("train", ["p1", "p2", "p3"]), ("test", ["p9"])):
        for label, level in (("normal", 800), ("effusion", 3000)):
            for p in patients:
                for i in range(2):
                    stored = (level + rng.integers(0, 600, (40, 36))).astype(np.uint16)
                    name = f"{label}_{p}_{i}.dcm" if i == 0 else f"{label}_{p}_{i}"
                    dicom(root / split / label / name, stored, patient=f"{label}-{p}", window=(2048, 4096))
    return root


def test_dicom_folder_is_read_with_the_runs_window(host: PluginHost, tmp_path: Path, dicom: Any) -> None:
    adapter = host.adapters.get("medical/dicom")
    assert adapter.predict_inputs is not None
    root = dicom_tree(tmp_path / "cxr", dicom)
    options = {"window": [1500, 3000], "channels": 1}
    trained = adapter.load(root, options)
    inputs = adapter.predict_inputs([root / "test"], options, 1)
    # the suffix-less files are found by their DICM preamble, like training found them
    assert sorted(inputs.items) == sorted(r.path for r in trained.splits["test"])
    for item in inputs.items:
        np.testing.assert_array_equal(inputs.reader(item), trained.reader(item))
    # the window is the run's: another window gives other pixels
    other = adapter.predict_inputs([root / "test"], {"channels": 1}, 1)
    assert not np.array_equal(other.reader(inputs.items[0]), inputs.reader(inputs.items[0]))


def test_nifti_volume_gives_the_slices_training_would_keep(host: PluginHost, tmp_path: Path, nifti: Any,
                                                          brain: Any) -> None:
    adapter = host.adapters.get("medical/nifti")
    assert adapter.predict_inputs is not None
    volume, mask = brain(SHAPE, lesion=(5, 8), seed=0)
    image = nifti(tmp_path / "mri" / "images" / "sub-0.nii.gz", volume)
    nifti(tmp_path / "mri" / "masks" / "sub-0.nii.gz", mask)
    options = {"mode": "2.5d", "context": 1, "min_mask_voxels": 9, "stride": 2}
    trained = adapter.load(tmp_path / "mri", options)
    inputs = adapter.predict_inputs([image], options, 3)
    # every slice with tissue (2..9), not only the stride-2 ones training sampled
    assert inputs.items == [f"{image}::{i}" for i in range(2, 10)]
    assert {r.path for r in trained.splits["train"]} <= set(inputs.items)
    stack = inputs.reader(f"{image}::6")
    uint8 = load_volume(str(image), trained.reader.settings)  # type: ignore[attr-defined]
    for channel, z in enumerate((5, 6, 7)):
        np.testing.assert_array_equal(stack[:, :, channel], np.rot90(uint8[:, :, z]))


def test_manifest_runs_read_dicoms_as_dicoms_and_images_as_images(host: PluginHost, tmp_path: Path,
                                                                   dicom: Any) -> None:
    adapter = host.adapters.get("medical/manifest")
    assert adapter.predict_inputs is not None
    films = dicom_tree(tmp_path / "cxr", dicom) / "test"
    dicoms = adapter.predict_inputs([films], {"window": [2048, 4096]}, 3)
    assert len(dicoms.items) == 4
    assert type(dicoms.reader).__name__ == "DicomReader"
    png = tmp_path / "photo.png"
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(png)
    images = adapter.predict_inputs([png], {}, 1)
    assert images.items == [str(png)]
    assert images.reader(str(png)).shape == (8, 8, 1)


def test_medmnist_archive_gives_every_image(host: PluginHost, tmp_path: Path, medmnist_npz: Any) -> None:
    adapter = host.adapters.get("medical/medmnist")
    assert adapter.predict_inputs is not None
    path = medmnist_npz(tmp_path / "pneumoniamnist.npz", {"train": 5, "val": 2, "test": 3})
    trained = adapter.load(path, {"channels": 1})
    inputs = adapter.predict_inputs([tmp_path], {"channels": 1}, 1)
    assert inputs.items == [r.path for split in ("train", "val", "test") for r in trained.splits[split]]
    np.testing.assert_array_equal(inputs.reader(inputs.items[-1]), trained.reader(inputs.items[-1]))
    assert inputs.reader(inputs.items[0]).shape == (28, 28, 1)
    unlabelled = tmp_path / "new" / "batch.npz"
    unlabelled.parent.mkdir()
    np.savez(unlabelled, test_images=np.zeros((4, 28, 28), np.uint8))  # a site's new images, no labels
    assert len(adapter.predict_inputs([unlabelled], {}, 3).items) == 4


@pytest.fixture
def medical_tl(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Any:
    """``tl`` in-process with the installed medical plugin (and no others): returns (code, stdout, stderr)."""
    from tlcore.cli import main
    from tlcore.plugins import reset_host

    monkeypatch.chdir(tmp_path)

    def run(*argv: Any, plugins: str = "medical") -> tuple[int, str, str]:
        monkeypatch.setenv("TLCORE_LOAD_PLUGINS", plugins)
        reset_host(None)
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        finally:
            reset_host(None)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_predict_on_new_dicoms_matches_the_runs_own_test_predictions(medical_tl: Any, tmp_path: Path,
                                                                     dicom: Any) -> None:
    root = dicom_tree(tmp_path / "cxr", dicom)
    run = tmp_path / "run"
    fast = ["--set", "image_size=32", "--set", "batch_size=8", "--set", "progress=false", "--set", "bootstrap=0"]
    code, _, err = medical_tl("train", "--preset", "feature-extraction", "--data", root, "--output", run, *fast)
    assert code == 0, err
    with (run / "predictions.csv").open(newline="") as fh:
        expected = {r["path"]: r for r in csv.DictReader(fh) if r["split"] == "test"}

    code, out, err = medical_tl("predict", run, root / "test")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert sorted(line["image"] for line in lines) == sorted(expected)
    for line in lines:
        got = {p["label"]: p["probability"] for p in line["predictions"]}
        row = expected[line["image"]]
        assert [got[c] for c in ("effusion", "normal")] == pytest.approx(
            [float(row["proba_effusion"]), float(row["proba_normal"])], abs=1e-4)

    # Without the plugin that trained it, predict says so before it falls back to plain images.
    code, _, err = medical_tl("predict", run, root / "test" / "normal" / "normal_p9_0.dcm", plugins="")
    assert "adapter 'medical/dicom', which is not installed" in err
