"""Default dataset adapters: ImageFolder layouts and CSV manifests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tlcore import hookimpl
from tlcore.specs import DatasetAdapter, LabeledDataset


def _image_folder_load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    from tlcore.data import image_folder

    return image_folder.load(root, options)


def _image_folder_detect(root: Path) -> bool:
    from tlcore.data import image_folder

    return image_folder.detect(root)


def _csv_load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    from tlcore.data import csv_manifest  # pandas loads only when a manifest is read

    return csv_manifest.load(root, options)


def _csv_detect(root: Path) -> bool:
    return (root.is_file() and root.suffix.lower() == ".csv") or (root.is_dir() and len(list(root.glob("*.csv"))) == 1)


@hookimpl
def register_dataset_adapters(register: Callable[[DatasetAdapter], None]) -> None:
    register(
        DatasetAdapter(
            name="image-folder",
            description="<root>/<split>/<class>/<image> (splits train/val/test) or <root>/<class>/<image>",
            load=_image_folder_load,
            detect=_image_folder_detect,
            priority=0,
        )
    )
    register(
        DatasetAdapter(
            name="csv-manifest",
            description="a CSV with path and label columns (optional split and group/patient columns)",
            load=_csv_load,
            detect=_csv_detect,
            priority=-10,
        )
    )
