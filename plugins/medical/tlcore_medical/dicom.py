"""DICOM (pydicom): modality rescale, windowing, MONOCHROME1 inversion, and the patient as the group.

Pixel data goes through the Modality LUT (RescaleSlope/Intercept, e.g. to Hounsfield units) in
float, then through a window: ``window: [center, width]`` from the adapter options (or a preset),
else the file's VOI LUT Sequence (the non-linear display curve many CR/DX exports carry), else its
WindowCenter/WindowWidth (LINEAR, or SIGMOID when VOILUTFunction says so), else the 0.5-99.5
percentiles of the image. MONOCHROME1
(high values dark) is inverted after windowing so that every image shows bone/dense tissue bright.
Only then is it quantised to uint8.

Layouts: ``<split>/<class>/**/*.dcm`` (or ``<class>/**``), or a CSV manifest whose path column
names DICOM files. The header's PatientID becomes ``Record.group`` unless the manifest has a
patient column, so carved splits never share a patient.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tlcore.data.prediction_inputs import expand
from tlcore.errors import DataError
from tlcore.specs import LabeledDataset, PredictionInputs, Record
from tlcore_medical import folders, intensity

NAME = "medical/dicom"
SUFFIXES = (".dcm", ".dicom", ".dic")
LAYOUT = "expected <root>/<split>/<class>/**/*.dcm, <root>/<class>/**/*.dcm, or a CSV manifest of DICOM paths"
GROUP_TAGS = {"patient": "PatientID", "study": "StudyInstanceUID", "series": "SeriesInstanceUID"}
DECODER_HINT = "compressed DICOM needs a decoder: pip install \"tlcore-medical[dicom-codecs]\""


def is_dicom(path: Path) -> bool:
    """A ``.dcm`` file, or a suffix-less file with the ``DICM`` preamble (PACS exports often have no suffix)."""
    if path.suffix.lower() in SUFFIXES:
        return True
    if path.suffix:
        return False
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _first(value: Any) -> float | None:
    """A header number; multi-valued windows (several presets) use the first."""
    try:
        if value is not None and not isinstance(value, str | bytes | int | float):
            value = next(iter(value))
        return None if value is None else float(value)
    except (TypeError, ValueError, IndexError):
        return None


def header_window(ds: Any) -> tuple[float, float] | None:
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        return None
    return center, width


def header_voi(values: np.ndarray, ds: Any) -> np.ndarray | None:
    """The file's own display curve on modality values, in [0, 1]; None when it has none.

    A VOI LUT Sequence (its first view) wins over a window, as in pydicom's ``apply_voi_lut``; a
    window follows VOILUTFunction (LINEAR by default, SIGMOID per PS3.3 C.11.2.1.3.1)."""
    sequence = ds.get("VOILUTSequence")
    if sequence:
        from pydicom.pixels.processing import apply_voi

        bits = int(sequence[0].LUTDescriptor[2])
        mapped = apply_voi(np.rint(values).astype(np.int32), ds)  # LUT entries are indexed by integers
        return np.asarray(mapped, dtype=np.float32) / float(2**bits - 1)
    chosen = header_window(ds)
    if chosen is None:
        return None
    if str(ds.get("VOILUTFunction", "LINEAR")).upper() == "SIGMOID":
        center, width = chosen
        return np.asarray(1.0 / (1.0 + np.exp(-4.0 * (values - center) / width)), dtype=np.float32)
    return intensity.window(values, *chosen)


def dicom_to_uint8(
    ds: Any,
    window: tuple[float, float] | None = None,
    channels: int = 3,
    percentiles: tuple[float, float] = intensity.DEFAULT_PERCENTILES,
) -> np.ndarray:
    """A decoded dataset to ``HxWxchannels`` uint8 (see the module docstring for the steps)."""
    from pydicom.pixels.processing import apply_modality_lut

    pixels = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames > 1:
        pixels = pixels[frames // 2]  # a multi-frame object: its middle frame
    if samples > 1:  # colour (dermoscopy, photographs): pydicom already returns RGB
        bits = int(ds.get("BitsStored", 8) or 8)
        scaled = pixels if bits <= 8 else np.rint(pixels.astype(np.float32) / (2**bits - 1) * 255)
        return intensity.with_channels(np.asarray(scaled, dtype=np.uint8), channels)
    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32)
    unit = intensity.window(values, *window) if window else header_voi(values, ds)
    if unit is None:
        unit = intensity.percentile_window(values, percentiles)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        unit = 1.0 - unit
    return intensity.with_channels(intensity.to_uint8(unit), channels)


@dataclass(frozen=True)
class DicomReader:
    """``reader(path)`` for DICOM files; its repr (part of the feature-cache key) holds the window."""

    window: tuple[float, float] | None = None
    channels: int = 3
    percentiles: tuple[float, float] = intensity.DEFAULT_PERCENTILES

    def __call__(self, path: str) -> np.ndarray:
        import pydicom

        try:
            ds = pydicom.dcmread(path)
            return dicom_to_uint8(ds, self.window, self.channels, self.percentiles)
        except FileNotFoundError:
            raise DataError(f"DICOM file not found: {path}", "check the path or the manifest") from None
        except Exception as exc:  # pydicom raises many types for broken or undecodable files
            text = " ".join(str(exc).split())[:200]
            hint = DECODER_HINT if "decod" in text.lower() or "plugin" in text.lower() else "remove or replace it"
            raise DataError(f"cannot decode DICOM {path}: {type(exc).__name__}: {text}", hint) from None


def reader_from(options: Mapping[str, Any], adapter: str = NAME) -> DicomReader:
    return DicomReader(
        window=intensity.pair_option(options, "window", adapter, "[40, 400]"),
        channels=intensity.channels_option(options, adapter),
        percentiles=intensity.pair_option(options, "percentiles", adapter, "[1, 99]") or intensity.DEFAULT_PERCENTILES,
    )


def header_group(path: str, tag: str) -> str | None:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[tag])
    except Exception:  # an unreadable header: the reader reports the file when it decodes it
        return None
    value = str(ds.get(tag, "") or "").strip()
    return value or None


def groups_from_headers(splits: dict[str, list[Record]], option: str) -> tuple[dict[str, list[Record]], str]:
    """Fill ``Record.group`` from the header (PatientID by default). Returns the records and what was used."""
    if option == "none":
        return splits, "none"
    tag = GROUP_TAGS.get(option)
    if tag is None:
        raise DataError(f"{NAME}: group must be one of {', '.join([*GROUP_TAGS, 'none'])}, got {option!r}")
    out = {
        split: [Record(r.path, r.target, header_group(r.path, tag) or f"file:{r.path}") for r in records]
        for split, records in splits.items()
    }
    values = {r.group for records in out.values() for r in records}
    if len(values) == 1 and sum(len(r) for r in out.values()) > 1:
        # Anonymisation that writes one ID everywhere says nothing about patients.
        return {s: [Record(r.path, r.target) for r in rs] for s, rs in out.items()}, f"{tag} identical in every file"
    return out, tag


def detect(root: Path) -> bool:
    return folders.has_file_among_first(root, is_dicom)


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    reader = reader_from(options)
    group_option = str(options.get("group", "patient"))
    if root.is_file() or options.get("csv"):
        from tlcore_medical import manifest

        ds = manifest.load_manifest(root, options, NAME, reader=reader)
        if group_option != "none" and not ds.provenance.get("group_column"):
            ds.splits, used = groups_from_headers(ds.splits, group_option)
            ds.provenance["group"] = used
        return ds
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist", LAYOUT)
    classes, pairs = folders.labelled_files(root, is_dicom, "DICOM", LAYOUT)
    splits = {split: [Record(str(p), k) for p, k in items] for split, items in pairs.items()}
    splits, used = groups_from_headers(splits, group_option)
    return LabeledDataset(
        classes=classes, splits=splits, reader=reader, root=root, channels=reader.channels,
        provenance={"format": "DICOM", "group": used, "window": list(reader.window) if reader.window else "header"},
    )


def predict_inputs(paths: list[Path], options: Mapping[str, Any], channels: int) -> PredictionInputs:
    """New DICOMs (files, or the DICOMs in folders) windowed with the run's options."""
    return PredictionInputs(expand(paths, is_dicom), reader_from(options))
