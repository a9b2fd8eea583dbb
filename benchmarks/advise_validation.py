"""Does the advisor rank backbones the way fine-tuning does? Kendall's tau, per dataset.

For each dataset and candidate backbone (default: the offline EfficientNet-Lite0/1/2 and a
from-scratch Lite0), this runs ``tl advise``'s scoring and then an actual fine-tuning run of the
core ``fine-tuning`` preset on the same data, and reports Kendall's tau between each advisor
score (LogME, linear probe, kNN probe, the advisor's combined ranking) and the fine-tuned test
accuracy. JSON goes to ``--out``, rewritten after every run so a cut-off run keeps its results.

    python benchmarks/advise_validation.py --data ../shared/datasets/beans --limit 40 --epochs 1 \\
        --out /tmp/advise_validation.json          # a quick CPU check of the whole path
    bash benchmarks/advise_gpu.sh                  # the real run, on a GPU machine (see that file)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from scipy.stats import kendalltau

from tlcore.advice.advisor import OFFLINE_CANDIDATES, AdviseOptions, Candidate, advise, parse_candidates
from tlcore.advice.compare import with_train_split
from tlcore.advice.sampling import stratified_subsample
from tlcore.config import build_config, preset_settings
from tlcore.data.prepare import PreparedData, prepare_data
from tlcore.plugins import get_host
from tlcore.training.run import run_training


def _with_weights_dir(candidates: list[Candidate], weights_dir: Path | None) -> list[Candidate]:
    """Default weights replaced by ``weights_dir/<backbone>.safetensors`` where that file exists
    (how the GPU run brings the offline Lite weights without their pip packages)."""
    if weights_dir is None:
        return candidates
    out = []
    for c in candidates:
        file = weights_dir / f"{c.backbone}.safetensors"
        out.append(Candidate(c.backbone, str(file)) if c.weights == "default" and file.exists() else c)
    return out


def _limit(prepared: PreparedData, per_class: int | None, seed: int) -> PreparedData:
    """At most ``per_class`` images of each class in every split (stratified), for quick checks."""
    if not per_class:
        return prepared
    k = len(prepared.dataset.classes)
    splits = {s: stratified_subsample(r, per_class * k, seed) for s, r in prepared.dataset.splits.items()}
    limited = with_train_split(prepared, splits["train"])
    limited.dataset.splits.update(splits)
    return limited


def _tau(scores: list[float | None], accuracy: list[float]) -> float | None:
    pairs = [(s, a) for s, a in zip(scores, accuracy, strict=True) if s is not None]
    if len(pairs) < 3:
        return None
    tau = kendalltau([p[0] for p in pairs], [p[1] for p in pairs]).statistic
    return None if tau is None or math.isnan(tau) else round(float(tau), 4)


def _label(c: Candidate) -> str:
    return c.name if "/" not in c.weights else f"{c.backbone}@file"


def validate_dataset(args: argparse.Namespace, data: str, out: dict[str, Any], write: Any) -> dict[str, Any]:
    host = get_host()
    fe_config = build_config(
        preset_settings(host.presets, "feature-extraction"),
        {"progress": False, **({"image_size": args.image_size} if args.image_size else {})},
        "validation",
    )
    prepared = _limit(prepare_data(host, data, fe_config), args.limit, args.seed)
    counts = {s: len(r) for s, r in prepared.dataset.splits.items()}
    candidates = _with_weights_dir(parse_candidates(args.candidates, hub_reachable=False), args.weights_dir)
    entry: dict[str, Any] = {"data": data, "counts": counts, "candidates": {}}
    out["datasets"][Path(data).name] = entry

    started = time.perf_counter()
    advice = advise(
        host,
        data,
        candidates,
        fe_config,
        AdviseOptions(budget_images=args.budget_images, progress=False, finetune_epochs=args.epochs or 15),
        prepared=prepared,
    )
    entry["advise_seconds"] = round(time.perf_counter() - started, 1)
    entry["recommendation"] = advice["recommendation"]
    ranking = advice["recommendation"]["ranking"]
    for c, scored in zip(candidates, advice["candidates"], strict=True):
        entry["candidates"][_label(c)] = {
            "logme": scored.get("logme"),
            "linear_probe": (scored.get("linear_probe") or {}).get("accuracy"),
            "knn_probe": (scored.get("knn_probe") or {}).get("accuracy"),
            "similarity": (scored.get("similarity") or {}).get("score"),
            "advisor_rank": ranking.index(c.name) + 1 if c.name in ranking else None,
            "error": scored.get("error"),
        }
    write()

    ft_settings = preset_settings(host.presets, "fine-tuning")
    for c in candidates:
        overrides: dict[str, Any] = {"backbone": c.backbone, "weights": c.weights, "progress": False}
        if args.epochs:
            overrides["epochs"] = args.epochs
        if args.image_size:
            overrides["image_size"] = args.image_size
        config = build_config(ft_settings, overrides, "fine-tuning")
        with tempfile.TemporaryDirectory() as run_dir:
            report = run_training(host, config, data, Path(run_dir), "fine-tuning", prepared=prepared)
        result = entry["candidates"][_label(c)]
        result.update(
            test_accuracy=report["test"]["accuracy"],
            val_accuracy=report["val"]["accuracy"],
            finetune_seconds=round(report["timing"]["total_s"], 1),
        )
        print(f"{Path(data).name} {_label(c)}: {json.dumps(result)}", flush=True)
        write()

    rows = list(entry["candidates"].values())
    accuracy = [r["test_accuracy"] for r in rows]
    entry["kendall_tau"] = {
        "logme": _tau([r["logme"] for r in rows], accuracy),
        "linear_probe": _tau([r["linear_probe"] for r in rows], accuracy),
        "knn_probe": _tau([r["knn_probe"] for r in rows], accuracy),
        "advisor": _tau([-r["advisor_rank"] if r["advisor_rank"] else None for r in rows], accuracy),
    }
    write()
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", required=True, help="dataset folders")
    parser.add_argument(
        "--candidates", default=",".join(OFFLINE_CANDIDATES), help="backbone[@weights], comma-separated"
    )
    parser.add_argument("--weights-dir", type=Path, help="folder of <backbone>.safetensors replacing default weights")
    parser.add_argument("--limit", type=int, help="at most this many images per class in every split (quick checks)")
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs (default: the preset's 15)")
    parser.add_argument("--image-size", type=int, help="input size for every model (default: each one's own)")
    parser.add_argument("--budget-images", type=int, default=1000, help="the advisor's subsample (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="JSON output")
    args = parser.parse_args()

    out: dict[str, Any] = {
        "benchmark": "advise_validation",
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": {
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
        },
        "datasets": {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        args.out.write_text(json.dumps(out, indent=2))

    started = time.perf_counter()
    for data in args.data:
        validate_dataset(args, data, out, write)
    taus = [e["kendall_tau"]["advisor"] for e in out["datasets"].values() if e["kendall_tau"]["advisor"] is not None]
    out["mean_advisor_tau"] = round(sum(taus) / len(taus), 4) if taus else None
    out["seconds"] = round(time.perf_counter() - started, 1)
    write()
    print(json.dumps({k: v["kendall_tau"] for k, v in out["datasets"].items()}, indent=1))
    print(f"mean advisor tau {out['mean_advisor_tau']}; {out['seconds']:.0f} s; written to {args.out}")


if __name__ == "__main__":
    main()
