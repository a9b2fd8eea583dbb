"""PNG plots of the benchmark JSON in docs/bench (nothing is re-measured here).

    python benchmarks/plots.py            # reads docs/bench/*.json, writes docs/bench/*.png

* ``time_to_accuracy.png``: validation accuracy against wall clock since launch, tlcore and the plain
  timm loop, one panel per dataset, with the target line.
* ``throughput.png``: images/s on CPU and GPU, plain loader against tlcore (and the synthetic ceiling).
* ``pipeline.png``: one process's decode + augment rate by file size: torchvision, tlcore from files,
  tlcore from the decoded-image cache.
* ``scaling.png``: memory against the number of images: feature extraction peak RSS, and the decoded
  cache's anonymous and file-backed memory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

BENCH = Path(__file__).resolve().parents[1] / "docs" / "bench"


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def time_to_accuracy(folder: Path) -> Path | None:
    runs = [(label, _load(folder, f"time_to_accuracy_{key}_cpu.json")) for key, label in
            (("beans", "beans"), ("chest", "chest X-ray"))]  # fmt: skip
    runs = [(label, run) for label, run in runs if run]
    if not runs:
        return None
    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4), squeeze=False)
    for ax, (label, run) in zip(axes[0], runs, strict=True):
        for side, style in (("tlcore", "-o"), ("plain", "--s")):
            epochs = run[side]["epochs"]
            xs = [e["elapsed_s"] / 60 for e in epochs]
            ys = [e["val_accuracy"] for e in epochs]
            name = "tlcore preset" if side == "tlcore" else "plain timm loop"
            ax.plot(xs, ys, style, label=name)
        ax.axhline(run["target"], color="grey", lw=0.8, ls=":", label=f"target {run['target']}")
        ax.set(title=f"{label} ({run['preset']}), CPU", xlabel="minutes since launch", ylabel="val accuracy")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    return _save(fig, folder / "time_to_accuracy.png")


def throughput(folder: Path) -> Path | None:
    rows = []
    for name, where in (("cpu.json", "CPU"), ("gpu.json", "H200 (before the decoded cache)")):
        data = _load(folder, name)
        for model, row in (data or {}).get("models", {}).items():
            for kind, label in (("train", "training"), ("infer", "inference")):
                rows.append((f"{where}\n{model} {label}", row["plain_loader"][kind], row["tlcore"][kind]))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(rows)), 4))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r[1] for r in rows], 0.4, label="plain loader")
    ax.bar([x + 0.2 for x in xs], [r[2] for r in rows], 0.4, label="tlcore")
    for x, (_, plain, ours) in zip(xs, rows, strict=True):
        ax.annotate(f"{ours / plain:.2f}x", (x + 0.2, ours), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), [r[0] for r in rows], fontsize=7)
    ax.set(ylabel="images/s (log)", yscale="log", title="tlcore / plain timm loop, same files and device")
    ax.legend()
    return _save(fig, folder / "throughput.png")


def pipeline(folder: Path) -> Path | None:
    data = _load(folder, "pipeline.json")
    if not data:
        return None
    rows = data["rows"]
    labels = [r["files"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    keys = (("plain_images_per_s", "torchvision (PIL)"), ("tlcore_files_images_per_s", "tlcore, from files"),
            ("tlcore_decoded_cache_images_per_s", "tlcore, decoded cache"))  # fmt: skip
    for i, (key, name) in enumerate(keys):
        ax.bar([x + (i - 1) * 0.27 for x in range(len(rows))], [r[key] for r in rows], 0.27, label=name)
    ax.set_xticks(range(len(rows)), labels)
    ax.set(ylabel="augmented images/s, one process", xlabel="image files", title="data pipeline alone (CPU)")
    ax.legend()
    return _save(fig, folder / "pipeline.png")


def scaling(folder: Path) -> Path | None:
    features, decoded = _load(folder, "scaling.json"), _load(folder, "scaling_decoded.json")
    if not features and not decoded:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    if features:
        r = features["rows"]
        ax.plot([x["images"] for x in r], [x["peak_rss_mib"] for x in r], "-o", label="feature extraction: peak RSS")
    if decoded:
        r = decoded["rows"]
        n = [x["images"] for x in r]
        ax.plot(n, [x["anon_rss_mib_after_epoch"] for x in r], "-s", label="decoded cache: anonymous memory")
        ax.plot(n, [x["file_rss_mib_after_epoch"] for x in r], "--^", label="decoded cache: file pages (page cache)")
    ax.set(xscale="log", xlabel="images", ylabel="MiB", title="memory as the data set grows (CPU)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, folder / "scaling.png")


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", type=Path, default=BENCH, help="folder of the benchmark JSON (and the PNGs)")
    args = parser.parse_args()
    for plot in (time_to_accuracy, throughput, pipeline, scaling):
        path = plot(args.bench)
        print(path or f"{plot.__name__}: no data")


if __name__ == "__main__":
    main()
