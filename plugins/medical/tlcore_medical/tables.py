"""Reading manifests exported from PACS, registries or challenge sites (pandas).

Shared by the manifest, DICOM, NIfTI and multi-label adapters: finding the CSV (or one CSV per
split), recognising columns by their usual names in any spelling (``patient_id``, ``PatientID``,
``Patient ID``), and turning a path cell into a file that is guaranteed to be inside the data root.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tlcore.errors import DataError
from tlcore.specs import SPLIT_NAMES

PATH_COLUMNS = ("path", "filepath", "imagepath", "image", "file", "filename", "imageindex", "imageid", "dicompath",
                "dicom", "volume", "nifti")
LABEL_COLUMNS = ("label", "class", "target", "diagnosis", "dx", "finding", "category", "classname")
# Patient first: it is the strictest grouping (a study or lesion belongs to one patient).
GROUP_COLUMNS = ("patientid", "patient", "subjectid", "subject", "caseid", "case", "lesionid", "studyid",
                 "studyinstanceuid", "accessionnumber", "group")
SPLIT_COLUMNS = ("split", "fold", "subset", "partition", "set")
# An id column without a suffix (HAM10000's image_id) is looked up with these.
ID_SUFFIXES = (".jpg", ".jpeg", ".png", ".dcm", ".nii.gz", ".nii", ".tif", ".tiff", ".bmp")
MASK_COLUMNS = ("mask", "maskpath", "seg", "segmentation", "labelpath", "labelmap")


def normalise(name: str) -> str:
    """Column names compared without case, spaces or punctuation: ``Patient ID`` == ``patient_id``."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def find_manifests(root: Path, options: Mapping[str, Any], adapter: str) -> dict[str | None, Path]:
    """The CSV(s) to read: ``{None: csv}``, or ``{split: csv}`` when there is one CSV per split.

    ``options["csv"]`` may name one file (or a glob pattern matching one) or map splits to files;
    otherwise a CSV ``root``, a folder with exactly one CSV, or a folder whose CSVs are named after
    splits (``train.csv``, ``valid.csv``).
    """
    base = root.parent if root.is_file() else root
    given = options.get("csv")
    if isinstance(given, Mapping):
        out: dict[str | None, Path] = {}
        for split, name in given.items():
            canonical = SPLIT_NAMES.get(str(split).lower())
            if canonical is None:
                raise DataError(f"{adapter}: csv option names split {split!r}", "use train, val and test")
            out[canonical] = _existing(base / str(name), adapter)
        return out
    if given and any(c in str(given) for c in "*?["):  # a pattern, for names that change between releases
        matches = sorted(base.glob(str(given)))
        if len(matches) != 1:
            raise DataError(f"{adapter}: csv pattern {given!r} matches {len(matches)} files in {base}",
                            "name the manifest with --set adapter_options={csv: NAME.csv}")
        return {None: matches[0]}
    if given:
        return {None: _existing(base / str(given), adapter)}
    if root.is_file():
        return {None: root}
    csvs = sorted(p for p in root.glob("*.csv") if not p.name.startswith("."))
    by_split: dict[str | None, Path] = {
        SPLIT_NAMES[p.stem.lower()]: p for p in csvs if p.stem.lower() in SPLIT_NAMES
    }
    if by_split and "train" in by_split and len(by_split) == len(csvs):
        return by_split
    if len(csvs) == 1:
        return {None: csvs[0]}
    raise DataError(
        f"{adapter}: {root} has {'no' if not csvs else len(csvs)} CSV manifests",
        "pass --data FILE.csv or --set adapter_options={csv: NAME.csv}",
    )


def _existing(path: Path, adapter: str) -> Path:
    if not path.is_file():
        raise DataError(f"{adapter}: manifest {path} does not exist", "check the csv option")
    return path


def read_manifest(path: Path, adapter: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{adapter}: cannot parse manifest {path}: {str(exc).splitlines()[0]}") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def filter_rows(df: pd.DataFrame, where: Mapping[str, Any] | None, csv: Path) -> pd.DataFrame:
    """Keep rows whose columns hold the given value(s): ``where: {Frontal/Lateral: Frontal}``."""
    for column, wanted in (where or {}).items():
        if column not in df.columns:
            raise DataError(f"where: {csv.name} has no column {column!r}", f"columns are: {', '.join(df.columns)}")
        values = [str(v) for v in (wanted if isinstance(wanted, list | tuple) else [wanted])]
        df = df[df[column].astype(str).str.strip().isin(values)]
    return df


def pick_column(
    df: pd.DataFrame, chosen: str | None, candidates: Sequence[str], what: str, option: str, required: bool = False
) -> str | None:
    """The column named by the option, else the first column whose normalised name is a candidate."""
    if chosen is not None:
        if chosen not in df.columns:
            raise DataError(f"manifest has no column {chosen!r} ({what})", f"columns are: {', '.join(df.columns)}")
        return chosen
    by_name = {normalise(c): c for c in df.columns}
    for candidate in candidates:
        if candidate in by_name:
            return by_name[candidate]
    if required:
        raise DataError(
            f"manifest has no {what} column (columns: {', '.join(df.columns)})",
            f"name it with --set adapter_options={{{option}: NAME}}",
        )
    return None


def split_of(value: Any, column: str) -> str:
    text = str(value).strip().lower()
    if text not in SPLIT_NAMES:
        raise DataError(f"manifest column {column!r} has split {value!r}", "use train, val (or valid) and test")
    return SPLIT_NAMES[text]


class FileResolver:
    """Turns a path cell into an existing file inside ``root``; a path that leaves ``root`` is an error.

    Tried in order: ``root/cell``; the cell with leading folders dropped (manifests often start with
    the dataset's own folder name); then, for a bare file name or id, a search of ``root`` by name, or
    by stem with ``suffixes`` (HAM10000's ``image_id``, ChestX-ray14's ``images_001/images/...``).
    """

    def __init__(self, root: Path, suffixes: Sequence[str] = ()) -> None:
        self.root = Path(os.path.abspath(root))
        self.suffixes = tuple(suffixes)
        self._by_name: dict[str, list[str]] | None = None

    def inside(self, path: str) -> str:
        full = os.path.normpath(os.path.join(self.root, path))
        if os.path.commonpath([full, self.root]) != str(self.root):
            raise DataError(f"manifest path {path!r} points outside the data root {self.root}",
                            "use paths inside the data root (no '..', no absolute paths elsewhere)")
        return full

    def resolve(self, cell: str) -> str | None:
        text = str(cell).strip().replace("\\", "/")
        full = self.inside(text)
        if os.path.isfile(full):
            return full
        parts = Path(text).parts
        for i in range(1, len(parts) if ".." not in parts and not os.path.isabs(text) else 0):
            candidate = os.path.join(self.root, *parts[i:])
            if os.path.isfile(candidate):
                return candidate
        names = [Path(text).name] + [Path(text).name + s for s in self.suffixes]
        for name in names:
            found = self.index().get(name, [])
            if len(found) > 1:
                raise DataError(f"manifest path {cell!r} matches {len(found)} files, e.g. {found[0]} and {found[1]}",
                                "write the path relative to the data root")
            if found:
                return found[0]
        return None

    def index(self) -> dict[str, list[str]]:
        if self._by_name is None:
            by_name: dict[str, list[str]] = defaultdict(list)
            for folder, dirs, files in os.walk(self.root):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    by_name[name].append(os.path.join(folder, name))
            self._by_name = dict(by_name)
        return self._by_name


def missing_policy(options: Mapping[str, Any], adapter: str) -> str:
    value = str(options.get("missing", "fail"))
    if value not in ("fail", "skip"):
        raise DataError(f"{adapter}: missing must be fail or skip, got {value!r}")
    return value


def report_missing(missing: list[str], policy: str, adapter: str) -> None:
    if missing and policy == "fail":
        raise DataError(
            f"{adapter}: {len(missing)} manifest file(s) not found, e.g. {missing[0]!r}",
            "fix the paths or image_root, or --set adapter_options={missing: skip} to leave them out",
        )


def group_from(path: str, pattern: str | None) -> str | None:
    """A group (patient) taken from a path by a regex's first group, e.g. ``(patient\\d+)``."""
    if not pattern:
        return None
    match = re.search(pattern, path)
    if match is None:
        return None
    return match.group(1) if match.groups() else match.group(0)
