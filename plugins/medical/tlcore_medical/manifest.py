"""``medical/manifest``: a CSV with image path, label and patient (or study/lesion) columns.

The patient column becomes ``Record.group``: when the manifest has no split column, the engine
carves val/test out of train by patient (tlcore.data.splits), so no patient is in two splits.
A split column (or one CSV per split: ``train.csv``, ``valid.csv``, ``test.csv``) is used as given.
Paths are relative to the CSV's folder (or ``image_root``) and may not leave it. DICOM paths are
read with the DICOM reader (windowing as in ``medical/dicom``), other files as images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tlcore.data.prediction_inputs import expand
from tlcore.errors import DataError
from tlcore.specs import LabeledDataset, PredictionInputs, Record, read_rgb
from tlcore_medical import intensity, tables

NAME = "medical/manifest"


@dataclass(frozen=True)
class ImageReader:
    """Ordinary image files as grey (1 channel); 3 channels use the core's ``read_rgb``."""

    channels: int = 1

    def __call__(self, path: str) -> np.ndarray:
        from tlcore.images import read_image

        return read_image(path, channels=self.channels)


def image_reader(channels: int) -> Callable[[str], np.ndarray]:
    # read_rgb itself, so the engine screens unreadable files before training.
    return read_rgb if channels == 3 else ImageReader(channels)


@dataclass
class Columns:
    path: str
    label: str | None
    group: str | None
    split: str | None


def columns_of(df: pd.DataFrame, options: Mapping[str, Any], need_label: bool = True) -> Columns:
    path = tables.pick_column(df, options.get("path_column"), tables.PATH_COLUMNS, "path", "path_column", True)
    label = tables.pick_column(
        df, options.get("label_column"), tables.LABEL_COLUMNS, "label", "label_column", need_label
    )
    group = tables.pick_column(
        df, options.get("group_column") or options.get("patient_column"), tables.GROUP_COLUMNS,
        "patient/study", "group_column",
    )
    split = tables.pick_column(df, options.get("split_column"), tables.SPLIT_COLUMNS, "split", "split_column")
    assert path is not None
    return Columns(path, label, group, split)


def resolver_for(root: Path, options: Mapping[str, Any], adapter: str) -> tables.FileResolver:
    """Paths are relative to ``image_root`` (itself relative to the CSV's folder), default the CSV's folder."""
    first = next(iter(tables.find_manifests(root, options, adapter).values()))
    image_root = Path(options.get("image_root") or first.parent)
    if not image_root.is_absolute():
        image_root = first.parent / image_root
    return tables.FileResolver(image_root, [str(s) for s in options.get("suffixes") or tables.ID_SUFFIXES])


def manifest_rows(
    root: Path, options: Mapping[str, Any], adapter: str, need_label: bool = True
) -> tuple[list[tuple[str, str, dict[str, Any]]], Columns, dict[str, Any]]:
    """Every usable row as ``(split, file, row)``, the columns used, and provenance.

    Rows without a path (or label) are dropped and counted; missing files fail, or are skipped and
    counted with ``missing: skip``.
    """
    manifests = tables.find_manifests(root, options, adapter)
    policy = tables.missing_policy(options, adapter)
    resolver = resolver_for(root, options, adapter)
    rows: list[tuple[str, str, dict[str, Any]]] = []
    missing: list[str] = []
    dropped = 0
    cols: Columns | None = None
    for fixed_split, csv in manifests.items():
        df = tables.filter_rows(tables.read_manifest(csv, adapter), options.get("where"), csv)
        cols = columns_of(df, options, need_label)
        keep = df[cols.path].notna() & (df[cols.label].notna() if cols.label else True)
        dropped += int((~keep).sum())
        for row in df[keep].to_dict("records"):
            split = fixed_split or (tables.split_of(row[cols.split], cols.split) if cols.split else "train")
            found = resolver.resolve(str(row[cols.path]))
            if found is None:
                missing.append(str(row[cols.path]))
                continue
            rows.append((split, found, {str(k): v for k, v in row.items()}))
    tables.report_missing(missing, policy, adapter)
    if not rows:
        raise DataError(f"{adapter}: no usable rows in {', '.join(str(p) for p in manifests.values())}")
    assert cols is not None
    provenance = {
        "manifest": [str(p) for p in manifests.values()],
        "path_column": cols.path,
        "label_column": cols.label,
        "group_column": cols.group,
        "split_column": cols.split if len(manifests) == 1 and None in manifests else "one CSV per split",
        "rows_without_path_or_label": dropped,
        "missing_files_skipped": len(missing),
    }
    return rows, cols, provenance


def row_group(row: Mapping[str, Any], file: str, cols: Columns, pattern: str | None) -> str | None:
    if cols.group is not None:
        value = row.get(cols.group)
        # A row without a patient ID is its own group, so the other rows still split by patient.
        return str(value).strip() if isinstance(value, str) and value.strip() else f"file:{file}"
    return tables.group_from(file, pattern)


def load_manifest(
    root: Path, options: Mapping[str, Any], adapter: str, reader: Callable[[str], np.ndarray] | None = None
) -> LabeledDataset:
    rows, cols, provenance = manifest_rows(root, options, adapter)
    assert cols.label is not None
    labels = [str(row[cols.label]).strip() for _, _, row in rows]
    classes = [str(c) for c in options.get("classes") or sorted(set(labels))]
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(f"{adapter}: labels not in classes: {', '.join(unknown[:5])}",
                        "fix the labels or the classes option")
    if len(classes) < 2:
        raise DataError(f"{adapter}: the manifest has a single label {classes[0]!r}", "a classifier needs two classes")
    pattern = options.get("group_pattern")
    splits: dict[str, list[Record]] = {}
    for (split, file, row), label in zip(rows, labels, strict=True):
        splits.setdefault(split, []).append(Record(file, index[label], row_group(row, file, cols, pattern)))
    if "train" not in splits:
        raise DataError(f"{adapter}: the manifest has no train rows (splits: {', '.join(splits)})")
    if reader is None:
        channels = intensity.channels_option(options, adapter)
        from tlcore_medical import dicom

        if all(dicom.is_dicom(Path(r.path)) for rs in splits.values() for r in rs):
            reader = dicom.reader_from(options, adapter)
        else:
            reader = image_reader(channels)
    channels = getattr(reader, "channels", 3)
    if pattern and not cols.group:
        provenance["group_pattern"] = pattern
    return LabeledDataset(classes=classes, splits=splits, reader=reader, root=root, channels=channels,
                          provenance=provenance)


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    return load_manifest(root, options, NAME)


def _has_columns(csv: Path, *groups: tuple[str, ...]) -> bool:
    try:
        names = {tables.normalise(c) for c in pd.read_csv(csv, nrows=0).columns}
    except Exception:  # not a CSV we can read: not ours
        return False
    return all(names & set(group) for group in groups)


def detect(root: Path) -> bool:
    """A CSV (or a folder with one) that has path, label and patient/study/lesion columns."""
    try:
        manifests = tables.find_manifests(root, {}, NAME)
    except DataError:
        return False
    return all(
        p.suffix.lower() == ".csv"
        and _has_columns(p, tables.PATH_COLUMNS, tables.LABEL_COLUMNS, tables.GROUP_COLUMNS)
        for p in manifests.values()
    )


def predict_inputs(paths: list[Path], options: Mapping[str, Any], channels: int) -> PredictionInputs:
    """New files as a manifest's were read: all DICOM through the DICOM reader (the run's window), else images."""
    from tlcore.images import IMAGE_SUFFIXES
    from tlcore_medical import dicom

    items = expand(paths, lambda p: dicom.is_dicom(p) or p.suffix.lower() in IMAGE_SUFFIXES)
    if items and all(dicom.is_dicom(Path(item)) for item in items):
        return PredictionInputs(items, dicom.reader_from(options, NAME))
    return PredictionInputs(items, image_reader(channels))
