"""The CSV-manifest adapter: one row per image with path and label columns (pandas)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from tlcore.errors import DataError
from tlcore.specs import SPLIT_NAMES, LabeledDataset, Record

PATH_COLUMNS = ("path", "filepath", "file_path", "image", "image_path", "filename", "file")
LABEL_COLUMNS = ("label", "class", "target", "diagnosis", "category")
GROUP_COLUMNS = ("group", "patient_id", "patient", "subject", "study_id", "field", "field_id")


def _manifest(root: Path, options: Mapping[str, Any]) -> Path:
    if "csv" in options:
        path = Path(options["csv"])
        return path if path.is_absolute() else root / path
    if root.is_file():
        return root
    csvs = sorted(root.glob("*.csv"))
    if len(csvs) == 1:
        return csvs[0]
    raise DataError(
        f"{root}: {'no' if not csvs else 'several'} CSV manifests found",
        "pass --data FILE.csv or --set adapter_options={csv: NAME.csv}",
    )


def _pick(df: pd.DataFrame, option: str | None, candidates: tuple[str, ...], what: str, required: bool) -> str | None:
    if option is not None:
        if option not in df.columns:
            raise DataError(f"manifest has no column {option!r} ({what})", f"columns are: {', '.join(df.columns)}")
        return option
    lower = {c.lower(): c for c in df.columns}
    for c in candidates:
        if c in lower:
            return lower[c]
    if required:
        raise DataError(
            f"manifest has no {what} column (looked for {', '.join(candidates)})",
            f"name it with --set adapter_options={{{what}_column: NAME}}; columns are: {', '.join(df.columns)}",
        )
    return None


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    manifest = _manifest(root, options)
    try:
        # Cells as written: pandas would turn a label column 0/1 with a gap into "0.0"/"1.0".
        df = pd.read_csv(manifest, dtype=str)
    except FileNotFoundError:
        raise DataError(f"manifest {manifest} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse manifest {manifest}: {str(exc).splitlines()[0]}") from None
    path_col = _pick(df, options.get("path_column"), PATH_COLUMNS, "path", True)
    label_col = _pick(df, options.get("label_column"), LABEL_COLUMNS, "label", True)
    group_col = _pick(df, options.get("group_column"), GROUP_COLUMNS, "group", False)
    split_col = _pick(df, options.get("split_column"), ("split", "fold", "subset"), "split", False)
    assert path_col is not None and label_col is not None
    image_root = Path(options.get("image_root", manifest.parent)).resolve()
    df, dropped = _without_blank_cells(df.reset_index(drop=True), path_col, label_col)
    if df.empty:
        raise DataError(f"manifest {manifest} has no rows with both {path_col!r} and {label_col!r}")
    raw_labels = df[label_col].copy()
    df[label_col] = raw_labels.str.strip()
    classes = [str(c) for c in options.get("classes") or sorted(df[label_col].unique())]
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(df[label_col]) - set(index))
    if unknown:
        raise DataError(
            f"manifest labels not in classes: {', '.join(unknown[:5])}", "fix the labels or the classes option"
        )
    splits: dict[str, list[Record]] = {}
    for row in df.to_dict("records"):
        raw_path = str(row[path_col])
        path = (image_root / raw_path).resolve()
        if not path.is_relative_to(image_root):
            raise DataError(f"manifest path {raw_path!r} points outside {image_root}", "use paths inside the data root")
        split = "train"
        if split_col is not None:
            value = str(row[split_col]).strip().lower()
            if value not in SPLIT_NAMES:
                raise DataError(f"manifest split value {value!r} is not train/val/test")
            split = SPLIT_NAMES[value]
        group = str(row[group_col]) if group_col is not None else None
        splits.setdefault(split, []).append(Record(str(path), index[row[label_col]], group))
    return LabeledDataset(
        classes=classes,
        splits=splits,
        root=image_root,
        provenance={"manifest": str(manifest)},
        dropped=dropped,
        labels_trimmed=_trimmed(raw_labels, df[label_col]),
    )


def _without_blank_cells(df: pd.DataFrame, path_col: str, label_col: str) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The rows with a path and a label, and one ``dropped`` entry for each other row (its CSV line)."""
    blank_path = df[path_col].isna() | (df[path_col].str.strip() == "")
    blank_label = df[label_col].isna() | (df[label_col].str.strip() == "")
    dropped = [
        {
            "line": int(i) + 2,  # the header is line 1
            "path": None if blank_path[i] else str(df.at[i, path_col]),
            "reason": "no path" if blank_path[i] else "no label",
        }
        for i in df.index[blank_path | blank_label]
    ]
    return df[~(blank_path | blank_label)].copy(), dropped


def _trimmed(raw: pd.Series, used: pd.Series) -> list[dict[str, Any]]:
    """Labels written with surrounding whitespace, and how many rows each: ``"red "`` is used as ``"red"``."""
    changed = raw[raw != used]
    return [
        {"label": str(label), "used_as": str(label).strip(), "rows": int(n)}
        for label, n in sorted(changed.value_counts().items())
    ]
