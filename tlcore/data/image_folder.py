"""The ImageFolder adapter: ``<split>/<class>/<image>`` or ``<class>/<image>``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tlcore.errors import DataError, NoTrainSplitError
from tlcore.images import IMAGE_SUFFIXES
from tlcore.run_dirs import is_run_dir
from tlcore.specs import SPLIT_NAMES, LabeledDataset, Record

SPLIT_ALIASES = SPLIT_NAMES  # folder names: the shared split vocabulary
LAYOUT_HINT = "expected <root>/<split>/<class>/<image> (splits train, val, test) or <root>/<class>/<image>"


def _scan(folder: Path) -> tuple[list[Path], dict[Path, int]]:
    """The images under ``folder``, and the images left out in each hidden (``.``) folder below it.

    Hidden files (``._x.jpg`` resource forks of macOS archives) are left out without a word."""
    kept: list[Path] = []
    hidden: dict[Path, int] = {}
    for p in folder.rglob("*"):
        if p.suffix.lower() not in IMAGE_SUFFIXES or p.name.startswith(".") or not p.is_file():
            continue
        parents = p.relative_to(folder).parts[:-1]
        dot = next((i for i, part in enumerate(parents) if part.startswith(".")), None)
        if dot is None:
            kept.append(p)
        else:
            top = folder.joinpath(*parents[: dot + 1])
            hidden[top] = hidden.get(top, 0) + 1
    return sorted(kept), hidden


def _images(folder: Path) -> list[Path]:
    return _scan(folder)[0]


def _unread_folders(split: str, folder: Path) -> list[dict[str, Any]]:
    """Folders in a split that are not classes (names starting with ``.`` or ``_``) but hold images, and
    tlcore run directories (their plots are not images of a class)."""
    out = []
    for d in sorted(folder.iterdir()):
        if d.is_dir() and not d.name.startswith((".", "_")) and is_run_dir(d):
            why = "it holds a tlcore run (config.yaml, report.json), so it is not read as a class"
            out.append({"split": split, "path": str(d), "images": len(_images(d)), "reason": why})
        elif d.is_dir() and d.name.startswith((".", "_")) and (n := len(_images(d))):
            why = f"folder name starts with {d.name[0]!r}, so it is not read as a class"
            out.append({"split": split, "path": str(d), "images": n, "reason": why})
    return out


def class_folders(folder: Path) -> list[Path]:
    """The sub-folders of ``folder`` that can be classes or splits: not hidden (``.``), not private (``_``),
    and not a tlcore run directory. Plugin adapters that read class folders use the same rule."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")) and not is_run_dir(p))


def _split_dirs(root: Path, aliases: Mapping[str, str]) -> dict[str, Path]:
    known = {**SPLIT_ALIASES, **aliases}
    found: dict[str, Path] = {}
    for d in class_folders(root):
        split = known.get(d.name.lower())
        if split is not None:
            if split in found:
                raise DataError(f"{root}: both {found[split].name}/ and {d.name}/ look like the {split} split")
            found[split] = d
    return found


def detect(root: Path) -> bool:
    return root.is_dir() and (bool(_split_dirs(root, {})) or any(_images(d)[:1] for d in class_folders(root)))


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist", LAYOUT_HINT)
    splits = _split_dirs(root, options.get("split_aliases", {}))
    if not splits:
        if not class_folders(root):
            raise DataError(f"{root} has no class folders", LAYOUT_HINT)
        splits = {"train": root}
    if "train" not in splits:
        found = ", ".join(d.name for d in splits.values())
        raise NoTrainSplitError(f"{root} has {found}/ but no train/ split", LAYOUT_HINT)
    classes = [d.name for d in class_folders(splits["train"])]
    if not classes:
        raise DataError(f"{splits['train']} has no class folders", LAYOUT_HINT)
    index = {c: i for i, c in enumerate(classes)}
    records: dict[str, list[Record]] = {}
    dropped: list[dict[str, Any]] = []
    for split, folder in splits.items():
        records[split] = []
        dropped.extend(_unread_folders(split, folder))
        for class_dir in class_folders(folder):
            if class_dir.name not in index:
                raise DataError(
                    f"class {class_dir.name!r} in {folder.name}/ is not in train/",
                    f"every split must use the train classes: {', '.join(classes)}",
                )
            files, hidden = _scan(class_dir)
            dropped.extend(
                {"split": split, "path": str(d), "images": n, "reason": "hidden folder (name starts with '.')"}
                for d, n in sorted(hidden.items())
            )
            if not files and split == "train":
                raise DataError(f"class folder {class_dir} has no images", "add images or remove the folder")
            records[split].extend(Record(str(f), index[class_dir.name]) for f in files)
        if not records[split]:
            raise DataError(f"split {folder} has no images", LAYOUT_HINT)
    return LabeledDataset(classes=classes, splits=records, root=root, dropped=dropped)
