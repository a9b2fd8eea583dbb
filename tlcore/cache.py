"""What tlcore keeps on disk under its cache root (features, decoded images, converted weights): each cache's
size, and dropping one. A cache is rebuilt when next needed, so clearing one costs time, never results.

The decoded-image cache holds a resized copy of every image fine-tuned on, so it can reach gigabytes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

#: folder under the cache root -> what it holds
KINDS = {
    "features": "backbone features (feature extraction, LP-FT probes, tl advise)",
    "decoded": "decoded, resized images that fine-tuning reads (one entry per dataset and size)",
    "weights": "pretrained weights converted to timm's layout",
}


def usage(folder: Path) -> dict[str, Any]:
    """The folder, its entries (hidden ones aside) and the bytes of every file under it; zeros when it is absent."""
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []
    return {"path": str(folder), "entries": len(entries), "bytes": sum(p.stat().st_size for p in files)}


def clear(folder: Path) -> int:
    """Delete a cache folder; the bytes it held."""
    freed = int(usage(folder)["bytes"])
    shutil.rmtree(folder, ignore_errors=True)
    return freed
