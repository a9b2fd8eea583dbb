"""Content digests of the files behind records: the feature cache, the decoded-image cache and the leakage
check key images by their bytes, so an edited image is seen as new wherever it is cached."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence

from tlcore.specs import MEMBER_SEPARATOR, Record, source_file


def file_digest(path: str) -> str:
    """SHA-256 of a file's bytes; for a ``FILE::MEMBER`` record path, of FILE's digest plus MEMBER."""
    source = source_file(path)
    stat = os.stat(source)
    digest = _memo_digest(source, stat.st_size, stat.st_mtime_ns)
    if source == path:
        return digest
    member = path[len(source) + len(MEMBER_SEPARATOR) :]
    return hashlib.sha256(f"{digest}:{member}".encode()).hexdigest()


def _bytes_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1 << 16)
def _memo_digest(path: str, size: int, mtime_ns: int) -> str:
    # A run hashes each file for the leakage check and again for the feature cache's key, and the
    # slices of one volume share their file: hash it once (size and mtime say when it changed).
    return _bytes_digest(path)


def content_key(records: Sequence[Record]) -> str:
    """One key for an ordered list of images, from their bytes."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(file_digest(record.path).encode())
    return digest.hexdigest()[:24]
