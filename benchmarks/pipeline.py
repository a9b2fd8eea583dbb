"""Data pipeline alone: training images/s that one process can decode and augment, no model.

On a GPU the model steps faster than the CPU decodes, so this rate (times the worker count) is what
feeds it. Three ways to the same augmented uint8 batch, one process each, on the same files:

* ``plain``: torchvision, the usual PIL decode + RandomResizedCrop + flip + ToTensor + Normalize.
* ``tlcore files``: tlcore's ImageDataset decoding each file (its reader + albumentations).
* ``tlcore decoded cache``: the same dataset reading the memory-mapped decoded-image cache that
  ``tl train`` builds for fine-tuning (the one-off build is timed apart).

The files are the training images of ``--data`` at their own size, and copies re-encoded at larger
sizes (``--sizes``, JPEG quality 90, resized with PIL): the shared sets here are small (beans 256 px,
chest X-rays 224 px), while real photographs and radiographs are 1-3k pixels on a side.

    python benchmarks/pipeline.py --data ../shared/datasets/beans --images 200 --sizes 1024,2048 \\
        --out docs/bench/pipeline.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from plain_baseline import PathDataset, plain_transforms

from tlcore.config import RunConfig
from tlcore.data.prepare import prepare_data
from tlcore.plugins import PluginHost
from tlcore.specs import Record
from tlcore.training.pipeline import Pipeline


def _rate(dataset: Dataset[Any], batch_size: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    start = time.perf_counter()
    seen = sum(len(x) for x, _ in loader)
    return seen / (time.perf_counter() - start)


def _copies(records: list[Record], folder: Path, size: int) -> list[Record]:
    """``records`` re-encoded at ``size`` pixels on the short side (JPEG quality 90)."""
    folder.mkdir(parents=True)
    out = []
    for i, record in enumerate(records):
        with Image.open(record.path) as img:
            w, h = img.size
            scale = size / min(w, h)
            big = img.convert("RGB").resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC)
        path = folder / f"{i:05d}.jpg"
        big.save(path, quality=90)
        out.append(Record(str(path), record.target))
    return out


def measure(host: PluginHost, data: str, records: list[Record], batch_size: int, cache_dir: Path) -> dict[str, Any]:
    config = RunConfig(batch_size=batch_size, progress=False, decode_cache_dir=str(cache_dir))
    pipe = Pipeline(host, config, prepare_data(host, data, config))
    with Image.open(records[0].path) as img:
        row: dict[str, Any] = {"image_size": list(img.size), "images": len(records)}
    size = pipe.pre.input_size[0]
    plain_train, _ = plain_transforms(size)
    _rate(PathDataset(records[:batch_size], plain_train), batch_size)  # warm the OS file cache and imports
    row["plain_images_per_s"] = _rate(PathDataset(records, plain_train), batch_size)
    row["tlcore_files_images_per_s"] = _rate(pipe.dataset(records, train=True), batch_size)
    decoded = pipe.use_decoded_cache(records)
    assert decoded is not None, "the decoded-image cache was not used"
    row["decode_cache_build_s"] = decoded["seconds"]
    row["decode_cache_mib"] = decoded["mib"]
    row["tlcore_decoded_cache_images_per_s"] = _rate(pipe.dataset(records, train=True), batch_size)
    row["decoded_cache_vs_plain"] = row["tlcore_decoded_cache_images_per_s"] / row["plain_images_per_s"]
    row["files_vs_plain"] = row["tlcore_files_images_per_s"] / row["plain_images_per_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="ImageFolder with train/")
    parser.add_argument("--images", type=int, default=200, help="training images used (the first N)")
    parser.add_argument("--sizes", default="1024,2048", help="short sides of the re-encoded copies")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    host = PluginHost(load_entrypoints=False)
    config = RunConfig(progress=False)
    records = prepare_data(host, args.data, config).dataset.splits["train"][: args.images]
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
        "rows": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        sets = [("original", records)] + [
            (f"{s} px", _copies(records, Path(tmp) / f"s{s}", int(s))) for s in args.sizes.split(",") if s
        ]
        for label, recs in sets:
            row = {"files": label, **measure(host, args.data, recs, args.batch_size, Path(tmp) / "decoded")}
            print(json.dumps(row), flush=True)
            result["rows"].append(row)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
