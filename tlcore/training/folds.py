"""Grouped k-fold cross-validation with a fold ensemble (``tl train --folds K``).

Train and val are pooled and cut into K folds whose groups (``Record.group``: a patient, a field) never
straddle two folds; classification folds also keep each class's share. Fold i trains a complete run in
``RUN/folds/fold-i`` with fold i as its val split, so every pooled image is scored once by a model that
never saw it (out-of-fold). The run directory then holds:

* ``report.json``: ``val`` = the out-of-fold scores of all pooled images, ``test`` = the ensemble's,
  ``folds`` = each fold's val scores and their mean and spread (the CV estimate);
* ``model.json`` naming the fold runs as ``members``: loading the run gives one model that averages them
  (:class:`tlcore.models.ensemble.FoldEnsemble`), so predict, evaluate, stress and export use the ensemble.

A small val split (a hundred images) chooses an epoch or a threshold badly; K folds use every image for
validation once, and the ensemble usually scores better than any one fold's model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

import tlcore
from tlcore import io_atomic, run_dirs
from tlcore.config import RunConfig
from tlcore.data.prepare import PreparedData, prepare_data
from tlcore.data.train_images import write_train_images
from tlcore.errors import ConfigError
from tlcore.metrics.intervals import multilabel_intervals
from tlcore.metrics.operating_point import evaluation_sections
from tlcore.models.objective import Objective, target_array
from tlcore.models.transfer import MODEL_META, load_meta, load_model
from tlcore.plugins import PluginHost
from tlcore.predict import Predictor
from tlcore.reports import run_outputs
from tlcore.reports.predictions import PREDICTIONS, read_predictions
from tlcore.run_dirs import FOLDS, REPORT, RUN_CONFIG
from tlcore.runtime import console, seed_everything, warn
from tlcore.specs import Record


def _group(record: Record) -> str:
    return record.group if record.group is not None else record.path  # no group: each image is its own


def assign_folds(records: list[Record], k: int, task: str, seed: int) -> np.ndarray:
    """Fold index (0..k-1) of each record; a group's records share a fold. Seeded, so reproducible."""
    groups = [_group(r) for r in records]
    n_groups = len(set(groups))
    if n_groups < k:
        raise ConfigError(
            f"folds={k} needs at least {k} groups (patients, fields or images) in train+val; there are {n_groups}",
            f"use folds={max(2, n_groups)} or fewer" if n_groups >= 2 else "add images",
        )
    fold = np.full(len(records), -1, dtype=np.int64)
    if task == "classification":
        from sklearn.model_selection import StratifiedGroupKFold

        y = np.array([int(r.target) for r in records])  # type: ignore[arg-type]
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        import warnings

        with warnings.catch_warnings():  # a class rarer than k images cannot be in every fold: fine
            warnings.simplefilter("ignore", UserWarning)
            for i, (_, held_out) in enumerate(splitter.split(np.zeros(len(records)), y, groups)):
                fold[held_out] = i
        return fold
    # Multilabel and regression: whole groups, shuffled, each to the fold with the fewest images so far.
    order = sorted(set(groups))
    np.random.default_rng(seed).shuffle(order)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    sizes = [0] * k
    for g in order:
        target = int(np.argmin(sizes))
        fold[members[g]] = target
        sizes[target] += len(members[g])
    return fold


def _fold_data(prepared: PreparedData, train: list[Record], val: list[Record], i: int, k: int) -> PreparedData:
    """The prepared data as fold ``i`` sees it. Data notes (duplicates, leakage...) were reported for the
    whole set once, in the ensemble's report; each fold run does not repeat them."""
    ds = prepared.dataset
    dataset = replace(ds, splits={"train": train, "val": val, "test": ds.splits["test"]})
    origin = {**prepared.split_origin, "val": f"fold {i + 1} of {k} of train+val (grouped)"}
    return replace(
        prepared, dataset=dataset, split_origin=origin, skipped=[], leakage=None, duplicates=[], label_conflicts=[],
        missing_classes={}, small_val=[],
    )  # fmt: skip


def _spread(reports: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation across folds of every scalar val metric that every fold has."""
    out: dict[str, dict[str, float]] = {}
    for key, first in reports[0]["val"].items():
        if key == "n" or not isinstance(first, int | float) or isinstance(first, bool):
            continue
        values = [r["val"].get(key) for r in reports]
        if all(isinstance(v, int | float) for v in values):
            arr = np.asarray(values, dtype=np.float64)
            out[key] = {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0}
    return out


def _train_fold(
    host: PluginHost,
    config: RunConfig,
    data: str,
    fold_dir: Path,
    preset: str | None,
    sub: PreparedData,
    run_training: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """Run fold ``fold_dir``; a finished one is kept (``--resume``), an interrupted one is continued."""
    if (fold_dir / REPORT).is_file() and not run_dirs.is_unfinished(fold_dir):
        return json.loads((fold_dir / REPORT).read_text())
    resumable = run_dirs.is_unfinished(fold_dir) and (fold_dir / run_dirs.CHECKPOINT_STATE).is_file()
    return run_training(
        host, config, data, fold_dir, preset, resume=resumable, prepared=sub,
        overwrite=fold_dir.exists() and not resumable,
    )  # fmt: skip


def run_folds(
    host: PluginHost,
    config: RunConfig,
    data: str,
    run_dir: Path,
    preset: str | None,
    run_training: Callable[..., dict[str, Any]],
    resume: bool = False,
    overwrite: bool = False,
    recipe: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``config.folds`` fold runs and write their ensemble's run directory. Returns its report.
    ``recipe``: the recipe file the settings came from, recorded in config.yaml and report.json.

    ``run_training`` trains one fold (tlcore.training.run passes itself: it is also what calls this, so the
    fold loop takes it as an argument rather than importing its caller)."""
    started, started_at = time.perf_counter(), datetime.now(UTC)
    k = config.folds
    if resume:
        saved = yaml.safe_load((run_dir / RUN_CONFIG).read_text())
        run_id = str(saved["run_id"])
        recipe = saved.get("recipe")
        if run_dirs.is_unfinished(run_dir) is False and (run_dir / REPORT).is_file():
            raise ConfigError(f"{run_dir} is a finished {k}-fold run: nothing to resume", "--overwrite trains it again")
    else:
        run_dirs.check_new_run(run_dir, overwrite)
        run_id = run_dirs.new_run_id()
    seed_everything(config.seed)
    prepared = prepare_data(host, data, config, check_leakage=True)
    run_dirs.check_outside_data(run_dir, prepared.root)
    ds = prepared.dataset
    if prepared.leakage is not None and prepared.leakage.found:
        warn(f"{prepared.leakage.summary()} (listed in report.json; --strict fails)")
    for change in prepared.changes():
        warn(change.warning())
    pool = ds.splits["train"] + ds.splits["val"]
    fold = assign_folds(pool, k, ds.task, config.seed)
    if not resume:
        run_dirs.begin(run_dir, run_id, replace=overwrite)
        io_atomic.write_text(
            run_dir / RUN_CONFIG,
            yaml.safe_dump(
                {
                    "run_id": run_id, "preset": preset, "data": data, "adapter": prepared.adapter,
                    "started": started_at.isoformat(), "task": ds.task, "classes": ds.classes,
                    "config": config.model_dump(), **({"recipe": dict(recipe)} if recipe is not None else {}),
                },
                sort_keys=False,
            ),
        )  # fmt: skip
        write_train_images(run_dir, pool, ds.reader)  # every pooled image trained some member
    member_config = config.model_copy(update={"folds": 0, "loggers": []})  # the ensemble is tracked, not each fold
    reports, members, vals, fold_seconds = [], [], [], []
    for i in range(k):
        val = [r for r, f in zip(pool, fold, strict=True) if f == i]
        train = [r for r, f in zip(pool, fold, strict=True) if f != i]
        fold_dir = run_dir / FOLDS / f"fold-{i + 1}"
        console.print(f"[bold]fold {i + 1}/{k}[/]: {len(train)} train, {len(val)} val images -> {fold_dir}")
        t0 = time.perf_counter()
        sub = _fold_data(prepared, train, val, i, k)
        with run_outputs.plot_skips_unsaid():  # plots skipped (no matplotlib): the ensemble says it once
            reports.append(_train_fold(host, member_config, data, fold_dir, preset, sub, run_training))
        fold_seconds.append(time.perf_counter() - t0)
        members.append(fold_dir.relative_to(run_dir).as_posix())
        vals.append(val)
    return _write_ensemble(
        host, run_dir, run_id, config, prepared, preset, reports, members, vals, fold_seconds, started, recipe
    )


def _write_ensemble(
    host: PluginHost, run_dir: Path, run_id: str, config: RunConfig, prepared: PreparedData, preset: str | None,
    reports: list[dict[str, Any]], members: list[str], vals: list[list[Record]], fold_seconds: list[float],
    started: float, recipe: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The ensemble's model.json, report.json (out-of-fold val, ensemble test) and predictions."""
    ds = prepared.dataset
    meta = load_meta(run_dir / members[0])
    objective = Objective.from_meta(meta)
    k_out = len(ds.classes)
    # Out-of-fold: each member's own scores of the fold it never saw, as its run wrote them.
    preds = [read_predictions(run_dir / m / PREDICTIONS, ds.task, ds.classes) for m in members]
    oof_records = [r for val in vals for r in val]
    oof = np.concatenate([p["val"].outputs for p in preds])
    y = {
        "val": target_array(ds.task, oof_records, k_out),
        "test": target_array(ds.task, ds.splits["test"], k_out),
    }
    meta_out = {**asdict(meta), "run_id": run_id, "members": members}
    io_atomic.write_text(run_dir / MODEL_META, json.dumps(meta_out, indent=2))
    # Test: the ensemble as saved, through the path every command takes, so `tl evaluate` reproduces it.
    model, ensemble_meta = load_model(host, run_dir, finished=False)
    predictor = Predictor.configured(model, ensemble_meta, config, prepared.adapter, config.adapter_options)
    test_out = predictor.predict([r.path for r in ds.splits["test"]], ds.reader)
    first = reports[0]
    report: dict[str, Any] = {
        "run_id": run_id,
        "tlcore_version": tlcore.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "preset": preset,
        "recipe": dict(recipe) if recipe is not None else None,
        "technique": config.technique,
        "strategy": first.get("strategy"),
        "task": first.get("task"),
        "val": objective.metrics(y["val"], oof),
        "test": objective.metrics(y["test"], test_out),
        "folds": {
            "k": len(members),
            "grouped_by": "Record.group (patient, field...); images without a group are their own",
            "members": members,
            "per_fold": [
                {
                    "fold": i + 1,
                    "train": r["data"]["counts"]["train"],
                    "val": r["data"]["counts"]["val"],
                    "val_metrics": {m: v for m, v in r["val"].items() if not isinstance(v, dict | list)},
                }
                for i, r in enumerate(reports)
            ],
            "cv": _spread(reports),
            "val_is": "out-of-fold: each train+val image scored by the fold model that did not train on it",
            "test_is": f"the {len(members)} fold models as one ensemble (their outputs averaged)",
        },
        "model": {**first["model"], "ensemble_of": len(members), "file": MODEL_META},
        "data": prepared.summary(),
        "leakage": prepared.leakage.as_dict() if prepared.leakage is not None else None,
        "shift": None,
        "training": {"folds": len(members)},
        "timing": {"fold_s": fold_seconds, "total_s": time.perf_counter() - started},
        "environment": first.get("environment"),
        "config": config.model_dump(),
    }
    if ds.task == "classification":
        report.update(
            evaluation_sections(
                y["val"], oof, y["test"], test_out, ds.classes, config.operating_point, config.positive_class,
                config.bootstrap, config.seed,
            )
        )  # fmt: skip
    elif ds.task == "multilabel" and config.bootstrap:
        report["intervals"] = multilabel_intervals(y["test"], test_out, ds.classes, n_boot=config.bootstrap,
                                                   seed=config.seed)  # fmt: skip
    io_atomic.write_text(run_dir / REPORT, json.dumps(report, indent=2, default=_json_default))
    paths = {"val": [r.path for r in oof_records], "test": [r.path for r in ds.splits["test"]]}
    run_outputs.write_run_outputs(run_dir, report, paths, y, {"val": oof, "test": test_out})
    run_dirs.finish(run_dir)
    return report


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
