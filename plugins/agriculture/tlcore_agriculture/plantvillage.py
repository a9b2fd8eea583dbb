"""PlantVillage-style folders: one class folder per ``Crop___Disease`` (``Tomato___Late_blight``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tlcore.data import image_folder
from tlcore.errors import ConfigError, DataError
from tlcore.specs import LabeledDataset

SEPARATOR = "___"
HINT = ("PlantVillage class folders are named Crop___Disease (e.g. Tomato___Late_blight); "
        "for other folders use --set adapter=image-folder")


def split_class(name: str) -> tuple[str, str]:
    """``"Tomato___Late_blight"`` -> ``("Tomato", "Late_blight")``."""
    crop, sep, disease = name.partition(SEPARATOR)
    if not sep or not crop or not disease:
        raise DataError(f"class folder {name!r} is not named Crop{SEPARATOR}Disease", HINT)
    return crop, disease


def _norm(crop: str) -> str:
    return crop.strip().casefold().replace(" ", "_")


def _subdirs(folder: Path) -> list[Path]:
    # Same rule as the core image-folder adapter: hidden and _private folders are not classes.
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _class_dirs(root: Path) -> list[Path]:
    top = _subdirs(root)
    splits = [d for d in top if d.name.lower() in image_folder.SPLIT_ALIASES]
    if not splits:
        return top
    return [c for split in splits for c in _subdirs(split)]


def detect(root: Path) -> bool:
    """True when ``root`` has class folders and every one is named ``Crop___Disease``."""
    try:
        if not root.is_dir():
            return False
        classes = _class_dirs(root)
    except OSError:
        return False
    return bool(classes) and all(SEPARATOR in d.name for d in classes)


def _crop_option(value: Any) -> list[str]:
    crops = [value] if isinstance(value, str) else value
    if not isinstance(crops, list | tuple) or not crops or not all(isinstance(c, str) and c.strip() for c in crops):
        raise ConfigError(f"agriculture/plantvillage: crop must be a crop name or a list of them, got {value!r}",
                          "e.g. --set adapter_options={crop: Tomato}")
    return list(crops)


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    """Load with the core image-folder loader; record crop and disease per class; option ``crop`` filters."""
    dataset = image_folder.load(root, {k: v for k, v in options.items() if k != "crop"})
    parts = {c: split_class(c) for c in dataset.classes}

    keep = list(dataset.classes)
    crop_filter: list[str] | None = None
    if options.get("crop") is not None:
        crop_filter = _crop_option(options["crop"])
        wanted = {_norm(c) for c in crop_filter}
        keep = [c for c in dataset.classes if _norm(parts[c][0]) in wanted]
        if not keep:
            available = sorted({crop for crop, _ in parts.values()})
            raise DataError(f"{root}: no classes of crop {', '.join(crop_filter)}",
                            f"crops here: {', '.join(available)}")

    splits = dataset.splits
    if len(keep) < len(dataset.classes):
        new_index = {dataset.classes.index(c): i for i, c in enumerate(keep)}
        splits = {}
        for split, records in dataset.splits.items():
            kept = [dataclasses.replace(r, target=new_index[r.target]) for r in records
                    if isinstance(r.target, int) and r.target in new_index]
            if kept or split == "train":
                splits[split] = kept  # a val/test split with none of these crops is dropped

    class_parts: dict[str, dict[str, Any]] = {
        c: {"crop": parts[c][0], "disease": parts[c][1], "healthy": parts[c][1].lower() == "healthy"} for c in keep
    }
    provenance = {
        **dataset.provenance,
        "adapter": "agriculture/plantvillage",
        "class_parts": class_parts,
        "crops": sorted({parts[c][0] for c in keep}),
    }
    if crop_filter is not None:
        provenance["crop_filter"] = crop_filter
    return dataclasses.replace(dataset, classes=keep, splits=splits, provenance=provenance)
