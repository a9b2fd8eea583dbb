"""A CSV manifest with patient-proxy groups for a split image folder whose patient ids are not published.

For slice sets such as ``ct_lung_iqothnccd`` (``<split>/<class>/<name>_<number>.jpg``), where a scan's slices
are numbered consecutively and look alike: inside each class, files are sorted by number and consecutive
numbers whose 64-bit pHash differ by at most ``--chain-bits`` are chained into one group; groups that share a
near-copy (at most ``--merge-bits``) are merged. This is the proxy the data set's SOURCE.md describes for its
split, rebuilt from the staged files, so ``tl train --folds K`` on the manifest keeps a scan's slices in one fold
(an image folder alone gives every image its own group, and the out-of-fold score would see slices of the
scans it trained on).

    python benchmarks/grouped_manifest.py ../shared/datasets/ct_lung_iqothnccd .bench/grouped/ct_lung_iqothnccd
    tl train --preset feature-extraction --data .bench/grouped/ct_lung_iqothnccd --folds 3

The output folder receives ``manifest.csv`` (path, label, split, group) and ``images``, a link to the data; the
script prints how many groups each split and class has, and whether any group spans two splits.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd

from tlcore.data.leakage import perceptual_hash

NUMBER = re.compile(r"(\d+)(?=\.[^.]+$)")


def _distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def groups_of_class(files: list[Path], chain_bits: int, merge_bits: int) -> list[int]:
    """Group index of each file (sorted by the number in its name) by the chain-and-merge rule."""
    hashes = [perceptual_hash(str(f)) for f in files]
    numbers = [int(m.group(1)) if (m := NUMBER.search(f.name)) else -1 for f in files]
    parent = list(range(len(files)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(1, len(files)):
        if numbers[i] == numbers[i - 1] + 1 and _distance(hashes[i], hashes[i - 1]) <= chain_bits:
            parent[find(i)] = find(i - 1)
    h = np.array(hashes, dtype=np.uint64)
    for i in range(len(files)):
        near = np.nonzero(np.bitwise_count(h ^ h[i]) <= merge_bits)[0]
        for j in near:
            parent[find(int(j))] = find(i)
    return [find(i) for i in range(len(files))]


def build(root: Path, chain_bits: int, merge_bits: int) -> pd.DataFrame:
    splits = [d for d in sorted(root.iterdir()) if d.is_dir()]
    labels = sorted({c.name for split in splits for c in split.iterdir() if c.is_dir()})
    rows = []
    for label in labels:  # a scan's slices may sit in any split: group each class across all of them
        files = sorted(
            (f for split in splits if (split / label).is_dir() for f in (split / label).iterdir()),
            key=lambda f: (int(m.group(1)) if (m := NUMBER.search(f.name)) else -1, f.name),
        )
        for f, g in zip(files, groups_of_class(files, chain_bits, merge_bits), strict=True):
            split = f.parent.parent.name
            path = f"images/{f.relative_to(root).as_posix()}"  # through the link to the data, inside the data root
            rows.append({"path": path, "label": label, "split": split, "group": f"{label}-{g}"})
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="a <split>/<class>/<file> folder")
    p.add_argument("output", type=Path, help="folder for manifest.csv")
    p.add_argument("--chain-bits", type=int, default=20)
    p.add_argument("--merge-bits", type=int, default=4)
    args = p.parse_args()
    df = build(args.data, args.chain_bits, args.merge_bits)
    args.output.mkdir(parents=True, exist_ok=True)
    link = args.output / "images"
    if not link.exists():
        link.symlink_to(args.data.resolve(), target_is_directory=True)
    df.to_csv(args.output / "manifest.csv", index=False)
    spans = df.groupby("group")["split"].nunique()
    print(df.groupby(["split", "label"])["group"].nunique().unstack().to_string())
    print(f"{df['group'].nunique()} groups, {len(df)} images; groups in two or more splits: {int((spans > 1).sum())}")


if __name__ == "__main__":
    main()
