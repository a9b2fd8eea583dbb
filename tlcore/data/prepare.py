"""From ``--data`` (a folder, a CSV or a catalogue name) to checked train/val/test records."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from tlcore.config import RunConfig
from tlcore.data.images import check_image
from tlcore.data.leakage import LeakageReport, find_leakage
from tlcore.data.splits import ensure_splits
from tlcore.errors import DataError, TlcoreError, UnknownNameError
from tlcore.plugins import PluginHost
from tlcore.specs import DatasetAdapter, LabeledDataset, Record, read_rgb


@dataclass
class PreparedData:
    dataset: LabeledDataset
    adapter: str
    source: str  # what the user passed
    root: Path
    split_origin: dict[str, str]
    skipped: list[dict[str, str]] = field(default_factory=list)
    leakage: LeakageReport | None = None

    def summary(self) -> dict[str, Any]:
        ds = self.dataset
        counts = {split: len(recs) for split, recs in ds.splits.items()}
        per_class = {split: _target_summary(ds, recs) for split, recs in ds.splits.items()}
        return {
            "source": self.source,
            "root": str(self.root),
            "adapter": self.adapter,
            "task": ds.task,
            "classes": ds.classes,
            "channels": ds.channels,
            "counts": counts,
            "per_class": per_class,
            "split_origin": self.split_origin,
            "skipped_images": self.skipped,
            **({"provenance": ds.provenance} if ds.provenance else {}),
        }


def _target_summary(ds: LabeledDataset, records: list[Record]) -> dict[str, Any]:
    """Classification: images per class; multilabel: positives (and missing) per label;
    regression: mean/std/min/max per target."""
    if ds.task == "classification":
        return {ds.classes[k]: v for k, v in sorted(Counter(r.target for r in records).items())}  # type: ignore[index]
    y = np.array([np.atleast_1d(np.asarray(r.target, dtype=np.float64)) for r in records]).reshape(
        len(records), len(ds.classes)
    )
    known = ~np.isnan(y)
    out: dict[str, Any] = {}
    for j, name in enumerate(ds.classes):
        col = y[known[:, j], j]
        if ds.task == "multilabel":
            out[name] = {"positives": int(col.sum()), "missing": int((~known[:, j]).sum())}
        else:
            stats = {"mean": col.mean, "std": col.std, "min": col.min, "max": col.max}
            out[name] = {key: float(fn()) if len(col) else None for key, fn in stats.items()}
    return out


def check_targets(ds: LabeledDataset) -> None:
    """Every record's target fits the task: a class index, one 0/1/NaN per label, or one number per target."""
    k = len(ds.classes)
    for records in ds.splits.values():
        for record in records:
            problem = _target_problem(ds.task, record.target, k)
            if problem:
                raise DataError(
                    f"{record.path}: {problem} (task {ds.task}, {k} classes)",
                    "fix the adapter: see LabeledDataset in tlcore/specs.py for the target of each task",
                )


def _target_problem(task: str, target: Any, k: int) -> str | None:
    if task == "classification":
        ok = isinstance(target, int | np.integer) and not isinstance(target, bool) and 0 <= target < k
        return None if ok else f"target {target!r} is not a class index 0..{k - 1}"
    values = target if isinstance(target, tuple | list) else (target,)
    if not all(isinstance(v, Real) and not isinstance(v, bool) for v in values):
        return f"target {target!r} is not numeric"
    if len(values) != k:
        return f"target {target!r} has {len(values)} value(s), expected {k}"
    if task == "multilabel" and not all(math.isnan(v) or v in (0, 1) for v in values):
        return f"target {target!r} holds values other than 0.0, 1.0 and NaN"
    if task == "regression" and any(math.isinf(v) for v in values):
        return f"target {target!r} is infinite"
    return None


def _locate(host: PluginHost, data: str) -> tuple[Path, str | None, dict[str, Any]]:
    """A local path, or a catalogue dataset (downloaded on first use). Returns root, adapter, options."""
    path = Path(data).expanduser()
    if path.exists():
        return path.resolve(), None, {}
    catalog = host.catalog
    if data in catalog.registry:
        entry = catalog.get(data)
        return catalog.resolve(data), entry.adapter, dict(entry.adapter_options)
    if "/" in data or data.startswith(".") or Path(data).suffix:
        raise DataError(
            f"data path {data} does not exist", "pass an existing folder/CSV or a name from `tl list datasets`"
        )
    raise UnknownNameError("dataset", data, catalog.registry.names())


def _choose_adapter(host: PluginHost, root: Path, name: str) -> DatasetAdapter:
    if name != "auto":
        return host.adapters.get(name)
    candidates = sorted((e.item for e in host.adapters), key=lambda a: -a.priority)
    for adapter in candidates:
        try:
            if adapter.detect is not None and adapter.detect(root):
                return adapter
        except Exception:  # a plugin's broken detect() only means "not recognised"; the others still try
            continue
    raise DataError(
        f"no dataset adapter recognises {root}",
        "use <root>/<split>/<class>/<image> folders or a CSV manifest, or name one with --set adapter=NAME",
    )


def screen_images(ds: LabeledDataset, policy: str) -> list[dict[str, str]]:
    """Find unreadable images; drop them (policy ``skip``) or stop (``fail``). Never silent."""
    if ds.reader is not read_rgb:
        return []  # custom readers (DICOM, NIfTI, ...) report their own errors when read
    skipped: list[dict[str, str]] = []
    for split, records in ds.splits.items():
        keep = []
        for record in records:
            problem = check_image(record.path)
            if problem is None:
                keep.append(record)
                continue
            if policy == "fail":
                raise DataError(
                    f"unreadable image {record.path}: {problem}",
                    "remove it, or --set bad_images=skip to skip such files",
                )
            skipped.append({"split": split, "path": record.path, "reason": problem})
        if records and not keep:
            raise DataError(
                f"every image of the {split} split is unreadable ({len(records)} files, e.g. {records[0].path})",
                "replace the files, or remove the split folder so it is carved out of train",
            )
        ds.splits[split] = keep
    return skipped


def prepare_data(
    host: PluginHost,
    data: str,
    config: RunConfig,
    classes: list[str] | None = None,
    check_leakage: bool = False,
    task: str | None = None,
) -> PreparedData:
    """Load, check and split ``data``; ``classes``/``task`` (a trained model's) must match when given."""
    root, catalog_adapter, catalog_options = _locate(host, data)
    adapter_name = config.adapter if config.adapter != "auto" or catalog_adapter is None else catalog_adapter
    adapter = _choose_adapter(host, root, adapter_name)
    options = {**catalog_options, **config.adapter_options}
    try:
        ds = adapter.load(root, options)
    except TlcoreError:
        raise
    except Exception as exc:
        raise DataError(f"adapter {adapter.name!r} failed on {root}: {type(exc).__name__}: {exc}") from exc
    if task is not None and ds.task != task:
        raise DataError(f"{root} is a {ds.task} dataset, the model was trained for {task}")
    if classes is not None and ds.classes != classes:
        raise DataError(f"{root} has classes {ds.classes}, the model was trained on {classes}")
    check_targets(ds)
    skipped = screen_images(ds, config.bad_images)
    origin = ensure_splits(ds, config.val_fraction, config.seed)
    leakage = find_leakage(ds.splits, ds.reader, config.near_duplicate_distance) if check_leakage else None
    if leakage is not None and leakage.found and config.strict:
        raise DataError(leakage.summary(), "fix the splits, or drop --strict to train and list them in report.json")
    return PreparedData(ds, adapter.name, data, root, origin, skipped, leakage)
