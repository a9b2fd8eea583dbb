"""Feature extraction with an on-disk cache.

Features are keyed by backbone, weights, preprocessing and the *content* of every image (its
bytes' SHA-256), so a second run, a new head or a different label fraction reuses them, and an
edited image is recomputed.
"""

from __future__ import annotations

import hashlib
import json
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
from tlcore.data.digests import content_key
from tlcore.errors import StorageError
from tlcore.models.inference import FoldedInference
from tlcore.runtime import autocast, loader_options, progress, warn
from tlcore.specs import Record


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
        precision: str = "auto",
    ) -> Extraction:
        path = self.dir / f"{content_key(records)}{view}.npy"
        damage = None
        if path.exists():
            cached, damage = _read_entry(path, len(records), _feature_width(model))
            if cached is not None:
                return Extraction(cached, 0.0, True)
            warn(f"cached features {path} {damage}: computing them again")
        start = time.perf_counter()
        feats = compute_features(model, dataset, device, batch_size, num_workers, label, show_progress, precision)
        seconds = time.perf_counter() - start
        try:
            io_atomic.ensure_dir(self.dir)
            io_atomic.write_text(self.dir / "key.json", json.dumps(self.key_parts, indent=1, default=str))
            io_atomic.numpy_save(feats, path)  # an interrupted run never leaves a half-written cache entry
        except StorageError as exc:
            if damage is None:
                raise
            # Left in place, the damaged entry would cost every later run this recomputation.
            raise StorageError(
                f"cached features {path} {damage} and could not be replaced ({exc.message})",
                "run `tl cache clear features`, or point TLCORE_CACHE (or --set cache_dir) at a writable folder",
            ) from None
        return Extraction(feats, seconds, False)


def _feature_width(model: nn.Module) -> int | None:
    """The width of the pooled features, when the model says (timm's ``head_hidden_size``; not
    ``num_features``, which is the width before a conv head in MobileNetV3, EfficientViT, GhostNet...)."""
    width = getattr(model, "head_hidden_size", None)
    return width if isinstance(width, int) and width > 0 else None


def _read_entry(path: Path, rows: int, width: int | None) -> tuple[np.ndarray | None, str | None]:
    """A cache entry's features, or None and what is wrong with it (unreadable, another shape or dtype).

    A valid ``.npy`` header says nothing about the shape: an entry written by another version, edited,
    or copied from elsewhere would otherwise fail every later run that reads it."""
    try:
        feats = np.load(path, allow_pickle=False)  # pickled entries are refused, never run
    except (OSError, ValueError, EOFError) as exc:
        return None, f"are unreadable ({' '.join(str(exc).split()) or type(exc).__name__})"
    if not isinstance(feats, np.ndarray) or not np.issubdtype(feats.dtype, np.floating):
        return None, f"hold {getattr(feats, 'dtype', type(feats).__name__)} values, not floats"
    wrong_width = width is not None and rows > 0 and feats.ndim == 2 and feats.shape[1] != width
    if feats.ndim != 2 or feats.shape[0] != rows or wrong_width:
        expected = f"({rows}, {width})" if width is not None else f"{rows} rows"
        return None, f"have shape {feats.shape}, expected {expected}"
    return feats, None


@torch.inference_mode()
def compute_features(
    model: nn.Module,
    dataset: ImageDataset,
    device: torch.device,
    batch_size: int,
    num_workers: int = 0,
    label: str = "features",
    show_progress: bool = True,
    precision: str = "auto",
) -> np.ndarray:
    """Pooled backbone features of every image of ``dataset``, forward passes in ``precision``
    (tlcore.runtime.resolve_precision)."""
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
            with autocast(device, precision):
                f = forward(dataset.normalize(x, device))
            out.append(f.float().cpu().numpy())
            bar.advance(task, len(x))
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
