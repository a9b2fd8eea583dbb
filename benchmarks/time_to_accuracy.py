"""Time to accuracy: wall clock until the VALIDATION accuracy first reaches ``--target``, a tlcore preset
against a plain timm + PyTorch loop, on the same data, val images and machine, in one invocation.

* ``tlcore``: ``tl train --preset P --data D --output TMP --quiet [--set k=v ...]`` in a subprocess.
  Its time to target is measured from the launch of that process: the start-up offset (interpreter,
  imports, plugin loading, up to the moment ``run_training`` begins; taken from the wall-clock ``started``
  that tlcore writes to ``config.yaml``, against the launch time read here on the same clock) plus
  ``metrics.csv``'s ``elapsed_s`` of the first epoch whose ``val_accuracy`` reaches the target. That
  ``elapsed_s`` includes everything the run did until then: data loading, the image check and leakage
  hashes, building the model (weights conversion included), the LP-FT linear probe (feature extraction
  with a cold cache), and every epoch's training and validation (mirrored views when the preset sets
  ``tta``). It is stopped (SIGTERM) after the epoch that reaches the target, unless ``--full-schedule``
  lets the whole preset schedule run and report its test accuracy (``--max-minutes`` stops it too).
* ``plain``: in this process, the loop a competent user would write: ``timm.create_model(<the preset's
  timm name>, pretrained=False, num_classes=k)`` loaded with the same ImageNet weights (tlcore's resolver
  only obtains the file, as ``pretrained=True`` would), a Dataset over the same path lists (PIL decode,
  RandomResizedCrop + flip / Resize + CenterCrop, Normalize with the weights' mean/std), AdamW
  (lr 3e-4, wd 0.05), per-step cosine schedule, cross-entropy, full fine-tuning, the preset's batch size
  and epoch count, default torch threads, ``num_workers`` 0 on CPU (tlcore's worker count elsewhere; bf16
  autocast on CUDA, as tlcore). Time counts from just before model creation; the imports of torch, timm
  and torchvision are not included (tlcore's ``startup_s``, which holds its own, is reported apart).
  It stops at the target, at the epoch cap or at ``--max-minutes``; test accuracy is that of the model
  it stopped with.

Both sides get the same train/val/test records: tlcore's own ``prepare_data`` (adapter, unreadable-image
screening and the carving of a missing val split, with the config's ``val_fraction`` and ``seed``). Both
start from an empty tlcore cache (a temporary ``TLCORE_CACHE``), so neither reuses features or converted
weights from an earlier run. The image files are read once before either side starts (that screening),
so both find them in the OS page cache.

    python benchmarks/time_to_accuracy.py --data ../shared/datasets/beans --target 0.9 --out docs/bench/tta.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
import torchvision
import yaml
from timm.data.config import resolve_data_config
from torch import nn
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from plain_baseline import PathDataset, plain_model, plain_transforms, train_epoch

from tlcore.config import RunConfig, build_config, parse_overrides, preset_settings
from tlcore.specs import Record


def time_to_target(history: Sequence[tuple[float, float | None]], target: float) -> float | None:
    """Elapsed seconds of the first ``(elapsed_s, val_accuracy)`` row whose accuracy reaches ``target``."""
    for elapsed, accuracy in history:
        if accuracy is not None and accuracy >= target:
            return elapsed
    return None


def resolve_config(preset: str, overrides: list[str]) -> tuple[Any, RunConfig]:
    """The plugin host and the run configuration exactly as ``tl train`` builds them."""
    from tlcore.plugins import get_host

    host = get_host()
    config = build_config(preset_settings(host.presets, preset), parse_overrides(overrides), f"preset {preset}")
    return host, config


# -- tlcore: tl train in a subprocess -----------------------------------------------------------


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _reached(metrics: Path, target: float) -> bool:
    """Whether a finished epoch in ``metrics.csv`` (written atomically after each epoch) reached ``target``."""
    try:
        rows = _read_csv(metrics)
    except (OSError, ValueError, csv.Error):
        return False
    return any((_number(r.get("val_accuracy")) or 0.0) >= target for r in rows)


def run_tlcore(
    preset: str,
    data: str,
    sets: list[str],
    target: float,
    max_s: float,
    work: Path,
    env: dict[str, str],
    stop_at_target: bool = False,
) -> dict[str, Any]:
    run_dir = work / "tlcore-run"
    tl = Path(sys.executable).parent / "tl"
    cmd = [str(tl), "train", "--preset", preset, "--data", data, "--output", str(run_dir), "--quiet"]
    for pair in sets:
        cmd += ["--set", pair]
    log = work / "tlcore.log"
    print(f"tlcore: {shlex.join(cmd)}", flush=True)
    with log.open("w") as out:
        launched_at = time.time()  # wall clock: compared with the `started` tlcore writes (same machine clock)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        stopped_by = "finished"
        while proc.poll() is None:
            if time.perf_counter() - t0 > max_s:
                stopped_by = "time"
            elif stop_at_target and _reached(run_dir / "metrics.csv", target):
                stopped_by = "target"
            else:
                time.sleep(1.0)
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            break
        wall = time.perf_counter() - t0
    side: dict[str, Any] = {"command": shlex.join(cmd), "total_wall_s": wall, "stopped_by": stopped_by}
    if stopped_by == "finished" and proc.returncode != 0:
        side["stopped_by"] = "error"
    if side["stopped_by"] not in ("finished", "target"):
        side["log_tail"] = log.read_text(errors="replace")[-2000:]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    if "started" not in saved:
        side.update(epochs=[], time_to_target_s=None)
        return side
    # Launch -> run_training's start: interpreter, imports, plugins, CLI (process creation included).
    offset = datetime.fromisoformat(saved["started"]).timestamp() - launched_at
    rows = _read_csv(run_dir / "metrics.csv")
    epochs: list[dict[str, Any]] = [
        {
            "epoch": int(r["epoch"]),
            "elapsed_s": offset + float(r["elapsed_s"]),
            "run_elapsed_s": float(r["elapsed_s"]),
            "val_accuracy": _number(r.get("val_accuracy")),
            "epoch_s": float(r["seconds"]),
        }
        for r in rows
    ]
    side.update(startup_s=offset, epochs=epochs)
    side["time_to_target_s"] = time_to_target([(e["elapsed_s"], e["val_accuracy"]) for e in epochs], target)
    report_path = run_dir / "report.json"
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        side.update(
            test_accuracy=report["test"]["accuracy"],
            final_val_accuracy=report["val"]["accuracy"],
            threads=report["environment"]["threads"],
            device=report["environment"]["device"],
            report_timing=report["timing"],
            linear_probe_val_accuracy=report["training"].get("linear_probe_val_accuracy"),
        )
    return side


# -- plain: timm + torchvision + a hand-written loop, in this process --------------------------


@torch.inference_mode()
def _accuracy(model: nn.Module, loader: DataLoader[Any], device: torch.device) -> float:
    from tlcore.runtime import autocast

    model.eval()
    correct = total = 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device):
            correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return correct / max(1, total)


def run_plain(host: Any, config: RunConfig, splits: dict[str, list[Record]], k: int, target: float,
              max_s: float, full_schedule: bool) -> dict[str, Any]:  # fmt: skip
    from tlcore.runtime import pick_device, resolve_workers

    device = pick_device(config.device)
    workers = resolve_workers(None, device)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    epochs_out: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    model, timm_name, origin = plain_model(host, config, k)
    model.to(device)
    data_cfg = resolve_data_config({}, model=model)
    size = config.image_size or int(data_cfg["input_size"][-1])
    train_tf, eval_tf = plain_transforms(size, data_cfg["mean"], data_cfg["std"])
    bs = config.batch_size
    n_train = len(splits["train"])
    train_loader = DataLoader(
        PathDataset(splits["train"], train_tf),
        batch_size=bs,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=n_train % bs == 1,  # BatchNorm cannot train on a batch of one
        generator=torch.Generator().manual_seed(config.seed),
        persistent_workers=workers > 0,
    )

    def eval_loader(split: str) -> DataLoader[Any]:
        return DataLoader(PathDataset(splits[split], eval_tf), batch_size=bs * 2, num_workers=workers)

    val_loader = eval_loader("val")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * len(train_loader))
    stopped_by = "epochs"
    for epoch in range(config.epochs):
        e0 = time.perf_counter()
        if train_epoch(
            model, train_loader, optimizer, scheduler, device, stop=lambda: time.perf_counter() - t0 > max_s
        ):
            stopped_by = "time"
            break
        acc = _accuracy(model, val_loader, device)
        elapsed = time.perf_counter() - t0
        epochs_out.append(
            {"epoch": epoch + 1, "elapsed_s": elapsed, "val_accuracy": acc, "epoch_s": time.perf_counter() - e0}
        )
        print(f"plain: epoch {epoch + 1}/{config.epochs}  val accuracy {acc:.3f}  at {elapsed:.1f} s", flush=True)
        if acc >= target and not full_schedule:
            stopped_by = "target"
            break
        if elapsed > max_s:
            stopped_by = "time"
            break
    test_acc = _accuracy(model, eval_loader("test"), device)
    return {
        "command": "in process: see the module docstring (AdamW 3e-4/0.05, cosine, CE, full fine-tuning)",
        "timm_name": timm_name,
        "weights": origin,
        "image_size": size,
        "mean": list(data_cfg["mean"]),
        "std": list(data_cfg["std"]),
        "workers": workers,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "epochs": epochs_out,
        "time_to_target_s": time_to_target([(e["elapsed_s"], e["val_accuracy"]) for e in epochs_out], target),
        "stopped_by": stopped_by,
        "test_accuracy": test_acc,
        "total_wall_s": time.perf_counter() - t0,
    }


def _git_version() -> str | None:
    """The tlcore commit the tlcore side ran (``-dirty``: with uncommitted edits in the working tree)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


# -- CLI ----------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(result: dict[str, Any]) -> None:
    print(f"\ntarget val accuracy {result['target']}")
    print(f"{'side':<8}{'epochs':>7}{'best val':>10}{'to target':>12}{'total wall':>12}{'test acc':>10}  stopped by")
    for name in ("tlcore", "plain"):
        side = result.get(name)
        if side is None:
            continue
        vals = [e["val_accuracy"] for e in side.get("epochs", []) if e["val_accuracy"] is not None]
        print(
            f"{name:<8}{len(side.get('epochs', [])):>7}{_fmt(max(vals) if vals else None, '.3f'):>10}"
            f"{_fmt(side.get('time_to_target_s'), '.1f') + ' s':>12}{side['total_wall_s']:>10.1f} s"
            f"{_fmt(side.get('test_accuracy'), '.3f'):>10}  {side.get('stopped_by')}"
        )
    if result.get("ratio_plain_over_tlcore") is not None:
        print(f"plain / tlcore time to target: {result['ratio_plain_over_tlcore']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="dataset folder (or catalogue name), as for tl train")
    parser.add_argument("--preset", default="fine-tuning")
    parser.add_argument("--target", type=float, required=True, help="val accuracy to reach, e.g. 0.90")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="cap per side (tlcore is killed)")
    parser.add_argument("--epochs", type=int, help="override the preset's epoch count, on both sides")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to tl train")
    parser.add_argument("--only", choices=("tlcore", "plain"), help="run one side")
    parser.add_argument(
        "--full-schedule",
        action="store_true",
        help="both sides run their whole schedule after the target (and report test accuracy at its end); "
        "by default each stops at the end of the epoch that reaches the target",
    )
    parser.add_argument("--out", type=Path, help="JSON results")
    args = parser.parse_args()

    sets = list(args.set) + ([f"epochs={args.epochs}"] if args.epochs else [])
    host, config = resolve_config(args.preset, sets)
    if config.technique != "fine-tuning":
        parser.error(f"preset {args.preset!r} is {config.technique}: time to accuracy compares fine-tuning runs")
    from tlcore.data.prepare import prepare_data

    prepared = prepare_data(host, args.data, config)  # tlcore's own splits: the same val images on both sides
    splits = prepared.dataset.splits
    if prepared.dataset.task != "classification":
        parser.error("time to accuracy needs a classification dataset")
    max_s = args.max_minutes * 60
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "timm": timm.__version__,
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "command": shlex.join([sys.executable, *sys.argv]),
        "tlcore_git": _git_version(),
        "data": args.data,
        "preset": args.preset,
        "sets": sets,
        "target": args.target,
        "max_minutes": args.max_minutes,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "counts": {s: len(r) for s, r in splits.items()},
        "split_origin": prepared.split_origin,
    }

    def save() -> None:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2))

    with tempfile.TemporaryDirectory(prefix="tta-") as tmp:
        work = Path(tmp)
        cache = work / "cache"  # empty: no features or converted weights from an earlier run
        os.environ["TLCORE_CACHE"] = str(cache / "plain")
        env = {**os.environ, "TLCORE_CACHE": str(cache / "tlcore")}
        if args.only != "plain":
            result["tlcore"] = run_tlcore(
                args.preset, args.data, sets, args.target, max_s, work, env, stop_at_target=not args.full_schedule
            )
            save()
        if args.only != "tlcore":
            k = len(prepared.dataset.classes)
            result["plain"] = run_plain(host, config, splits, k, args.target, max_s, args.full_schedule)
    tl_t = result.get("tlcore", {}).get("time_to_target_s")
    plain_t = result.get("plain", {}).get("time_to_target_s")
    result["ratio_plain_over_tlcore"] = plain_t / tl_t if tl_t and plain_t else None
    save()
    print_table(result)


if __name__ == "__main__":
    main()
