"""Build the carried folder for the GPU validation run: ``.bench/advise/`` (git-ignored).

The device machine receives at most 64 MiB (working tree + carried paths) and has no network,
so this folder holds, within that budget:

* ``weights/<backbone>.safetensors.xz``: the offline EfficientNet-Lite0/1/2 ImageNet weights in
  timm naming, with convolution and linear weights stored as bfloat16 and everything else
  (BatchNorm, biases) as float32, then xz-compressed. The GPU computes in bf16 autocast, which
  rounds those same weights to bf16 anyway, so the forward pass sees identical values.
* ``data/<name>/<split>/<class>/``: byte-identical copies of a stratified, seeded subset of each
  dataset (train capped per dataset, val capped, test kept whole): the full sets do not fit.

Run here, then carry ``.bench/advise`` and ``.bench/wheels`` (see benchmarks/advise_gpu.sh):

    .venv/bin/python benchmarks/advise_prepare.py
"""

from __future__ import annotations

import argparse
import lzma
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from safetensors.torch import load_file, save

from tlcore.advice.sampling import stratified_subsample
from tlcore.config import RunConfig
from tlcore.data.prepare import prepare_data
from tlcore.models.weights import resolve_weights
from tlcore.plugins import get_host

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MIB = 64
LITE = ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2")
#: name -> (source, train cap, val cap); test is copied whole.
DATASETS = {
    "beans": ("/work/shared/datasets/beans", 300, None),
    "chest_xray_pneumonia": ("/work/shared/datasets/chest_xray_pneumonia", 600, 300),
}


def export_weights(dest: Path) -> None:
    host = get_host()
    dest.mkdir(parents=True, exist_ok=True)
    for name in LITE:
        spec = host.backbone(name)
        source = resolve_weights("default", spec.timm_name, spec.default_weights, spec.weights_file)
        assert source.file is not None
        state = load_file(str(source.file))
        packed = {k: v.to(torch.bfloat16) if v.is_floating_point() and v.ndim >= 2 else v for k, v in state.items()}
        (dest / f"{name}.safetensors.xz").write_bytes(lzma.compress(save(packed), preset=9))


def copy_subsets(dest: Path, seed: int) -> None:
    host = get_host()
    config = RunConfig(progress=False)
    for name, (source, train_cap, val_cap) in DATASETS.items():
        prepared = prepare_data(host, source, config)
        classes = prepared.dataset.classes
        target = dest / name
        if target.exists():
            shutil.rmtree(target)
        for split, records in prepared.dataset.splits.items():
            cap = {"train": train_cap, "val": val_cap}.get(split)
            chosen = stratified_subsample(records, cap, seed) if cap else records
            for r in chosen:
                folder = target / split / classes[int(r.target)]  # type: ignore[arg-type]
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy2(r.path, folder / Path(r.path).name)
            print(f"{name}/{split}: {len(chosen)} of {len(records)} images")


def size_mib(*paths: Path) -> float:
    return sum(f.stat().st_size for p in paths for f in p.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "advise")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    export_weights(args.out / "weights")
    copy_subsets(args.out / "data", args.seed)
    wheels = ROOT / ".bench" / "wheels"
    total = size_mib(args.out, wheels)
    print(f"carried: {size_mib(args.out):.1f} MiB in {args.out}, {size_mib(wheels):.1f} MiB in {wheels}")
    print(f"total {total:.1f} MiB of the {LIMIT_MIB} MiB limit (the tracked tree adds about 1 MiB)")
    if total > LIMIT_MIB - 3:
        raise SystemExit("too large to travel: lower the caps in DATASETS")


if __name__ == "__main__":
    main()
