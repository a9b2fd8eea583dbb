"""Default dataset adapters: ImageFolder layouts and CSV manifests."""

from __future__ import annotations

from collections.abc import Callable

from tlcore import hookimpl
from tlcore.data import csv_manifest, image_folder
from tlcore.specs import DatasetAdapter


@hookimpl
def register_dataset_adapters(register: Callable[[DatasetAdapter], None]) -> None:
    register(
        DatasetAdapter(
            name="image-folder",
            description="<root>/<split>/<class>/<image> (splits train/val/test) or <root>/<class>/<image>",
            load=image_folder.load,
            detect=image_folder.detect,
            priority=0,
        )
    )
    register(
        DatasetAdapter(
            name="csv-manifest",
            description="a CSV with path and label columns (optional split and group/patient columns)",
            load=csv_manifest.load,
            detect=csv_manifest.detect,
            priority=-10,
        )
    )
