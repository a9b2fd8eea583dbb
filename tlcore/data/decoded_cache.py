"""Decode once: a memory-mapped cache of resized uint8 images.

Fine-tuning decodes every training and validation image once per epoch. A 2000-pixel chest
radiograph costs tens of milliseconds to decode and shrink, more than the network's step on a small
GPU batch, and a DICOM more still. The cache pays that once: each image is decoded by the
dataset's own reader, its short side shrunk (INTER_AREA, never enlarged) to ``short_side`` pixels,
and its bytes appended to one flat file read back through ``np.memmap`` (grey images stored
as RGB by their reader keep one channel on disk, a third of the bytes). Epochs then slice pages
the operating system keeps in its file cache, so memory does not grow with the data set.

Entries are keyed by the reader's identity, the short side and every image's bytes (SHA-256), so an
edited image or a reader with other settings (a DICOM window) builds a new entry. Only uint8 output
is cached: float bands are already arrays on disk, and readers without a stable identity (closures,
lambdas) are decoded as before.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tlcore.data.dataset import as_model_input
from tlcore.data.digests import content_key
from tlcore.images import read_image
from tlcore.runtime import console, progress
from tlcore.specs import Record, read_rgb

FORMAT_VERSION = 2
PIXELS = "pixels.u8"
INDEX = "index.json"
#: keep this much disk free after the cache is written
DISK_MARGIN = 1 << 30


def reader_identity(reader: Callable[[str], np.ndarray]) -> str | None:
    """A string that names what ``reader`` returns for a path, or None when there is none to trust.

    Module-level functions are named by module and qualname; ``functools.partial`` adds its
    arguments; objects whose repr carries no memory address (dataclasses) are named by that repr;
    a ``cache_key`` attribute overrides all of these.
    """
    explicit = getattr(reader, "cache_key", None)
    if isinstance(explicit, str):
        return explicit
    if isinstance(reader, functools.partial):
        inner = reader_identity(reader.func)
        return None if inner is None else f"{inner}{reader.args!r}{sorted(reader.keywords.items())!r}"
    qualname = getattr(reader, "__qualname__", None)
    if isinstance(qualname, str):
        if "<locals>" in qualname or "<lambda>" in qualname:
            return None  # a closure's captured settings are invisible
        return f"{getattr(reader, '__module__', '')}.{qualname}"
    text = repr(reader)
    return None if " at 0x" in text else f"{type(reader).__module__}.{text}"


def shrink(image: np.ndarray, short_side: int) -> np.ndarray:
    """Shrink so the short side is ``short_side`` (area interpolation); smaller images are kept."""
    h, w = image.shape[:2]
    if min(h, w) <= short_side:
        return image
    # cv2 sizes are (width, height)
    size = (round(w * short_side / h), short_side) if h <= w else (short_side, round(h * short_side / w))
    out = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return out[:, :, None] if out.ndim == 2 else out


@dataclass
class DecodedReader:
    """A reader over a built cache entry: ``path -> HxWxC uint8`` from the memory-mapped file.

    Picklable for DataLoader workers: each process opens its own memory map.
    """

    folder: Path
    rows: dict[str, int] = field(repr=False)
    offsets: list[int] = field(repr=False)
    shapes: list[tuple[int, int, int, int]] = field(repr=False)  # height, width, channels stored, returned
    fallback: Callable[[str], np.ndarray] = field(repr=False)
    _pixels: np.memmap | None = field(default=None, repr=False)

    def __call__(self, path: str) -> np.ndarray:
        row = self.rows.get(path)
        if row is None:  # not part of this entry (another split): decode as usual
            return self.fallback(path)
        if self._pixels is None:
            self._pixels = np.memmap(self.folder / PIXELS, dtype=np.uint8, mode="r")
        h, w, c, out = self.shapes[row]
        start = self.offsets[row]
        # a copy: augmentations write into their input, and the map is read-only
        image = np.array(self._pixels[start : start + h * w * c]).reshape(h, w, c)
        return np.repeat(image, out, axis=2) if c != out else image

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pixels": None}

    @property
    def nbytes(self) -> int:
        if not self.shapes:
            return 0
        h, w, c, _ = self.shapes[-1]
        return self.offsets[-1] + h * w * c


def _grey_as_one_channel(image: np.ndarray) -> np.ndarray:
    if (
        image.shape[2] == 3
        and np.array_equal(image[:, :, 0], image[:, :, 1])
        and np.array_equal(image[:, :, 0], image[:, :, 2])
    ):
        return image[:, :, :1]
    return image


def _decode(reader: Callable[[str], np.ndarray], path: str, short_side: int) -> tuple[np.ndarray, int]:
    """The array to store and the channel count the reader returns."""
    # The default reader may decode a JPEG at a reduced scale that still covers the short side.
    image = as_model_input(read_image(path, 3, min_side=short_side) if reader is read_rgb else reader(path))
    if image.dtype != np.uint8:
        return image, image.shape[2]
    return _grey_as_one_channel(shrink(image, short_side)), image.shape[2]


def _in_order(
    work: Callable[[str], tuple[np.ndarray, int]], paths: Sequence[str], threads: int
) -> Iterator[tuple[np.ndarray, int]]:
    """``map(work, paths)`` on ``threads`` threads, in order, with a bounded number of images in flight.

    Threads, not worker processes: decoding and resizing release the GIL, and a forked process that
    inherits OpenCV's thread pool can deadlock.
    """
    if threads <= 1:
        yield from map(work, paths)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tlcore-decode") as pool:
        pending: collections.deque[Future[tuple[np.ndarray, int]]] = collections.deque()
        for path in paths:
            pending.append(pool.submit(work, path))
            if len(pending) >= 4 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _open(folder: Path, fallback: Callable[[str], np.ndarray]) -> DecodedReader | None:
    try:
        index = json.loads((folder / INDEX).read_text())
        if index.get("version") != FORMAT_VERSION or not (folder / PIXELS).is_file():
            return None
        shapes = [(int(h), int(w), int(c), int(out)) for h, w, c, out in index["shapes"]]
        rows = {path: i for i, path in enumerate(index["paths"])}
        reader = DecodedReader(folder, rows, [int(o) for o in index["offsets"]], shapes, fallback)
        if (folder / PIXELS).stat().st_size != reader.nbytes:
            return None  # truncated
        return reader
    except (OSError, ValueError, KeyError, TypeError):
        return None


def decoded_reader(
    records: Sequence[Record],
    reader: Callable[[str], np.ndarray],
    root: Path,
    short_side: int,
    threads: int = 1,
    show_progress: bool = True,
    label: str = "decoding",
) -> DecodedReader | None:
    """The cache entry for ``records`` (built on first use), or None when it cannot be used.

    None means: the reader has no stable identity, returns float data, or the disk lacks room;
    the caller then decodes every epoch as before.
    """
    identity = reader_identity(reader)
    if identity is None or not records:
        return None
    paths = list(dict.fromkeys(r.path for r in records))
    key = hashlib.sha256(json.dumps([FORMAT_VERSION, identity, short_side, content_key(records)]).encode()).hexdigest()[
        :24
    ]
    folder = root / key
    if folder.exists():
        found = _open(folder, reader)
        if found is not None:
            return found
        shutil.rmtree(folder, ignore_errors=True)  # damaged: rebuild

    first = as_model_input(reader(paths[0]))
    if first.dtype != np.uint8:
        return None
    estimate = shrink(first, short_side).nbytes * len(paths)
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if free < estimate * 1.2 + DISK_MARGIN:
        console.print(
            f"[yellow]decoded-image cache skipped: it needs about {estimate / 2**30:.1f} GiB and {root} "
            f"has {free / 2**30:.1f} GiB free (set decode_cache_dir, or decode_cache=false to silence this)"
        )
        return None

    tmp = root / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    offsets: list[int] = []
    shapes: list[list[int]] = []
    offset = 0
    mixed = False
    start = time.perf_counter()
    decoded = _in_order(functools.partial(_decode, reader, short_side=short_side), paths, threads)
    try:
        with open(tmp / PIXELS, "wb") as out, progress(show_progress) as bar:
            task = bar.add_task(label, total=len(paths), info="")
            for array, channels in decoded:
                if array.dtype != np.uint8:
                    mixed = True  # float images among uint8 ones: leave them to the reader
                    break
                out.write(np.ascontiguousarray(array).tobytes())
                offsets.append(offset)
                shapes.append([*array.shape, int(channels)])
                offset += array.nbytes
                bar.advance(task)
            out.flush()
            os.fsync(out.fileno())
        if mixed:
            shutil.rmtree(tmp, ignore_errors=True)
            return None
        index = {
            "version": FORMAT_VERSION,
            "reader": identity,
            "short_side": short_side,
            "paths": paths,
            "offsets": offsets,
            "shapes": shapes,
            "seconds": time.perf_counter() - start,
        }
        (tmp / INDEX).write_text(json.dumps(index))
        try:
            os.replace(tmp, folder)  # atomic: a reader sees no entry or a whole one
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished the same entry first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _open(folder, reader)
