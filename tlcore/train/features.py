"""Feature extraction with an on-disk cache.

Features are keyed by backbone, weights, preprocessing and the *content* of every image (its
bytes' SHA-256), so a second run, a new head or a different label fraction reuses them, and an
edited image is recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from tlcore import io_atomic
from tlcore.data.dataset import ImageDataset
from tlcore.models.inference import FoldedInference
from tlcore.specs import MEMBER_SEPARATOR, Record, source_file
from tlcore.train.runtime import autocast, loader_options, progress


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


def model_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass
class Extraction:
    features: np.ndarray
    seconds: float  # 0 when read from the cache
    cached: bool


class FeatureCache:
    """``root/<model key>/<content key>[-view<N>].npy``."""

    def __init__(self, root: Path, key_parts: dict[str, Any]) -> None:
        self.key_parts = key_parts
        self.dir = root / model_key(key_parts)

    def extract(
        self,
        model: nn.Module,
        records: Sequence[Record],
        dataset: ImageDataset,
        device: torch.device,
        batch_size: int,
        num_workers: int = 0,
        view: str = "",
        label: str = "features",
        show_progress: bool = True,
    ) -> Extraction:
        path = self.dir / f"{content_key(records)}{view}.npy"
        if path.exists():
            try:
                return Extraction(np.load(path, allow_pickle=False), 0.0, True)
            except (OSError, ValueError, EOFError):
                pass  # a damaged cache entry is computed again
        start = time.perf_counter()
        feats = compute_features(model, dataset, device, batch_size, num_workers, label, show_progress)
        seconds = time.perf_counter() - start
        io_atomic.ensure_dir(self.dir)
        io_atomic.write_text(self.dir / "key.json", json.dumps(self.key_parts, indent=1, default=str))
        io_atomic.numpy_save(feats, path)  # an interrupted run never leaves a half-written cache entry
        return Extraction(feats, seconds, False)


@torch.inference_mode()
def compute_features(
    model: nn.Module,
    dataset: ImageDataset,
    device: torch.device,
    batch_size: int,
    num_workers: int = 0,
    label: str = "features",
    show_progress: bool = True,
) -> np.ndarray:
    model.eval()
    # Its own generator: iterating a loader draws a seed, and a cache hit (no loader) must leave the
    # global random stream where a miss leaves it, or a rerun with warm caches trains differently.
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        generator=torch.Generator(),
        **loader_options(num_workers, device),
    )
    out: list[np.ndarray] = []
    forward = FoldedInference(model)  # BatchNorm folded into the convolutions, once verified on batch one
    with progress(show_progress) as bar:
        task = bar.add_task(label, total=len(dataset), info="")
        for x, _ in loader:
            with autocast(device):
                f = forward(dataset.normalize(x, device))
            out.append(f.float().cpu().numpy())
            bar.advance(task, len(x))
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
