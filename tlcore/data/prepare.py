"""From ``--data`` (a folder, a CSV or a catalogue name) to checked train/val/test records."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from tlcore.config import RunConfig
from tlcore.data.leakage import LeakageReport, find_leakage
from tlcore.data.splits import ensure_splits
from tlcore.data.val_size import small_val_classes
from tlcore.errors import DataError, TlcoreError, UnknownNameError
from tlcore.images import check_image
from tlcore.plugins import PluginHost
from tlcore.specs import DatasetAdapter, LabeledDataset, Record, read_rgb


class Change(NamedTuple):
    """One line about the data that the user did not ask for, and the ``report.json`` key that lists it."""

    message: str
    key: str  # under report.json's ``data``

    def warning(self, report: str = "report.json") -> str:
        return f"{self.message} (listed in {report} under data.{self.key}; --strict fails instead)"


@dataclass
class PreparedData:
    dataset: LabeledDataset
    adapter: str
    source: str  # what the user passed
    root: Path
    split_origin: dict[str, str]
    skipped: list[dict[str, str]] = field(default_factory=list)
    leakage: LeakageReport | None = None
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    label_conflicts: list[dict[str, Any]] = field(default_factory=list)
    missing_classes: dict[str, list[str]] = field(default_factory=dict)
    train_overlap: dict[str, Any] | None = None  # tl evaluate/stress: the scored images the run trained on
    small_val: list[dict[str, Any]] = field(default_factory=list)  # training: val classes too thin to choose on

    def changes(self) -> list[Change]:
        """Each kind of change made to the data as given (left out, merged, de-duplicated) and each split
        that lacks a class, in one line: the console's warnings, and under ``strict`` the error."""
        changes = input_changes(self.dataset, self.duplicates, self.label_conflicts)
        return changes + missing_class_changes(self.missing_classes, len(self.dataset.classes))

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
            "dropped": ds.dropped,
            "duplicates": self.duplicates,
            "label_conflicts": self.label_conflicts,
            "labels_trimmed": ds.labels_trimmed,
            "missing_classes": self.missing_classes,
            "small_val": self.small_val,
            **({"train_overlap": self.train_overlap} if self.train_overlap is not None else {}),
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


def _where(entry: dict[str, Any]) -> str:
    place = f"line {entry['line']}" if "line" in entry else str(entry.get("path", entry.get("row", "?")))
    if "line" in entry and entry.get("path"):
        place += f" ({entry['path']})"
    return f"{place}: {entry.get('reason', 'no reason given')}"


def _dropped_message(dropped: list[dict[str, Any]]) -> str:
    rows = [d for d in dropped if "line" in d]
    folders = [d for d in dropped if "line" not in d and "images" in d]
    other = [d for d in dropped if d not in rows and d not in folders]
    parts = []
    if rows:
        parts.append(f"{len(rows)} manifest row(s) without a path or label, e.g. {_where(rows[0])}")
    if folders:
        images = sum(int(d["images"]) for d in folders)
        parts.append(f"{images} image(s) in {len(folders)} folder(s) that are not read, e.g. {_where(folders[0])}")
    if other:
        parts.append(f"{len(other)} other item(s), e.g. {_where(other[0])}")
    return "left out " + "; ".join(parts)


def input_changes(
    ds: LabeledDataset, duplicates: list[dict[str, Any]], conflicts: list[dict[str, Any]]
) -> list[Change]:
    """What the adapter left out or trimmed, and what :func:`merge_duplicates` merged or dropped."""
    out = []
    if ds.dropped:
        out.append(Change(_dropped_message(ds.dropped), "dropped"))
    if ds.labels_trimmed:
        t = ds.labels_trimmed[0]
        out.append(
            Change(
                f"{len(ds.labels_trimmed)} label(s) written with surrounding whitespace are used without it, "
                f"e.g. {t['label']!r} as {t['used_as']!r} ({t['rows']} row(s))",
                "labels_trimmed",
            )
        )
    if duplicates:
        d = duplicates[0]
        out.append(
            Change(
                f"{len(duplicates)} file(s) listed more than once with the same label are used once, "
                f"e.g. {d['path']} ({d['copies']} times in {d['split']})",
                "duplicates",
            )
        )
    if conflicts:
        c = conflicts[0]
        out.append(
            Change(
                f"{len(conflicts)} file(s) listed with different labels are left out, "
                f"e.g. {c['path']} ({', '.join(map(repr, c['labels']))})",
                "label_conflicts",
            )
        )
    return out


def missing_class_changes(missing: dict[str, list[str]], n_classes: int) -> list[Change]:
    out = []
    for split, names in missing.items():
        line = f"the {split} split has no images of class(es) {', '.join(map(repr, names))}"
        if split == "val" and n_classes == 2:
            line += ", so no operating point is chosen (a threshold needs both classes in val)"
        out.append(Change(line, "missing_classes"))
    return out


def _target_key(target: Any) -> tuple[float | str, ...]:
    values = target if isinstance(target, tuple | list) else (target,)
    return tuple("nan" if math.isnan(float(v)) else float(v) for v in values)


def _label_name(ds: LabeledDataset, target: Any) -> Any:
    if ds.task == "classification":
        return ds.classes[int(target)]
    return list(target) if isinstance(target, tuple | list) else target


def merge_duplicates(ds: LabeledDataset) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records of one file: with one label, one record per split is kept (the others are ``duplicates``);
    with different labels, every record of the file is dropped (``label_conflicts``), as neither label
    can be trusted. The same file in two splits with one label is left to the leakage check."""
    by_path: dict[str, list[tuple[str, Record]]] = {}
    for split, records in ds.splits.items():
        for r in records:
            by_path.setdefault(r.path, []).append((split, r))
    conflicts = []
    for path, entries in by_path.items():
        labels = list({_target_key(r.target): r.target for _, r in entries}.values())
        if len(labels) > 1:
            splits = sorted({s for s, _ in entries})
            names = [_label_name(ds, t) for t in labels]
            conflicts.append({"path": path, "labels": names, "splits": splits, "rows": len(entries)})
    conflicting = {c["path"] for c in conflicts}
    duplicates = []
    for split, records in ds.splits.items():
        copies = Counter(r.path for r in records)
        seen: set[str] = set()
        kept = []
        for r in records:  # the first record of each file, in the adapter's order
            if r.path not in conflicting and r.path not in seen:
                seen.add(r.path)
                kept.append(r)
        duplicates += [
            {"split": split, "path": p, "copies": n} for p, n in copies.items() if n > 1 and p not in conflicting
        ]
        if records and not kept:
            raise DataError(
                f"every record of the {split} split names a file that is listed with different labels",
                "give each file one label",
            )
        ds.splits[split] = kept
    return duplicates, conflicts


def missing_classes(ds: LabeledDataset) -> dict[str, list[str]]:
    """Classification: the classes each split has no image of."""
    if ds.task != "classification":
        return {}
    out: dict[str, list[str]] = {}
    for split in ("train", "val", "test"):
        present = {r.target for r in ds.splits.get(split, [])}
        names = [name for k, name in enumerate(ds.classes) if k not in present]
        if names and split in ds.splits:
            out[split] = names
    return out


def _refuse_if_strict(config: RunConfig, changes: list[Change]) -> None:
    if config.strict and changes:
        first = changes[0]
        raise DataError(
            first.message,
            f"fix the data, or drop --strict to go on with it listed in report.json under data.{first.key}",
        )


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
    """Load, check and split ``data``; ``classes``/``task`` (a trained model's) must match when given.

    ``check_leakage`` is for training: it also looks for leakage between splits and for classes that a
    split lacks. Whatever is left out, merged or de-duplicated is kept in the result (:meth:`PreparedData.changes`)
    and refused under ``config.strict``."""
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
    duplicates, conflicts = merge_duplicates(ds)
    _refuse_if_strict(config, input_changes(ds, duplicates, conflicts))
    skipped = screen_images(ds, config.bad_images)
    origin = ensure_splits(ds, config.val_fraction, config.seed)
    # Training only: an evaluation may well use a site that lacks a class.
    missing = missing_classes(ds) if check_leakage else {}
    leakage = find_leakage(ds.splits, ds.reader, config.near_duplicate_distance) if check_leakage else None
    if leakage is not None and leakage.found and config.strict:
        raise DataError(leakage.summary(), "fix the splits, or drop --strict to train and list them in report.json")
    _refuse_if_strict(config, missing_class_changes(missing, len(ds.classes)))
    small_val = small_val_classes(ds) if check_leakage else []
    return PreparedData(
        ds, adapter.name, data, root, origin, skipped, leakage, duplicates, conflicts, missing, small_val=small_val
    )
