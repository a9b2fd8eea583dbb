"""What ``tl predict`` reads: the run's adapter decides when it knows better than the generic reader.

A run remembers the adapter that loaded its training data (``config.yaml``). When that adapter
gives ``predict_inputs``, new files go through it with the run's adapter options, so a DICOM is
windowed and a NIfTI volume sliced as in training. Otherwise image files (and the image files
inside folders) are decoded with the generic reader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from tlcore.data.dataset import read_for_prediction
from tlcore.data.images import IMAGE_SUFFIXES
from tlcore.errors import DataError
from tlcore.plugins import PluginHost, guarded
from tlcore.specs import PredictionInputs

#: Files the generic reader takes from a folder: images, arrays and multi-band TIFFs.
_GENERIC_SUFFIXES = IMAGE_SUFFIXES | {".npy"}


def expand(paths: list[Path], accept: Callable[[Path], bool]) -> list[str]:
    """Files as given (the user named them), folders as the accepted files under them (sorted, hidden
    folders and files skipped). Adapters' ``predict_inputs`` use it too."""
    items: list[str] = []
    for path in paths:
        if not path.is_dir():
            items.append(str(path))
            continue
        items += sorted(
            str(f) for f in path.rglob("*")
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts) and accept(f)
        )
    return items


def generic_inputs(paths: list[Path], channels: int) -> PredictionInputs:
    items: list[str] = []
    for path in paths:
        found = expand([path], _generic)
        if not found:  # only a folder can come back empty
            raise DataError(f"no image files in {path}", "pass image files, or a folder that holds some")
        items += found
    return PredictionInputs(items, partial(read_for_prediction, channels=channels))


def _generic(path: Path) -> bool:
    return path.suffix.lower() in _GENERIC_SUFFIXES


def prediction_inputs(
    host: PluginHost, adapter: str | None, options: Mapping[str, Any], paths: list[Path], channels: int
) -> tuple[PredictionInputs, str]:
    """The items to predict and their reader, and the name of what chose them (an adapter or ``generic``)."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise DataError(f"image not found: {missing[0]}", "check the path")
    if adapter and adapter in host.adapters.names():
        spec = host.adapters.get(adapter)
        if spec.predict_inputs is not None:
            owner = host.adapters.entry(adapter).plugin
            inputs = guarded(f"adapter {adapter!r} (predict_inputs)", owner, spec.predict_inputs)(
                paths, options, channels
            )
            if not inputs.items:
                raise DataError(f"{adapter}: nothing to predict in {', '.join(map(str, paths))}",
                                "pass the kind of files the run was trained on")
            return inputs, adapter
    return generic_inputs(paths, channels), "generic"
