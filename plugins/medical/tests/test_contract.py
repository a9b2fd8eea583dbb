"""tlcore-medical passes tlcore's plugin contract checks (tlcore.testing.check_plugin), every adapter on a sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

import tlcore_medical
from tlcore.testing import check_plugin


def test_medical_passes_the_plugin_contract(tmp_path: Path, dicom: Any, nifti: Any, brain: Any,
                                            medmnist_npz: Any, brain_mat: Any) -> None:
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        dicom(tmp_path / "dicom" / label / "1.dcm", rng.integers(0, 4096, (8, 8)).astype(np.uint16), patient=label)
        volume, _ = brain((12, 12, 8), seed=len(label))
        nifti(tmp_path / "nifti" / label / f"{label}.nii.gz", volume)
        brain_mat(tmp_path / "mat" / f"{label}.mat", rng.integers(0, 900, (8, 8)), label=1 + len(label), patient=label)
        folder = tmp_path / "masked" / label
        folder.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / "x (1).png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "x (1)_mask.png")
    manifest = tmp_path / "manifest"
    manifest.mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(manifest / f"{i}.png")
    pd.DataFrame({"path": [f"{i}.png" for i in range(4)], "label": ["x", "y"] * 2,
                  "patient_id": ["p1", "p1", "p2", "p2"]}).to_csv(manifest / "m.csv", index=False)
    pd.DataFrame({"path": [f"{i}.png" for i in range(4)], "Edema": ["1", "0", "-1", ""],
                  "Effusion": ["0", "1", "1", "0"]}).to_csv(tmp_path / "chexpert.csv", index=False)
    (manifest / "chexpert.csv").write_bytes((tmp_path / "chexpert.csv").read_bytes())
    check_plugin(
        tlcore_medical,
        name="medical",
        workdir=tmp_path,
        adapter_samples={
            "medical/dicom": tmp_path / "dicom",
            "medical/nifti": tmp_path / "nifti",
            "medical/medmnist": medmnist_npz(tmp_path / "pneumoniamnist.npz", {"train": 4, "test": 2}),
            "medical/manifest": manifest / "m.csv",
            "medical/multilabel": manifest / "chexpert.csv",
            "medical/masked-folder": tmp_path / "masked",
            "medical/brain-tumor-mat": tmp_path / "mat",
        },
    )
