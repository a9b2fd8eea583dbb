"""medical/brain-tumor-mat: the figshare brain tumour .mat files, labels and patients read with h5py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tlcore.config import RunConfig
from tlcore.data.prepare import prepare_data
from tlcore.errors import DataError, MissingExtraError
from tlcore.plugins import PluginHost
from tlcore.specs import DatasetAdapter


@pytest.fixture
def adapter(host: PluginHost) -> DatasetAdapter:
    return host.adapters.get("medical/brain-tumor-mat")


def test_labels_patients_and_pixels(adapter: DatasetAdapter, host: PluginHost, tmp_path: Path,
                                    brain_mat: Any) -> None:
    rng = np.random.default_rng(0)
    ramp = np.tile(np.arange(0, 1200, 20, dtype=np.int16), (40, 1))  # 40 x 60, 12-bit-ish values
    for i in range(12):
        brain_mat(tmp_path / "brainTumorDataPublic_1-766" / f"{i + 1}.mat",
                  ramp + rng.integers(0, 5, ramp.shape).astype(np.int16), label=1 + i % 3, patient=f"{100 + i // 2}")
    (tmp_path / "cvind.mat").write_bytes(b"not a case")  # the fold index file sits next to the cases
    assert adapter.detect is not None and adapter.detect(tmp_path)
    ds = adapter.load(tmp_path, {})
    assert ds.classes == ["glioma", "meningioma", "pituitary"]
    first = ds.splits["train"][0]
    assert Path(first.path).name == "1.mat" and ds.classes[int(first.target)] == "meningioma"
    assert first.group == "100" and ds.provenance["patients"] == 6
    image = ds.reader(first.path)
    assert image.shape == (40, 60, 3) and image.dtype == np.uint8
    assert image[:, 0, 0].max() < 10 and image[:, -1, 0].min() > 245  # the ramp runs left to right
    prepared = prepare_data(host, str(tmp_path), RunConfig(val_fraction=0.2), check_leakage=True)
    patients = {s: {r.group for r in rs} for s, rs in prepared.dataset.splits.items()}
    assert not patients["train"] & patients["test"] and not patients["train"] & patients["val"]


def test_a_mat_file_without_cjdata_is_an_error(adapter: DatasetAdapter, tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "1.mat", "w") as handle:
        handle["x"] = np.zeros(3)
    assert adapter.detect is not None and not adapter.detect(tmp_path)
    with pytest.raises(DataError, match="no cjdata struct"):
        adapter.load(tmp_path, {})


def test_without_h5py_a_mat_folder_is_one_line_naming_the_mat_extra(
    host: PluginHost, tmp_path: Path, brain_mat: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        brain_mat(tmp_path / "cases" / f"{i + 1}.mat", np.zeros((8, 8), dtype=np.int16), label=1 + i, patient="7")
    import h5py

    (tmp_path / "plain").mkdir()
    with h5py.File(tmp_path / "plain" / "1.mat", "w") as handle:
        handle["x"] = np.zeros(3)  # HDF5 without MATLAB's header: not a v7.3 case
    monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` now raises ImportError, as if not installed
    adapter = host.adapters.get("medical/brain-tumor-mat")
    assert adapter.detect is not None
    assert adapter.detect(tmp_path / "cases")  # claimed by MATLAB's v7.3 header, so loading says what to install
    assert not adapter.detect(tmp_path / "plain")
    with pytest.raises(MissingExtraError) as caught:
        prepare_data(host, str(tmp_path / "cases"), RunConfig(val_fraction=0.2))
    assert str(caught.value) == (
        "the medical/brain-tumor-mat adapter needs the 'mat' extra (h5py is not installed): "
        'pip install "tlcore-medical[mat]"'
    )
