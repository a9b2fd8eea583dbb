"""Scaling: tlcore on 1x, 4x and 16x the data, with peak memory.

Each size runs in a fresh process (so ``ru_maxrss`` is that run's peak).

* default: feature extraction. The records are the same files repeated, so decode cost per image is
  constant. Memory must not grow with the number of images: tlcore streams images through a
  DataLoader and keeps only the features (N x 1280 floats).
* ``--decoded``: the decoded-image cache that fine-tuning reads. N *distinct* paths (symbolic links
  to the training files, repeated), so the cache really holds N images; it is built, then one
  epoch of training batches (augmentation included, no model) is read from it. Resident memory is
  split into anonymous memory (the process's own) and file-backed pages (the memory map: page cache
  the operating system can drop), read from /proc/self/status after the epoch.

    python benchmarks/scaling.py --data ../shared/datasets/beans --base 128 --out docs/bench/scaling.json
    python benchmarks/scaling.py --data ../shared/datasets/beans --base 256 --decoded \
        --out docs/bench/scaling_decoded.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(data: str, images: int, batch_size: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from tlcore.config import RunConfig
    from tlcore.data.prepare import prepare_data
    from tlcore.plugins import PluginHost
    from tlcore.training.features import FeatureCache
    from tlcore.training.pipeline import Pipeline

    host = PluginHost(load_entrypoints=False)
    config = RunConfig(technique="feature-extraction", batch_size=batch_size, progress=False)
    prepared = prepare_data(host, data, config)
    pipe = Pipeline(host, config, prepared)
    train = prepared.dataset.splits["train"]
    records = (train * (images // len(train) + 1))[:images]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(Path(tmp), {"scaling": time.time()})
        out = cache.extract(
            pipe.backbone, records, pipe.dataset(records), pipe.device, batch_size, pipe.workers, show_progress=False
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "images": images,
        "images_per_s": images / out.seconds,
        "peak_rss_mib": peak,
        "rss_before_extraction_mib": rss_before,
        "features_mib": out.features.nbytes / 2**20,
    }


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_decoded(data: str, images: int, batch_size: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    import os

    from torch.utils.data import DataLoader

    from tlcore.config import RunConfig
    from tlcore.data.prepare import prepare_data
    from tlcore.plugins import PluginHost
    from tlcore.specs import Record
    from tlcore.training.pipeline import Pipeline

    host = PluginHost(load_entrypoints=False)
    with tempfile.TemporaryDirectory() as tmp:
        config = RunConfig(batch_size=batch_size, progress=False, decode_cache_dir=str(Path(tmp) / "decoded"))
        prepared = prepare_data(host, data, config, check_leakage=False)
        pipe = Pipeline(host, config, prepared)
        train = prepared.dataset.splits["train"]
        links = Path(tmp) / "links"
        links.mkdir()
        records = []
        for i in range(images):
            source = train[i % len(train)]
            link = links / f"{i:06d}{Path(source.path).suffix}"
            os.symlink(os.path.abspath(source.path), link)
            records.append(Record(str(link), source.target))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        decoded = pipe.use_decoded_cache(records)
        build_s = time.perf_counter() - start
        assert decoded is not None
        loader = DataLoader(pipe.dataset(records, train=True), batch_size=batch_size, shuffle=True, num_workers=0)
        start = time.perf_counter()
        seen = sum(len(x) for x, _ in loader)
        epoch_s = time.perf_counter() - start
        return {
            "images": seen,
            "cache_mib": decoded["mib"],
            "build_s": build_s,
            "epoch_images_per_s": seen / epoch_s,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_mib": rss_before,
            "anon_rss_mib_after_epoch": _status_mib("RssAnon"),
            "file_rss_mib_after_epoch": _status_mib("RssFile"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--base", type=int, default=128, help="images at 1x")
    parser.add_argument("--factors", default="1,4,16")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--decoded", action="store_true", help="measure the decoded-image cache instead")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: one size
    args = parser.parse_args()
    if args.one:
        measure = one_decoded if args.decoded else one
        print(json.dumps(measure(args.data, args.one, args.batch_size)))
        return
    rows = []
    for factor in (int(f) for f in args.factors.split(",")):
        cmd = [
            sys.executable,
            __file__,
            "--data",
            args.data,
            "--one",
            str(args.base * factor),
            "--batch-size",
            str(args.batch_size),
            *(["--decoded"] if args.decoded else []),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row = {"factor": factor, **json.loads(result.stdout.strip().splitlines()[-1])}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        args.out.write_text(
            json.dumps({"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv), "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
