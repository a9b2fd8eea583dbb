"""PlantVillage-style folders: one class folder per ``Crop___Disease`` (``Tomato___Late_blight``).

Layouts found in the wild, all accepted:

* ``<root>/<Crop___Disease>/<image>`` (the Mendeley/TFDS release, Kaggle "plantdisease");
* ``<root>/<split>/<Crop___Disease>/<image>`` (Kaggle "New Plant Diseases": ``train``/``valid``);
* ``<root>/{color,grayscale,segmented}/<Crop___Disease>/<image>`` (the GitHub release's ``raw/``),
  where option ``image_set`` picks one (default ``color``);
* any of these under wrapper folders (``raw/``, ``Plant_leave_diseases_dataset_without_augmentation/``).

The label is chosen with option ``target``: ``crop_disease`` (one class per folder), ``disease``
(the same disease on different crops is one class, and every healthy leaf is ``healthy``) or ``crop``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlcore.data.image_folder import class_folders
from tlcore.errors import ConfigError, DataError, NoTrainSplitError
from tlcore.images import IMAGE_SUFFIXES
from tlcore.specs import SPLIT_NAMES, LabeledDataset, Record

SEPARATOR = "___"
TARGETS = ("crop_disease", "disease", "crop")
IMAGE_SETS = ("color", "grayscale", "segmented")
HEALTHY = "healthy"
# The Mendeley release adds a leafless background class; TFDS drops it too (not in the original data).
DEFAULT_EXCLUDE = ("Background_without_leaves",)
HINT = (
    "PlantVillage class folders are named Crop___Disease (e.g. Tomato___Late_blight); leave other folders out "
    "with --set 'adapter_options={exclude: [NAME]}', or use --set adapter=image-folder"
)
# "healthy", "Healthy", "healthy_leaf", "Healthy leaves": one spelling, so target=disease merges them.
_HEALTHY = re.compile(r"healthy([ _-]*(leaf|leaves|plant|plants))?", re.IGNORECASE)
_WRAPPER_DEPTH = 4


@dataclass(frozen=True)
class ClassName:
    """A class folder name split into its crop and disease, both tidied."""

    folder: str
    crop: str
    disease: str

    @property
    def healthy(self) -> bool:
        return self.disease == HEALTHY

    def label(self, target: str) -> str:
        if target == "crop":
            return self.crop
        if target == "disease":
            return self.disease
        return f"{self.crop}{SEPARATOR}{self.disease}"


def _tidy(part: str) -> str:
    # "Common_rust_" (GitHub release) and "Common_rust" (Mendeley release) are one disease.
    return part.strip(" _")


def normalise_disease(disease: str) -> str:
    """Tidy a disease name; every spelling of healthy becomes ``healthy``."""
    tidy = _tidy(disease)
    return HEALTHY if _HEALTHY.fullmatch(tidy) else tidy


def split_class(name: str) -> ClassName:
    """``"Tomato___Late_blight"`` -> crop ``Tomato``, disease ``Late_blight``; ``Apple___Healthy`` -> ``healthy``."""
    crop, sep, disease = name.partition(SEPARATOR)
    crop, disease = _tidy(crop), normalise_disease(disease)
    if not sep or not crop or not disease:
        raise DataError(f"class folder {name!r} is not named Crop{SEPARATOR}Disease", HINT)
    return ClassName(name, crop, disease)


def crop_keys(crop: str) -> set[str]:
    """Names a user may type for a crop: ``Corn_(maize)`` -> {corn (maize), corn}; ``Pepper,_bell`` -> {.., pepper}."""
    full = " ".join(crop.replace("_", " ").casefold().split())
    keys = {full, full.replace(" ", "_")}
    for short in (re.sub(r"\s*\(.*?\)", "", full), full.split(",")[0]):
        if short.strip():
            keys.add(short.strip())
    return keys


def _images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _class_container(folder: Path, image_set: str, depth: int = 0) -> Path:
    """The folder whose subfolders are the classes, below image-set and wrapper folders."""
    subs = class_folders(folder)
    sets = {d.name.lower(): d for d in subs if d.name.lower() in IMAGE_SETS}
    if sets:
        if image_set not in sets:
            raise DataError(f"{folder} has no {image_set}/ image set", f"image sets here: {', '.join(sorted(sets))}")
        return _class_container(sets[image_set], image_set, depth + 1)
    if any(SEPARATOR in d.name for d in subs):
        return folder
    if len(subs) == 1 and depth < _WRAPPER_DEPTH and SEPARATOR not in subs[0].name:
        return _class_container(subs[0], image_set, depth + 1)  # raw/, a zip's top folder, ...
    raise DataError(f"{folder}: no Crop{SEPARATOR}Disease class folders found", HINT)


def find_layout(root: Path, image_set: str = "color") -> dict[str, Path]:
    """Split name -> folder holding that split's class folders."""
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist", HINT)
    folder = root
    for depth in range(_WRAPPER_DEPTH + 1):
        subs = class_folders(folder)
        splits: dict[str, Path] = {}
        for d in subs:
            split = SPLIT_NAMES.get(d.name.lower())
            if split is None:
                continue
            if split in splits:
                raise DataError(f"{folder}: both {splits[split].name}/ and {d.name}/ look like the {split} split")
            splits[split] = d
        if splits:
            if "train" not in splits:
                found = ", ".join(d.name for d in splits.values())
                raise NoTrainSplitError(f"{folder} has {found}/ but no train/", HINT)
            return {split: _class_container(d, image_set) for split, d in splits.items()}
        is_wrapper = len(subs) == 1 and SEPARATOR not in subs[0].name and subs[0].name.lower() not in IMAGE_SETS
        if not is_wrapper or depth == _WRAPPER_DEPTH:
            break
        folder = subs[0]
    return {"train": _class_container(folder, image_set)}


def _option_list(options: Mapping[str, Any], key: str, default: Sequence[str] = ()) -> list[str]:
    value = options.get(key)
    if value is None:
        return list(default)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(c, str) and c.strip() for c in items):
        raise ConfigError(
            f"agriculture/plantvillage: {key} must be a name or a list of names, got {value!r}",
            f"e.g. --set 'adapter_options={{{key}: [Tomato, Potato]}}'",
        )
    return list(items)


def _choice(options: Mapping[str, Any], key: str, allowed: Sequence[str]) -> str:
    value = str(options.get(key, allowed[0])).lower()
    if value not in allowed:
        raise ConfigError(f"agriculture/plantvillage: {key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def detect(root: Path) -> bool:
    """True when ``root`` (or its color/ image set) has class folders and every one is ``Crop___Disease``."""
    try:
        layout = find_layout(root)
        excluded = {e.casefold() for e in DEFAULT_EXCLUDE}
        classes = [d for folder in layout.values() for d in class_folders(folder) if d.name.casefold() not in excluded]
    except (OSError, DataError):
        return False
    return bool(classes) and all(SEPARATOR in d.name for d in classes)


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    """Walk the layout; label each image by ``target``; keep the crops in ``crops``."""
    target = _choice(options, "target", TARGETS)
    image_set = _choice(options, "image_set", IMAGE_SETS)
    crops = _option_list(options, "crops") + _option_list(options, "crop")  # `crop` kept for old configs
    excluded = {e.casefold() for e in _option_list(options, "exclude", DEFAULT_EXCLUDE)}
    layout = find_layout(root, image_set)

    folders: dict[str, list[tuple[ClassName, Path]]] = {}
    for split, container in layout.items():
        folders[split] = [
            (split_class(d.name), d) for d in class_folders(container) if d.name.casefold() not in excluded
        ]
    all_names = [name for pairs in folders.values() for name, _ in pairs]
    if crops:
        wanted = {key for c in crops for key in crop_keys(c)}
        for split in folders:
            folders[split] = [(n, d) for n, d in folders[split] if crop_keys(n.crop) & wanted]
        if not folders["train"]:
            available = sorted({n.crop for n in all_names})
            raise DataError(f"{root}: no classes of crop {', '.join(crops)}", f"crops here: {', '.join(available)}")

    classes = sorted({name.label(target) for name, _ in folders["train"]})
    if len(classes) < 2:
        raise DataError(
            f"{root}: only one {target.replace('_', ' + ')} class ({', '.join(classes)}) after filtering",
            "a classifier needs two classes: widen crops, or choose another target",
        )
    index = {c: i for i, c in enumerate(classes)}
    splits: dict[str, list[Record]] = {}
    for split, pairs in folders.items():
        records: list[Record] = []
        for name, folder in pairs:
            label = name.label(target)
            if label not in index:
                raise DataError(
                    f"class {folder.name!r} in {layout[split].name}/ has no images in train",
                    f"every split must use the train classes: {', '.join(classes)}",
                )
            records.extend(Record(str(f), index[label]) for f in _images(folder))
        if records or split == "train":
            splits[split] = records  # a val/test split with none of the kept crops is carved out of train instead
    if not splits["train"]:
        raise DataError(f"{layout['train']}: the class folders have no images", HINT)

    kept = [name for pairs in folders.values() for name, _ in pairs]
    provenance: dict[str, Any] = {
        "adapter": "agriculture/plantvillage",
        "target": target,
        "class_parts": _class_parts(kept, classes, target),
        "crops": sorted({n.crop for n in kept}),
        "layout": {split: str(folder) for split, folder in layout.items()},
    }
    if crops:
        provenance["crop_filter"] = crops
    return LabeledDataset(classes=classes, splits=splits, root=root, provenance=provenance)


def _class_parts(names: list[ClassName], classes: list[str], target: str) -> dict[str, dict[str, Any]]:
    """What each class stands for: its crop(s), disease(s) and whether it is healthy."""
    parts: dict[str, dict[str, Any]] = {}
    for label in classes:
        members = [n for n in names if n.label(target) == label]
        crops = sorted({n.crop for n in members})
        diseases = sorted({n.disease for n in members})
        parts[label] = {
            "crop": crops[0] if len(crops) == 1 else crops,
            "disease": diseases[0] if len(diseases) == 1 else diseases,
            "healthy": all(n.healthy for n in members),
        }
    return parts
