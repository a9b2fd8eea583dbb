"""Honest splits: a missing val/test split is carved out of train, stratified, with a fixed seed,
and grouped (patient, field) when records carry a group so no group lands in two splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from tlcore.errors import DataError
from tlcore.specs import LabeledDataset, Record


def _carve(records: Sequence[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    if len(records) < 4:
        raise DataError(f"only {len(records)} training images: too few to split off a validation set")
    idx = np.arange(len(records))
    groups = [r.group for r in records]
    if all(g is not None for g in groups):
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        keep, held = next(splitter.split(idx, groups=groups))
    else:
        # Stratified for class indices only; multilabel tuples and regression values are split at random.
        targets = [r.target for r in records]
        stratify = None
        if all(isinstance(t, int) for t in targets):
            counts = np.unique(np.asarray(targets, dtype=np.int64), return_counts=True)[1]
            n_held = max(1, round(fraction * len(records)))
            feasible = counts.min() >= 2 and len(counts) <= n_held and len(counts) <= len(records) - n_held
            stratify = targets if feasible else None
        keep, held = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    return [records[i] for i in sorted(keep)], [records[i] for i in sorted(held)]


def ensure_splits(ds: LabeledDataset, val_fraction: float, seed: int) -> dict[str, str]:
    """Fill in missing ``val``/``test`` splits in place; returns where each split came from."""
    origin = {name: "given" for name in ds.splits}
    if "test" not in ds.splits:
        ds.splits["train"], ds.splits["test"] = _carve(ds.splits["train"], val_fraction, seed)
        origin["test"] = f"carved from train ({val_fraction:.0%}, seed {seed})"
    if "val" not in ds.splits:
        ds.splits["train"], ds.splits["val"] = _carve(ds.splits["train"], val_fraction, seed + 1)
        origin["val"] = f"carved from train ({val_fraction:.0%}, seed {seed + 1})"
    if ds.task == "classification":
        present = {r.target for r in ds.splits["train"]}
        if len(present) < 2:
            raise DataError("the train split has a single class", "a classifier needs at least two classes")
    return origin
