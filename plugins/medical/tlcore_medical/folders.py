"""Class folders of files that are not plain images (DICOM, NIfTI): ``<split>/<class>/...`` or ``<class>/...``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tlcore.data.image_folder import class_folders
from tlcore.errors import DataError, NoTrainSplitError
from tlcore.specs import SPLIT_NAMES


def subdirs(folder: Path) -> list[Path]:
    return class_folders(folder)  # the core's rule: no hidden, private or run folders


def files_under(folder: Path, accept: Callable[[Path], bool]) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts) and accept(p)
    )


def has_file_among_first(root: Path, accept: Callable[[Path], bool], limit: int = 300) -> bool:
    """Whether one of the first ``limit`` files under ``root`` (sorted walk, hidden folders skipped) is accepted.

    Adapter ``detect()`` runs on every auto-detected ``--data``: a bounded look keeps it cheap on large trees.
    """
    if not root.is_dir():
        return False
    seen = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if accept(Path(folder) / name):
                return True
            seen += 1
            if seen > limit:
                return False
    return False


def split_folders(root: Path) -> dict[str, Path]:
    """``{split: folder}`` for split-named subfolders; ``{"train": root}`` when there are none."""
    found: dict[str, Path] = {}
    for d in subdirs(root):
        split = SPLIT_NAMES.get(d.name.lower())
        if split is not None:
            if split in found:
                raise DataError(f"{root}: both {found[split].name}/ and {d.name}/ look like the {split} split")
            found[split] = d
    return found or {"train": root}


def labelled_files(
    root: Path, accept: Callable[[Path], bool], what: str, layout: str
) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    """Classes (the train split's folders) and ``(file, class index)`` pairs per split."""
    splits = split_folders(root)
    if "train" not in splits:
        found = ", ".join(d.name for d in splits.values())
        raise NoTrainSplitError(f"{root} has {found}/ but no train/ split", layout)
    classes = [d.name for d in subdirs(splits["train"]) if files_under(d, accept)]
    if len(classes) < 2:
        raise DataError(f"{splits['train']} needs at least two class folders with {what} files", layout)
    index = {c: i for i, c in enumerate(classes)}
    out: dict[str, list[tuple[Path, int]]] = {}
    for split, folder in splits.items():
        pairs: list[tuple[Path, int]] = []
        for class_dir in subdirs(folder):
            files = files_under(class_dir, accept)
            if not files:
                continue
            if class_dir.name not in index:
                raise DataError(f"class {class_dir.name!r} in {folder.name}/ is not in train/",
                                f"every split must use the train classes: {', '.join(classes)}")
            pairs.extend((f, index[class_dir.name]) for f in files)
        if pairs:
            out[split] = pairs
    return classes, out
