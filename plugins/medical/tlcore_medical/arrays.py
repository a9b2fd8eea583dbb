"""Decoded arrays cached on disk as ``.npy`` and memory-mapped, so a slice is a cheap random read.

A compressed NIfTI volume or MedMNIST archive would otherwise be decompressed whole for every
slice or image a shuffled training loop asks for. The cache key covers the source file's path,
size and modification time plus the decoding parameters, so an edited file is decoded again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np


def _cache_dir() -> Path:
    from tlcore.models.weights import cache_root

    return cache_root() / "medical-arrays"


def file_key(path: str | Path) -> dict[str, Any]:
    stat = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def cached_array(key: Mapping[str, Any], build: Callable[[], np.ndarray]) -> np.ndarray:
    """The array for ``key``: memory-mapped from the cache, built (and written atomically) on a miss."""
    digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True, default=str).encode()).hexdigest()[:32]
    path = _cache_dir() / f"{digest}.npy"
    if not path.exists():
        array = np.ascontiguousarray(build())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, array)
        os.replace(tmp, path)  # several DataLoader workers may race; each writes the same bytes
    return _open(str(path))


@functools.lru_cache(maxsize=128)
def _open(path: str) -> np.ndarray:
    result: np.ndarray = np.load(path, mmap_mode="r")
    return result
