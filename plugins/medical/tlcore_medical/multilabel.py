"""``medical/multilabel``: several findings per image, as in ChestX-ray14 and CheXpert manifests.

Two manifest styles (``style: auto`` tells them apart by the columns):

- ChestX-ray14: ``Image Index``, ``Finding Labels`` (pipe-separated, ``No Finding`` = none) and
  ``Patient ID``. The official patient-wise ``train_val_list.txt`` / ``test_list.txt`` next to the
  CSV give the splits when there is no split column.
- CheXpert: one column per finding holding 1 (positive), 0 (negative), -1 (uncertain) or blank
  (not mentioned). ``uncertain: zeros|ones|ignore`` (one policy, or one per finding) and
  ``blank: zeros|ignore`` say what those become; ``ignore`` is NaN, a missing label the loss skips.
  The patient comes from the path (``patient00001``) unless a column names it.

Targets are tuples of 0.0/1.0 (NaN = missing), one per class, and the task is ``multilabel``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tlcore.errors import ConfigError, DataError
from tlcore.specs import LabeledDataset, Record
from tlcore_medical import intensity, tables
from tlcore_medical.manifest import Columns, image_reader, manifest_rows, row_group

NAME = "medical/multilabel"
FINDINGS_COLUMN = "findinglabels"
NO_FINDING = "No Finding"
SPLIT_LISTS = {"train": ("train_val_list.txt", "train_list.txt"), "val": ("val_list.txt",), "test": ("test_list.txt",)}
CHEXPERT_PATIENT = r"(patient\d+)"
# Columns that are never findings even when their values look like 0/1.
NOT_FINDINGS = {"age", "patientage", "followup", "sex", "gender", "view", "viewposition", "frontallateral", "appa"}
POLICIES = {"zeros": 0.0, "ones": 1.0, "ignore": math.nan}


def _style(columns: list[str], options: Mapping[str, Any]) -> str:
    style = str(options.get("style", "auto")).lower()
    if style not in ("auto", "chestxray14", "chexpert"):
        raise ConfigError(f"{NAME}: style must be auto, chestxray14 or chexpert, got {style!r}")
    if style == "auto":
        return "chestxray14" if FINDINGS_COLUMN in {tables.normalise(c) for c in columns} else "chexpert"
    return style


def _is_finding_column(values: pd.Series) -> bool:
    present = values.dropna()
    if present.empty:
        return False
    numbers = pd.to_numeric(present, errors="coerce")
    return bool(numbers.notna().all() and numbers.isin([-1, 0, 1]).all())


def finding_columns(df: pd.DataFrame, cols: Columns, options: Mapping[str, Any]) -> list[str]:
    chosen = options.get("label_columns")
    if chosen:
        unknown = [c for c in chosen if c not in df.columns]
        if unknown:
            raise DataError(f"{NAME}: no column {unknown[0]!r}", f"columns are: {', '.join(df.columns)}")
        return [str(c) for c in chosen]
    skip = {cols.path, cols.group, cols.split}
    found = [c for c in df.columns
             if c not in skip and tables.normalise(c) not in NOT_FINDINGS and _is_finding_column(df[c])]
    if not found:
        raise DataError(f"{NAME}: no finding columns (values 1/0/-1/blank) in the manifest",
                        "name them with --set adapter_options={label_columns: [A, B]}")
    return found


def _policy(value: Any, what: str) -> float:
    if str(value) not in POLICIES:
        raise ConfigError(f"{NAME}: {what} must be zeros, ones or ignore, got {value!r}")
    return POLICIES[str(value)]


def chexpert_value(cell: Any, uncertain: float, blank: float) -> float:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)) or str(cell).strip() == "":
        return blank
    number = float(cell)
    return uncertain if number == -1 else float(number == 1)


def _uncertain_policies(options: Mapping[str, Any], findings: list[str]) -> list[float]:
    option = options.get("uncertain", "ignore")
    if isinstance(option, Mapping):
        default = option.get("default", "ignore")
        return [_policy(option.get(f, default), f"uncertain.{f}") for f in findings]
    return [_policy(option, "uncertain")] * len(findings)


def _official_split(root: Path, options: Mapping[str, Any]) -> dict[str, str]:
    """Image name -> split from ChestX-ray14's list files (or ``split_lists: {train: a.txt, test: b.txt}``)."""
    base = root.parent if root.is_file() else root
    given = options.get("split_lists")
    lists = {s: base / str(f) for s, f in given.items()} if isinstance(given, Mapping) else {
        split: next((base / n for n in names if (base / n).is_file()), base / names[0])
        for split, names in SPLIT_LISTS.items()
    }
    lists = {s: p for s, p in lists.items() if p.is_file()}
    if "test" not in lists and not given:
        return {}
    membership: dict[str, str] = {}
    for split, path in lists.items():
        for line in path.read_text(encoding="utf-8").split():
            membership[Path(line.strip()).name] = split
    return membership


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    rows, cols, provenance = manifest_rows(root, options, NAME, need_label=False)
    columns = list(rows[0][2])
    style = _style(columns, options)
    pattern = options.get("group_pattern") or (CHEXPERT_PATIENT if style == "chexpert" and not cols.group else None)
    frame = pd.DataFrame([row for _, _, row in rows], columns=columns)
    targets: list[tuple[float, ...]]
    if style == "chestxray14":
        findings_col = next(c for c in columns if tables.normalise(c) == FINDINGS_COLUMN)
        per_row = [{f.strip() for f in str(v).split("|") if f.strip()} - {NO_FINDING} for v in frame[findings_col]]
        classes = [str(c) for c in options.get("classes") or sorted(set().union(*per_row))]
        targets = [tuple(float(c in found) for c in classes) for found in per_row]
    else:
        classes = finding_columns(frame, cols, options)
        uncertain = _uncertain_policies(options, classes)
        blank = _policy(options.get("blank", "zeros"), "blank")
        targets = [tuple(chexpert_value(row[c], u, blank) for c, u in zip(classes, uncertain, strict=True))
                   for _, _, row in rows]
    if not classes:
        raise DataError(f"{NAME}: the manifest has no findings to learn")
    official = _official_split(root, options) if style == "chestxray14" and not cols.split else {}
    splits: dict[str, list[Record]] = {}
    outside_lists = 0
    for (split, file, row), target in zip(rows, targets, strict=True):
        if official:
            listed = official.get(Path(str(row[cols.path])).name)
            if listed is None:
                outside_lists += 1
                continue
            split = listed
        splits.setdefault(split, []).append(Record(file, target, row_group(row, file, cols, pattern)))
    if "train" not in splits:
        raise DataError(f"{NAME}: no train rows (splits: {', '.join(splits) or 'none'})")
    channels = intensity.channels_option(options, NAME)
    provenance.update(style=style, findings=classes, group_pattern=pattern)
    if official:
        provenance.update(split_lists="official list files", rows_outside_lists=outside_lists)
    if style == "chexpert":
        provenance.update(uncertain=options.get("uncertain", "ignore"), blank=options.get("blank", "zeros"))
    return LabeledDataset(classes=classes, splits=splits, task="multilabel", reader=image_reader(channels),
                          root=root, channels=channels, provenance=provenance)


def detect(root: Path) -> bool:
    """A manifest with a ``Finding Labels`` column, or with several 1/0/-1/blank finding columns."""
    try:
        manifests = tables.find_manifests(root, {}, NAME)
        csv = next(iter(manifests.values()))
        if csv.suffix.lower() != ".csv":
            return False
        df = tables.read_manifest(csv, NAME).head(200)
    except (DataError, OSError):
        return False
    names = {tables.normalise(c) for c in df.columns}
    if not names & set(tables.PATH_COLUMNS):
        return False
    if FINDINGS_COLUMN in names:
        return True
    findings = [c for c in df.columns if tables.normalise(c) not in NOT_FINDINGS and _is_finding_column(df[c])
                and tables.normalise(c) not in tables.GROUP_COLUMNS + tables.SPLIT_COLUMNS]
    # One column per finding (1/0/-1/blank), not a single class-label column.
    return len(findings) >= 2
