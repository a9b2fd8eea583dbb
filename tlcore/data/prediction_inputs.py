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
from tlcore.errors import DataError
from tlcore.images import IMAGE_SUFFIXES
from tlcore.plugins import PluginHost, guarded
from tlcore.specs import MEMBER_SEPARATOR, PredictionInputs, source_file

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
            str(f)
            for f in path.rglob("*")
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
    """The items to predict and their reader, and the name of what chose them (an adapter or ``generic``).

    A ``FILE::MEMBER`` address (a volume's slice, as the run's predictions.csv names it) is predicted as
    given, read by the adapter that reads ``FILE``; they come after the items of the plain paths."""
    members = [p for p in paths if not p.exists() and _is_member(p)]
    missing = [p for p in paths if not p.exists() and p not in members]
    if missing:
        raise DataError(f"image not found: {missing[0]}", "check the path")
    if adapter and adapter in host.adapters.names():
        spec = host.adapters.get(adapter)
        if spec.predict_inputs is not None:
            owner = host.adapters.entry(adapter).plugin
            predict = guarded(f"adapter {adapter!r} (predict_inputs)", owner, spec.predict_inputs)
            files = [p for p in paths if p not in members]
            sources = list(dict.fromkeys(Path(source_file(str(m))) for m in members))
            inputs = predict([*files, *[s for s in sources if s not in files]], options, channels)
            if not inputs.items:
                raise DataError(f"{adapter}: nothing to predict in {', '.join(map(str, paths))}",
                                "pass the kind of files the run was trained on")  # fmt: skip
            # A source file named only through its members gives those members, not all of its items.
            only_members = {str(s) for s in sources if s not in files}
            items = [i for i in inputs.items if source_file(i) not in only_members]
            return PredictionInputs([*items, *map(str, members)], inputs.reader), adapter
    if members:
        if not adapter:
            why = "the run records none"
        elif adapter not in host.adapters.names():
            why = f"{adapter!r} is not installed"
        else:
            why = f"{adapter!r} does not read new files"
        raise DataError(f"{members[0]}: a FILE::MEMBER address is read by the run's adapter, and {why}",
                        "pass the file itself")  # fmt: skip
    return generic_inputs(paths, channels), "generic"


def _is_member(path: Path) -> bool:
    """``FILE::MEMBER`` of an existing ``FILE``."""
    return MEMBER_SEPARATOR in str(path) and Path(source_file(str(path))).is_file()
