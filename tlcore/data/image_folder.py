"""The ImageFolder adapter: ``<split>/<class>/<image>`` or ``<class>/<image>``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tlcore.data.images import IMAGE_SUFFIXES
from tlcore.errors import DataError, NoTrainSplitError
from tlcore.specs import SPLIT_NAMES, LabeledDataset, Record

SPLIT_ALIASES = SPLIT_NAMES  # folder names: the shared split vocabulary
LAYOUT_HINT = "expected <root>/<split>/<class>/<image> (splits train, val, test) or <root>/<class>/<image>"


def _images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _split_dirs(root: Path, aliases: Mapping[str, str]) -> dict[str, Path]:
    known = {**SPLIT_ALIASES, **aliases}
    found: dict[str, Path] = {}
    for d in _subdirs(root):
        split = known.get(d.name.lower())
        if split is not None:
            if split in found:
                raise DataError(f"{root}: both {found[split].name}/ and {d.name}/ look like the {split} split")
            found[split] = d
    return found


def detect(root: Path) -> bool:
    return root.is_dir() and (bool(_split_dirs(root, {})) or any(_images(d)[:1] for d in _subdirs(root)))


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist", LAYOUT_HINT)
    splits = _split_dirs(root, options.get("split_aliases", {}))
    if not splits:
        if not _subdirs(root):
            raise DataError(f"{root} has no class folders", LAYOUT_HINT)
        splits = {"train": root}
    if "train" not in splits:
        found = ", ".join(d.name for d in splits.values())
        raise NoTrainSplitError(f"{root} has {found}/ but no train/ split", LAYOUT_HINT)
    classes = [d.name for d in _subdirs(splits["train"])]
    if not classes:
        raise DataError(f"{splits['train']} has no class folders", LAYOUT_HINT)
    index = {c: i for i, c in enumerate(classes)}
    records: dict[str, list[Record]] = {}
    for split, folder in splits.items():
        records[split] = []
        for class_dir in _subdirs(folder):
            if class_dir.name not in index:
                raise DataError(
                    f"class {class_dir.name!r} in {folder.name}/ is not in train/",
                    f"every split must use the train classes: {', '.join(classes)}",
                )
            files = _images(class_dir)
            if not files and split == "train":
                raise DataError(f"class folder {class_dir} has no images", "add images or remove the folder")
            records[split].extend(Record(str(f), index[class_dir.name]) for f in files)
        if not records[split]:
            raise DataError(f"split {folder} has no images", LAYOUT_HINT)
    return LabeledDataset(classes=classes, splits=records, root=root)
