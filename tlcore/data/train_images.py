"""Which images a run trained on, so that an evaluation can say when it scores some of them.

A folder without split subfolders has its val and test carved out of it by tlcore; add images and
the carve changes, so a later ``tl evaluate`` of the "test" split may score training images. The
run therefore records its training images in ``train_images.sha256``: one line per image, its
SHA-256 (as the leakage check and the feature cache compute it), two spaces and its path, the
layout of ``sha256sum``. An evaluation compares the digests, so a copy under another name counts too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tlcore import io_atomic
from tlcore.data.leakage import MAX_EXAMPLES, content_digest
from tlcore.data.prepare import PreparedData
from tlcore.errors import DataError
from tlcore.specs import Record

TRAIN_IMAGES = "train_images.sha256"


def _digest(path: str, reader: Callable[[str], np.ndarray]) -> str | None:
    try:
        return content_digest(path, reader)
    except Exception:  # an unreadable file is screened elsewhere; it is then compared by path alone
        return None


def write_train_images(run_dir: Path, records: Sequence[Record], reader: Callable[[str], np.ndarray]) -> None:
    """``run_dir/train_images.sha256`` for ``records`` (the files are hashed once per process: cheap here)."""
    lines = [f"{_digest(r.path, reader) or '-'}  {r.path}" for r in records]
    io_atomic.write_text(run_dir / TRAIN_IMAGES, "\n".join(lines) + "\n")


def _read(path: Path) -> tuple[set[str], set[str]]:
    digests, paths = set(), set()
    for line in path.read_text().splitlines():
        digest, sep, name = line.partition("  ")
        if sep:
            paths.add(name)
            if digest != "-":
                digests.add(digest)
    return digests, paths


def train_overlap(
    run_dir: Path, records: Sequence[Record], reader: Callable[[str], np.ndarray]
) -> dict[str, Any] | None:
    """How many of ``records`` the run trained on (same bytes, or same path when a file cannot be hashed),
    with a few examples; ``None`` when the run does not record its training images."""
    listing = run_dir / TRAIN_IMAGES
    if not listing.is_file():
        return None
    digests, paths = _read(listing)
    found = []
    for r in records:
        digest = _digest(r.path, reader)
        if (digest in digests) if digest is not None else (r.path in paths):
            found.append(r.path)
    return {
        "images": len(records),
        "count": len(found),
        "examples": found[:MAX_EXAMPLES],
        "checked_against": TRAIN_IMAGES,
    }


def check_scored_images(
    run_dir: Path, prepared: PreparedData, records: Sequence[Record], split: str, strict: bool
) -> list[str]:
    """Warnings for an evaluation of ``records``: what loading the data changed, and the run's own training
    images among them (recorded in ``prepared.train_overlap``); under ``strict`` the latter is an error."""
    report = "the evaluation's JSON"
    lines = [change.warning(report) for change in prepared.changes()]  # prepare_data refused them if strict
    overlap = prepared.train_overlap = train_overlap(run_dir, records, prepared.dataset.reader)
    if overlap and overlap["count"]:
        message = (
            f"{overlap['count']} of the {overlap['images']} {split} image(s) are training images of this run, "
            f"e.g. {overlap['examples'][0]}: these scores are optimistic"
        )
        if strict:
            raise DataError(
                message,
                "score images the run did not train on (a folder with its own test/ split), or drop --strict",
            )
        lines.append(f"{message} (listed in {report} under data.train_overlap; --strict fails instead)")
    return lines
