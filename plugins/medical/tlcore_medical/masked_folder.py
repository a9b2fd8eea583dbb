"""``medical/masked-folder``: class folders where segmentation masks sit next to the images.

Datasets released for segmentation and classification at once (BUSI breast ultrasound:
``benign/benign (1).png`` with ``benign (1)_mask.png`` and ``benign (1)_mask_1.png``) would
otherwise feed every mask to the classifier as one more image of its class, in train and test.
This adapter is the core image-folder adapter with those masks left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tlcore.data import image_folder
from tlcore.specs import LabeledDataset

NAME = "medical/masked-folder"
MASK_NAME = re.compile(r"^(?P<image>.+?)[_ -](mask|seg|segmentation|label)(_\d+)?$", re.IGNORECASE)


def image_of_mask(path: Path) -> Path | None:
    """The image a mask file belongs to (same folder, the name without ``_mask``/``_mask_1``), if present."""
    match = MASK_NAME.match(path.stem)
    if match is None:
        return None
    for candidate in path.parent.glob(f"{glob_escape(match['image'])}.*"):
        if candidate != path and candidate.is_file():
            return candidate
    return None


def glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


def detect(root: Path) -> bool:
    if not image_folder.detect(root):
        return False
    for checked, path in enumerate(root.rglob("*")):
        if checked > 2000:
            return False
        if path.is_file() and image_of_mask(path) is not None:
            return True
    return False


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    ds = image_folder.load(root, options)
    left_out = 0
    for split, records in ds.splits.items():
        kept = [r for r in records if image_of_mask(Path(r.path)) is None]
        left_out += len(records) - len(kept)
        ds.splits[split] = kept
    ds.provenance["masks_left_out"] = left_out
    return ds
