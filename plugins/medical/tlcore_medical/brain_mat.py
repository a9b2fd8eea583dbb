"""``medical/brain-tumor-mat``: Cheng's figshare brain tumour set as published (MATLAB v7.3 files, read with h5py
from the ``mat`` extra: ``pip install "tlcore-medical[mat]"``).

Each ``N.mat`` holds a struct ``cjdata``: ``image`` (a 512x512 int16 T1 contrast-enhanced slice),
``label`` (1 meningioma, 2 glioma, 3 pituitary), ``PID`` (the patient id as character codes),
``tumorBorder`` and ``tumorMask``. 3064 slices come from 233 patients, about 13 per patient, so
``PID`` becomes ``Record.group``: carved splits keep every patient's slices together (a random
split by slice would let the model see the test patients' other slices in training).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tlcore.data.prediction_inputs import expand
from tlcore.errors import DataError, MissingExtraError
from tlcore.extras import require
from tlcore.specs import LabeledDataset, PredictionInputs, Record
from tlcore_medical import folders, intensity

NAME = "medical/brain-tumor-mat"
LABELS = {1: "meningioma", 2: "glioma", 3: "pituitary"}
CLASSES = sorted(LABELS.values())  # the order of class folders in the common image-folder exports
#: How a MATLAB v7.3 file begins: its text header, before the HDF5 data at byte 512.
V73_HEADER = b"MATLAB 7.3 MAT-file"


def _h5py() -> Any:
    return require("h5py", "mat", f"the {NAME} adapter", distribution="tlcore-medical")


def _struct(path: str) -> Any:
    h5py = _h5py()
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"cannot read {path} as a MATLAB v7.3 file: {exc}", "remove or replace it") from None
    if "cjdata" not in handle:
        handle.close()
        raise DataError(f"{path} has no cjdata struct", "is it a file of the figshare brain tumour set?")
    return handle


def is_case(path: Path) -> bool:
    """A ``.mat`` file with a ``cjdata`` struct (``cvind.mat``, the fold index, is not one)."""
    if path.suffix.lower() != ".mat":
        return False
    try:
        _h5py()
    except MissingExtraError:  # no look inside without h5py: a v7.3 file is claimed, and loading it names the extra
        try:
            with path.open("rb") as fh:
                return fh.read(len(V73_HEADER)) == V73_HEADER
        except OSError:
            return False
    try:
        with _struct(str(path)):
            return True
    except DataError:
        return False


@dataclass(frozen=True)
class BrainMatReader:
    """``reader(path)``: the slice, percentile-clipped in float, as ``HxWxchannels`` uint8."""

    channels: int = 3
    percentiles: tuple[float, float] = intensity.DEFAULT_PERCENTILES

    def __call__(self, path: str) -> np.ndarray:
        with _struct(path) as handle:
            # MATLAB stores column-major: the transpose is the image as MATLAB shows it.
            image = np.asarray(handle["cjdata/image"], dtype=np.float32).T
        unit = intensity.percentile_window(image, self.percentiles)
        return intensity.with_channels(intensity.to_uint8(unit), self.channels)


def case_info(path: Path) -> tuple[int, str]:
    """The label code and the patient id of one file."""
    with _struct(str(path)) as handle:
        label = int(np.asarray(handle["cjdata/label"]).ravel()[0])
        codes = np.asarray(handle["cjdata/PID"]).ravel()
    patient = "".join(chr(int(c)) for c in codes if int(c) > 0).strip()
    return label, patient


def detect(root: Path) -> bool:
    if not root.is_dir():
        return False
    candidates = sorted(root.rglob("*.mat"))[:3]
    return any(is_case(p) for p in candidates)


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist", "unzip the figshare archives into one folder")
    files = folders.files_under(root, lambda p: p.suffix.lower() == ".mat" and p.name.lower() != "cvind.mat")
    records: list[Record] = []
    for path in files:
        label, patient = case_info(path)
        if label not in LABELS:
            raise DataError(f"{path}: label {label} is not 1, 2 or 3")
        records.append(Record(str(path), CLASSES.index(LABELS[label]), patient or f"file:{path}"))
    if not records:
        raise DataError(f"{root} has no .mat files with a cjdata struct")
    channels = intensity.channels_option(options, NAME)
    percentiles = intensity.pair_option(options, "percentiles", NAME, "[1, 99]") or intensity.DEFAULT_PERCENTILES
    return LabeledDataset(
        classes=list(CLASSES), splits={"train": records}, reader=BrainMatReader(channels, percentiles), root=root,
        channels=channels,
        provenance={"format": "figshare brain tumour .mat (v7.3)", "patients": len({r.group for r in records})},
    )


def predict_inputs(paths: list[Path], options: Mapping[str, Any], channels: int) -> PredictionInputs:
    """New ``.mat`` cases, clipped with the run's percentiles."""
    percentiles = intensity.pair_option(options, "percentiles", NAME, "[1, 99]") or intensity.DEFAULT_PERCENTILES
    files = expand(paths, lambda p: p.suffix.lower() == ".mat" and p.name.lower() != "cvind.mat")
    return PredictionInputs(files, BrainMatReader(channels, percentiles))
