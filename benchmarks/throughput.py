"""Throughput: tlcore end to end against a plain timm + PyTorch loop, in one process.

For each model it measures, on the same device and the same image files:

* ``synthetic``: plain timm on random tensors already on the device (the ceiling);
  on CUDA with bf16 autocast + channels_last, eager and (``--compile``) torch.compile'd.
* ``plain_loader``: plain timm fed by torchvision ``ImageFolder`` + ``DataLoader`` with the usual
  transforms (RandomResizedCrop + flip for training; resize + centre crop for inference): the loop
  a user would otherwise write. Same precision settings as ``synthetic`` eager.
* ``tlcore``: tlcore's own code path: ``fine_tune`` (one epoch, strategy ``full``) and
  ``FeatureCache.extract`` (cold cache), with its albumentations pipeline, uint8 batches,
  on-device normalisation and channels_last; then both again reading the decoded-image cache
  (``train_decoded_cache``, ``infer_decoded_cache``; its one-off build time is reported apart).

Training throughput counts optimizer steps on full batches; the first batches (warm-up, worker
start, cudnn autotuning) are excluded by timing a fixed number of steps after ``--warmup`` steps for
the plain loops, and for tlcore by the images/s of an epoch long enough to amortise its start.

    python benchmarks/throughput.py --data ../shared/datasets/beans --out docs/bench/cpu.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import timm
from plain_baseline import plain_transforms

from tlcore.config import RunConfig
from tlcore.runtime import autocast


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _model(name: str, device: torch.device, channels_last: bool) -> nn.Module:
    model = timm.create_model(name, pretrained=False, num_classes=3)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def _train_steps(
    model: nn.Module, batches: Any, steps: int, warmup: int, device: torch.device, channels_last: bool
) -> float:
    """Images/s of ``steps`` optimizer steps after ``warmup`` steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    seen, start = 0, 0.0
    for i, (x, y) in enumerate(itertools.islice(batches, warmup + steps)):
        if i == warmup:
            _sync(device)
            start, seen = time.perf_counter(), 0
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with autocast(device):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(x)
    _sync(device)
    return seen / (time.perf_counter() - start)


@torch.inference_mode()
def _infer(model: nn.Module, batches: Any, steps: int, warmup: int, device: torch.device, channels_last: bool) -> float:
    model.eval()
    seen, start = 0, 0.0
    for i, (x, _) in enumerate(itertools.islice(batches, warmup + steps)):
        if i == warmup:
            _sync(device)
            start, seen = time.perf_counter(), 0
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            model(x)
        seen += len(x)
    _sync(device)
    return seen / (time.perf_counter() - start)


def synthetic(
    name: str, device: torch.device, size: int, bs: int, steps: int, warmup: int, compile_: bool
) -> dict[str, float]:
    cl = device.type == "cuda"
    x = torch.randn(bs, 3, size, size, device=device)
    y = torch.randint(0, 3, (bs,), device=device)
    out: dict[str, float] = {}
    model = _model(name, device, cl)
    out["train"] = _train_steps(model, itertools.repeat((x, y)), steps, warmup, device, cl)
    xi = torch.randn(bs * 2, 3, size, size, device=device)
    out["infer"] = _infer(model, itertools.repeat((xi, y)), steps, warmup, device, cl)
    if compile_:
        compiled = torch.compile(_model(name, device, cl))
        out["train_compiled"] = _train_steps(compiled, itertools.repeat((x, y)), steps, warmup + 3, device, cl)
    return out


def _cycle(loader: Any) -> Any:
    while True:
        yield from loader


def plain_loader(
    name: str, device: torch.device, data: Path, size: int, bs: int, steps: int, warmup: int, workers: int, repeat: int
) -> dict[str, float]:
    from torch.utils.data import DataLoader
    from torchvision import datasets

    train_tf, eval_tf = plain_transforms(size)
    cl = device.type == "cuda"
    out: dict[str, float] = {}
    for key, tf, batch in (("train", train_tf, bs), ("infer", eval_tf, bs * 2)):
        ds = datasets.ImageFolder(str(data / "train"), transform=tf)
        ds.samples = ds.samples * repeat
        loader = DataLoader(
            ds,
            batch_size=batch,
            shuffle=key == "train",
            num_workers=workers,
            pin_memory=cl,
            drop_last=True,
            persistent_workers=workers > 0,
        )
        model = _model(name, device, cl)
        fn = _train_steps if key == "train" else _infer
        out[key] = fn(model, _cycle(loader), steps, warmup, device, cl)
    return out


def tlcore_paths(
    name: str, device: torch.device, data: Path, size: int, bs: int, workers: int | None, images: int, compile_: bool
) -> dict[str, float]:
    """tlcore's real code path: Pipeline + fine_tune (one epoch) and FeatureCache.extract (cold)."""
    from tlcore.data.prepare import prepare_data
    from tlcore.models.backbones import stage_groups
    from tlcore.models.transfer import TransferModel
    from tlcore.plugins import PluginHost
    from tlcore.runtime import prepare_model
    from tlcore.training.features import FeatureCache
    from tlcore.training.finetune import fine_tune
    from tlcore.training.pipeline import Pipeline

    host = PluginHost(load_entrypoints=False)
    # Two epochs: the first absorbs torch.compile and worker start-up; the second is the one reported.
    config = RunConfig(
        technique="fine-tuning",
        strategy="full",
        backbone=name,
        weights="none",
        epochs=2,
        batch_size=bs,
        image_size=size,
        num_workers=workers,
        progress=False,
        compile=compile_,
        warmup_epochs=0,
        label_smoothing=0.0,
        device=str(device.type),
    )
    prepared = prepare_data(host, str(data), config)
    pipe = Pipeline(host, config, prepared)
    train = prepared.dataset.splits["train"]
    records = (train * (images // len(train) + 1))[:images]
    val = prepared.dataset.splits["val"][: bs * 2]
    out: dict[str, float] = {"workers": float(pipe.workers)}
    val_targets = np.array([r.target for r in val])

    def epochs_then_features(run_dir: Path) -> tuple[float, float, float]:
        """Images/s of the last and first fine-tuning epochs, then of a cold feature extraction."""
        run_dir.mkdir()
        model = prepare_model(TransferModel(pipe.backbone, pipe.new_head()), pipe.device)
        fit = fine_tune(
            model,
            stage_groups(pipe.backbone),
            pipe.dataset(records, train=True),
            pipe.loader(val),
            val_targets,
            prepared.dataset.classes,
            config,
            pipe.device,
            run_dir,
            workers=pipe.workers,
        )
        cache = FeatureCache(run_dir / "features", {"bench": time.time()})
        ds = pipe.dataset(records)
        result = cache.extract(pipe.backbone, records, ds, pipe.device, bs * 2, pipe.workers, show_progress=False)
        return (
            fit.history[-1]["train_images_per_s"],
            fit.history[0]["train_images_per_s"],
            len(records) / result.seconds,
        )

    with tempfile.TemporaryDirectory() as tmp:
        config.decode_cache_dir = str(Path(tmp) / "decoded")  # a cold decoded-image cache
        out["train"], out["train_first_epoch"], out["infer"] = epochs_then_features(Path(tmp) / "files")
        # The same again, reading the decoded-image cache (what `tl train` does for fine-tuning):
        # building it is timed on its own; the epochs then decode nothing.
        decoded = pipe.use_decoded_cache(records + val)
        if decoded is None:
            raise RuntimeError("the decoded-image cache was not used (reader or disk space)")
        out["decode_cache_build_s"] = decoded["seconds"]
        out["decode_cache_mib"] = decoded["mib"]
        out["train_decoded_cache"], _, out["infer_decoded_cache"] = epochs_then_features(Path(tmp) / "cached")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="ImageFolder root with train/ (and val/)")
    parser.add_argument("--models", default="tf_efficientnet_lite0")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps for the plain loops")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: tlcore's auto)")
    parser.add_argument("--images", type=int, default=256, help="images in tlcore's timed epoch")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (CUDA)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from tlcore import cpu_memory
    from tlcore.runtime import pick_device, resolve_workers

    device = pick_device(args.device)
    workers = resolve_workers(args.workers, device)
    repeat = max(1, args.images // 1000 + 1)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "size": args.size,
        "workers": workers,
        "data": str(args.data),
        "command": " ".join(sys.argv),
        "models": {},
    }
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    for name in args.models.split(","):
        row: dict[str, Any] = {}
        for key, fn in (
            (
                "synthetic",
                lambda name=name: synthetic(
                    name, device, args.size, args.batch_size, args.steps, args.warmup, args.compile
                ),
            ),
            (
                "plain_loader",
                lambda name=name: plain_loader(
                    name, device, args.data, args.size, args.batch_size, args.steps, args.warmup, workers, repeat
                ),
            ),
            (
                "tlcore",
                lambda name=name: tlcore_paths(
                    name, device, args.data, args.size, args.batch_size, workers, args.images, args.compile
                ),
            ),
        ):
            t0 = time.perf_counter()
            try:
                row[key] = fn()
            except Exception as exc:  # keep the other measurements when one path fails
                row[key] = {"error": f"{type(exc).__name__}: {exc}"[:500], "train": float("nan"), "infer": float("nan")}
            row[key]["seconds"] = round(time.perf_counter() - t0, 1)
            # malloc's state after the path ran: tlcore tunes it for the whole process on its first CPU model
            # (tlcore.cpu_memory), so on the CPU only the first model's plain loops run with glibc's defaults.
            row[key]["cpu_memory"] = cpu_memory.state()["malloc"]
            print(name, key, json.dumps(row[key]), flush=True)
        ceiling_train = row["synthetic"].get("train_compiled", row["synthetic"]["train"])
        row["ratios"] = {
            "train_tlcore_vs_plain_loader": row["tlcore"]["train"] / row["plain_loader"]["train"],
            "train_tlcore_vs_synthetic": row["tlcore"]["train"] / ceiling_train,
            "infer_tlcore_vs_plain_loader": row["tlcore"]["infer"] / row["plain_loader"]["infer"],
            "infer_tlcore_vs_synthetic": row["tlcore"]["infer"] / row["synthetic"]["infer"],
            "train_decoded_cache_vs_plain_loader": row["tlcore"].get("train_decoded_cache", float("nan"))
            / row["plain_loader"]["train"],
            "train_decoded_cache_vs_synthetic": row["tlcore"].get("train_decoded_cache", float("nan")) / ceiling_train,
            "infer_decoded_cache_vs_plain_loader": row["tlcore"].get("infer_decoded_cache", float("nan"))
            / row["plain_loader"]["infer"],
        }
        print(name, "ratios", json.dumps(row["ratios"]), flush=True)
        results["models"][name] = row
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))  # after each model, so a timeout keeps the rest


if __name__ == "__main__":
    main()
