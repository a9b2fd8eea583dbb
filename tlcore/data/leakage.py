"""Split leakage: the same group, the same image, or nearly the same image in two splits.

A test score is only honest if nothing the model trained on reappears in the test split. This
checks three things across ``train``/``val``/``test``:

- groups (``Record.group``) present in more than one split;
- exact duplicates: files with the same bytes (SHA-256);
- near duplicates: images whose perceptual hash (pHash, 64 bits) differs in at most
  ``max_distance`` bits, e.g. a resized or re-compressed copy.

Each image is hashed once; the pairwise comparison is a vectorised XOR + popcount over blocks of
rows, so 10k images take a fraction of a second after hashing.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import imagehash
import numpy as np
from PIL import Image

from tlcore.specs import Record, read_rgb

#: Default pHash Hamming distance (of 64 bits) that counts as a near duplicate.
NEAR_DUPLICATE_DISTANCE = 4
MAX_EXAMPLES = 5
_BLOCK = 1024  # rows per comparison block: _BLOCK x n bytes of distances at a time


@dataclass
class LeakageReport:
    """What leaked between splits: counts, and a few examples of each kind."""

    images_checked: int = 0
    max_distance: int | None = NEAR_DUPLICATE_DISTANCE
    groups: int = 0
    exact: int = 0
    near: int = 0
    group_examples: list[dict[str, Any]] = field(default_factory=list)
    exact_examples: list[dict[str, Any]] = field(default_factory=list)
    near_examples: list[dict[str, Any]] = field(default_factory=list)
    unhashable: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def found(self) -> bool:
        return bool(self.groups or self.exact or self.near)

    def as_dict(self) -> dict[str, Any]:
        return {
            "images_checked": self.images_checked,
            "groups_in_several_splits": {"count": self.groups, "examples": self.group_examples},
            "exact_duplicates": {"count": self.exact, "examples": self.exact_examples},
            "near_duplicates": {
                "count": self.near,
                "max_distance": self.max_distance,
                "examples": self.near_examples,
            },
            "unhashable": self.unhashable[:MAX_EXAMPLES],
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """One line: what leaked, with the first example."""
        parts = []
        if self.groups:
            parts.append(f"{self.groups} group(s) in more than one split")
        if self.exact:
            parts.append(f"{self.exact} exact duplicate pair(s) across splits")
        if self.near:
            parts.append(f"{self.near} near-duplicate pair(s) across splits (pHash distance <= {self.max_distance})")
        text = "split leakage: " + ", ".join(parts) if parts else "no split leakage"
        if self.group_examples:
            g = self.group_examples[0]
            text += f"; e.g. group {g['group']!r} in {', '.join(g['splits'])}"
        elif self.exact_examples:
            text += f"; e.g. {self.exact_examples[0]['a']} = {self.exact_examples[0]['b']}"
        elif self.near_examples:
            text += f"; e.g. {self.near_examples[0]['a']} ~ {self.near_examples[0]['b']}"
        return text


def content_digest(path: str, reader: Callable[[str], np.ndarray]) -> str:
    """SHA-256 of a file's bytes (memoised), or of what ``reader`` decodes when ``path`` is not one file."""
    if os.path.isfile(path):
        from tlcore.data.digests import file_digest  # the feature cache's key: the same bytes hash

        return file_digest(path)
    # Records of custom readers may name a folder (a DICOM series, ...): hash what it decodes to.
    return hashlib.sha256(np.ascontiguousarray(reader(path)).tobytes()).hexdigest()


def _load_for_phash(path: str, reader: Callable[[str], np.ndarray]) -> Image.Image:
    if reader is read_rgb:
        im = Image.open(path)
        im.draft("L", (64, 64))  # JPEG: decode at reduced scale; pHash only needs 32x32
        return im
    arr = np.asarray(reader(path))
    if arr.ndim == 3:
        arr = arr[..., :3] if arr.shape[2] >= 3 else arr[..., 0]
    if arr.dtype != np.uint8:  # float or 16-bit bands: their own range to 0-255, or every tile hashes alike
        arr = np.nan_to_num(arr.astype(np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
    return Image.fromarray(arr.astype(np.uint8))


def perceptual_hash(path: str, reader: Callable[[str], np.ndarray] = read_rgb) -> int:
    """The 64-bit pHash of an image as an unsigned integer."""
    with _load_for_phash(path, reader) as im:
        bits = imagehash.phash(im).hash.flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(x)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(axis=-1)  # pragma: no cover


def _label(split: str, path: str) -> str:
    return f"{split}:{path}"


def _group_leaks(splits: Mapping[str, Sequence[Record]], report: LeakageReport) -> None:
    where: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for split, records in splits.items():
        for r in records:
            if r.group is not None:
                where[r.group][split] += 1
    shared = sorted(g for g, s in where.items() if len(s) > 1)
    report.groups = len(shared)
    report.group_examples = [{"group": g, "splits": dict(where[g])} for g in shared[:MAX_EXAMPLES]]


def find_leakage(
    splits: Mapping[str, Sequence[Record]],
    reader: Callable[[str], np.ndarray] = read_rgb,
    max_distance: int | None = NEAR_DUPLICATE_DISTANCE,
) -> LeakageReport:
    """Compare every pair of splits; ``max_distance=None`` skips the perceptual check."""
    start = time.perf_counter()
    report = LeakageReport(max_distance=max_distance)
    _group_leaks(splits, report)

    order = ("train", "val", "test")  # pairs read "train:x = test:y" whatever order the adapter used
    names = sorted((s for s in splits if splits[s]), key=lambda s: (order.index(s) if s in order else 3, s))
    digests: dict[str, list[str]] = {}
    phashes: dict[str, np.ndarray] = {}
    kept: dict[str, list[Record]] = {}
    for split in names:
        digests[split], hashes, kept[split] = [], [], []
        for r in splits[split]:
            try:
                digest = content_digest(r.path, reader)
                ph = perceptual_hash(r.path, reader) if max_distance is not None else 0
            except Exception as exc:  # an unreadable file is screened elsewhere; here it is just not compared
                report.unhashable.append(f"{r.path}: {type(exc).__name__}")
                continue
            digests[split].append(digest)
            hashes.append(ph)
            kept[split].append(r)
        phashes[split] = np.array(hashes, dtype=np.uint64)
    report.images_checked = sum(len(v) for v in kept.values())

    # Exact duplicates: same digest in two splits (one pair per cross-split combination).
    ids: dict[str, int] = {}
    digest_ids = {s: np.array([ids.setdefault(d, len(ids)) for d in digests[s]], dtype=np.int64) for s in names}
    for a, b in combinations(names, 2):
        in_b: dict[int, list[int]] = defaultdict(list)
        for j, d in enumerate(digest_ids[b]):
            in_b[int(d)].append(j)
        for i, d in enumerate(digest_ids[a]):
            for j in in_b.get(int(d), ()):
                report.exact += 1
                if len(report.exact_examples) < MAX_EXAMPLES:
                    report.exact_examples.append({"a": _label(a, kept[a][i].path), "b": _label(b, kept[b][j].path)})

    # Near duplicates: small pHash distance, different bytes (exact ones are already counted).
    if max_distance is not None:
        for a, b in combinations(names, 2):
            hb, eb = phashes[b], digest_ids[b]
            for lo in range(0, len(phashes[a]), _BLOCK):
                ha, ea = phashes[a][lo : lo + _BLOCK], digest_ids[a][lo : lo + _BLOCK]
                dist = _popcount(ha[:, None] ^ hb[None, :])
                close = (dist <= max_distance) & (ea[:, None] != eb[None, :])
                n = int(np.count_nonzero(close))
                if not n:
                    continue
                report.near += n
                for i, j in zip(*np.nonzero(close), strict=True):
                    if len(report.near_examples) >= MAX_EXAMPLES:
                        break
                    report.near_examples.append(
                        {
                            "a": _label(a, kept[a][lo + int(i)].path),
                            "b": _label(b, kept[b][int(j)].path),
                            "distance": int(dist[i, j]),
                        }
                    )
    report.seconds = time.perf_counter() - start
    return report
