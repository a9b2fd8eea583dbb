"""``medical/medmnist``: the official MedMNIST ``.npz`` files (2-D sets, 28 to 224 pixels).

A file holds ``train_images``, ``train_labels``, ``val_...`` and ``test_...``: images ``(N, H, W)``
(grey) or ``(N, H, W, 3)``, labels ``(N, 1)`` (a class index) or ``(N, L)`` (0/1 per finding, as in
ChestMNIST: a multi-label task). Records address one image as ``FILE::SPLIT:INDEX``; the arrays
are unpacked once into a memory-mapped cache. No ``medmnist`` package is needed.

Class names: the ``classes`` option, else a ``label_names``/``classes`` array in the file, else the
official names for the sets in :data:`LABEL_NAMES` (recognised by file name, e.g.
``dermamnist_224.npz``), else ``0``, ``1``, ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tlcore.data.prediction_inputs import expand
from tlcore.errors import DataError
from tlcore.specs import MEMBER_SEPARATOR, LabeledDataset, PredictionInputs, Record
from tlcore_medical import arrays, intensity

NAME = "medical/medmnist"
SPLITS = ("train", "val", "test")
# From the medmnist package's INFO dict (medmnist/info.py, v3.0.2).
LABEL_NAMES: dict[str, list[str]] = {
    "pneumoniamnist": ["normal", "pneumonia"],
    "breastmnist": ["malignant", "normal, benign"],
    "dermamnist": [
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma", "benign keratosis-like lesions",
        "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions",
    ],
    "chestmnist": [
        "atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia", "pneumothorax",
        "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia",
    ],
}


def set_name(path: Path) -> str:
    """``dermamnist_224.npz`` -> ``dermamnist``."""
    return re.sub(r"_\d+$", "", path.stem.lower())


def _npz(path: str) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}", "download the .npz again") from None


def split_images(path: str, split: str) -> np.ndarray:
    """``{split}_images`` of a MedMNIST file, memory-mapped from the cache."""

    def build() -> np.ndarray:
        with _npz(path) as data:
            return np.asarray(data[f"{split}_images"])

    return arrays.cached_array({"kind": "medmnist", "split": split, **arrays.file_key(path)}, build)


@dataclass(frozen=True)
class MedmnistReader:
    """``reader("FILE::SPLIT:INDEX")`` -> ``HxWxchannels`` uint8."""

    channels: int = 3

    def __call__(self, path: str) -> np.ndarray:
        file, _, member = path.rpartition(MEMBER_SEPARATOR)
        split, _, index = member.partition(":")
        image = np.asarray(split_images(file, split)[int(index)])
        if image.dtype != np.uint8:  # the official files are uint8; be tolerant of float exports
            image = intensity.to_uint8(intensity.percentile_window(image.astype(np.float32), (0, 100)))
        return intensity.with_channels(image, self.channels)


def find_file(root: Path, options: Mapping[str, Any]) -> Path:
    if root.is_file():
        return root
    if options.get("file"):
        path = root / str(options["file"])
        if not path.is_file():
            raise DataError(f"{NAME}: {path} does not exist", "check the file option")
        return path
    files = sorted(p for p in root.glob("*.npz") if _is_medmnist(p))
    if "size" in options:  # 28-pixel files have no size suffix: dermamnist.npz, dermamnist_64.npz, ...
        files = [p for p in files if (re.search(r"_(\d+)$", p.stem) or [None, "28"])[1] == str(options["size"])]
    if len(files) != 1:
        names = ", ".join(p.name for p in files) or "none"
        raise DataError(f"{NAME}: {root} holds {len(files)} MedMNIST files ({names})",
                        "pick one with --data FILE.npz or --set adapter_options={file: NAME.npz}")
    return files[0]


def _is_medmnist(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as data:
            return "train_images" in data.files and "train_labels" in data.files
    except Exception:  # not an npz, or a broken one: not ours
        return False


def detect(root: Path) -> bool:
    if root.is_file():
        return root.suffix.lower() == ".npz" and _is_medmnist(root)
    return root.is_dir() and any(_is_medmnist(p) for p in sorted(root.glob("*.npz"))[:5])


def _class_names(data: Any, path: Path, options: Mapping[str, Any]) -> list[str]:
    if options.get("classes"):
        names = [str(c) for c in options["classes"]]
    else:
        key = next((k for k in ("label_names", "classes") if k in data.files), None)
        if key is not None:
            names = [str(c) for c in np.asarray(data[key]).ravel()]
        else:
            names = LABEL_NAMES.get(set_name(path), [])
    return names


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    path = find_file(root, options)
    channels = intensity.channels_option(options, NAME)
    with _npz(str(path)) as data:
        present = [s for s in SPLITS if f"{s}_images" in data.files and f"{s}_labels" in data.files]
        labels = {s: np.asarray(data[f"{s}_labels"]) for s in present}
        shapes = {s: data[f"{s}_images"].shape for s in present}
        names = _class_names(data, path, options)
    if "train" not in present:
        raise DataError(f"{NAME}: {path} has no train_images/train_labels", "is it a MedMNIST file?")
    width = labels["train"].reshape(len(labels["train"]), -1).shape[1]
    multilabel = width > 1
    n_classes = width if multilabel else int(max(int(v.max()) for v in labels.values() if v.size) + 1)
    classes = names or [str(i) for i in range(n_classes)]
    if len(classes) < n_classes or (multilabel and len(classes) != n_classes):
        raise DataError(f"{NAME}: {len(classes)} class names for {n_classes} label columns/values in {path.name}",
                        "fix the classes option")
    splits: dict[str, list[Record]] = {}
    for split in present:
        y = labels[split].reshape(len(labels[split]), -1)
        if len(y) != shapes[split][0]:
            raise DataError(f"{NAME}: {split} has {shapes[split][0]} images but {len(y)} labels")
        member = f"{path}{MEMBER_SEPARATOR}{split}:"
        if multilabel:
            splits[split] = [Record(f"{member}{i}", tuple(float(v) for v in row)) for i, row in enumerate(y)]
        else:
            splits[split] = [Record(f"{member}{i}", int(v)) for i, v in enumerate(y[:, 0])]
    side = shapes["train"][1]
    return LabeledDataset(
        classes=classes, splits=splits, task="multilabel" if multilabel else "classification",
        reader=MedmnistReader(channels), root=path.parent, channels=channels,
        provenance={"format": "MedMNIST npz", "file": path.name, "image_size": side,
                    "source_channels": 1 if len(shapes["train"]) == 3 else int(shapes["train"][3])},
    )


def predict_inputs(paths: list[Path], options: Mapping[str, Any], channels: int) -> PredictionInputs:
    """Every image in each ``.npz`` given (its ``train/val/test_images`` arrays; labels are not needed), as
    ``FILE::SPLIT:INDEX``."""
    items: list[str] = []
    for file in expand(paths, lambda p: p.suffix.lower() == ".npz"):
        with _npz(file) as data:
            present = [s for s in SPLITS if f"{s}_images" in data.files]
        # through the array cache the reader uses, so each array is decompressed once
        counts = {split: len(split_images(file, split)) for split in present}
        if not counts:
            raise DataError(f"{NAME}: {file} has no train_images, val_images or test_images array")
        items += [f"{file}{MEMBER_SEPARATOR}{split}:{i}" for split, n in counts.items() for i in range(n)]
    return PredictionInputs(items, MedmnistReader(channels))
