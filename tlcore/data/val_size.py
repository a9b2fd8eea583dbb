"""Is the val split large enough to choose on? Classes (or labels) with too few val images, before training.

A run keeps what scores best on val: the head's regularisation, the epoch with ``checkpoint=best``, a
binary operating point; users then rank runs by their val score. With a handful of images of one class,
one image moves that class's recall by a large step, and when the images come from a few patients (or
scans, fields) one patient decides it: val then ranks by chance. ``tl train --folds K`` scores every
train+val image out of fold instead, which is what a split this small needs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from tlcore.specs import LabeledDataset, Record

#: Fewer val images of a class than this: one image moves its recall by more than 0.05.
MIN_IMAGES = 20
#: Fewer groups (patients...) than this among a class's val images: one group decides a fifth of its recall.
MIN_GROUPS = 5


def small_val_classes(ds: LabeledDataset) -> list[dict[str, Any]]:
    """Each class (multilabel: each label's positives; regression: the whole split) whose val images are
    fewer than ``MIN_IMAGES``, or come from fewer than ``MIN_GROUPS`` groups when the records name groups.
    Each entry: ``class``, ``images`` and ``groups`` (None when the records carry no groups)."""
    records = ds.splits.get("val", [])
    if not records:
        return []
    members = {"(all targets)": records} if ds.task == "regression" else _members(ds, records)
    out = []
    for name, recs in members.items():
        groups = _group_count(recs)
        if len(recs) < MIN_IMAGES or (groups is not None and groups < MIN_GROUPS):
            out.append({"class": name, "images": len(recs), "groups": groups})
    return out


def small_val_warning(entries: list[dict[str, Any]], ds: LabeledDataset) -> str | None:
    """One line for the console: which classes are thin, what one image is worth, and what to do."""
    if not entries:
        return None
    listed = ", ".join(_describe(e) for e in entries[:4])
    if len(entries) > 4:
        listed += f" and {len(entries) - 4} more"
    kind = "val images" if ds.task != "multilabel" else "positive val images"
    line = f"the val split is small to choose on ({kind}: {listed})"
    if ds.task == "classification":
        fewest = min(e["images"] for e in entries)
        step = 1.0 / (len(ds.classes) * max(fewest, 1))
        line += f": one image moves balanced accuracy by {step:.3f}"
    return line + "; --folds 5 scores every train+val image out of fold (listed in report.json under data.small_val)"


def _members(ds: LabeledDataset, records: list[Record]) -> dict[str, list[Record]]:
    by_class: dict[str, list[Record]] = defaultdict(list)
    if ds.task == "classification":
        for r in records:
            by_class[ds.classes[int(r.target)]].append(r)  # type: ignore[arg-type]
        # A class absent from val is reported by the missing-class check, not here.
        return {name: by_class[name] for name in ds.classes if name in by_class}
    for r in records:  # multilabel: the records positive for each label
        values = r.target if isinstance(r.target, tuple | list) else (r.target,)
        for name, v in zip(ds.classes, values, strict=False):
            if not math.isnan(float(v)) and float(v) == 1.0:
                by_class[name].append(r)
    return {name: by_class.get(name, []) for name in ds.classes}


def _group_count(records: list[Record]) -> int | None:
    """Distinct groups among the records (an image without a group is its own); None without any groups."""
    if not any(r.group is not None for r in records):
        return None
    return len({r.group if r.group is not None else f"\0{r.path}" for r in records})


def _describe(entry: dict[str, Any]) -> str:
    groups = entry["groups"]
    where = f" from {groups} group{'s' if groups != 1 else ''}" if groups is not None else ""
    return f"{entry['class']!r} {entry['images']}{where}"
