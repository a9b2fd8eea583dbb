"""One training run, end to end, as named steps: open (every check, nothing written) -> begin (the run
directory) -> fit (frozen features or fine-tuning) -> score (the saved model, through tlcore.predict)
-> report -> write."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

import tlcore
from tlcore import cpu_memory, io_atomic, run_dirs
from tlcore.config import RunConfig
from tlcore.data.prepare import PreparedData, prepare_data
from tlcore.data.train_images import write_train_images
from tlcore.data.val_size import small_val_warning
from tlcore.errors import ConfigError
from tlcore.metrics.intervals import multilabel_intervals
from tlcore.metrics.operating_point import evaluation_sections
from tlcore.metrics.tasks import best_of
from tlcore.models import hub_models
from tlcore.models.backbones import count_parameters, stage_groups
from tlcore.models.objective import Objective, target_array
from tlcore.models.transfer import MODEL_FILE, TransferModel, load_model, save_model
from tlcore.models.weights import WeightsSource
from tlcore.plugins import PluginHost
from tlcore.predict import Predictor
from tlcore.run_dirs import (
    RUN_CONFIG,
    check_new_run,
    check_outside_data,
    check_resume,
    check_same_data,
    check_same_settings,
)
from tlcore.runtime import prepare_model, seed_everything, warn
from tlcore.training import distributed
from tlcore.training.finetune import check_state_fits, fine_tune, load_resume_state
from tlcore.training.folds import run_folds
from tlcore.training.pipeline import Pipeline
from tlcore.training.probe import ProbeResult, fit_sklearn_head, fit_torch_head
from tlcore.training.tracking import Tracker, open_tracker

REPORT = "report.json"


def run_training(
    host: PluginHost,
    config: RunConfig,
    data: str,
    run_dir: Path,
    preset: str | None,
    resume: bool = False,
    prepared: PreparedData | None = None,
    overwrite: bool = False,
    recipe: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train, evaluate on val and test, and write the run directory. Returns the report.

    ``recipe``: the recipe file the settings came from (its path and SHA-256, tlcore.recipes), recorded in
    config.yaml and report.json; a resumed run keeps the one it recorded.

    ``prepared`` skips loading ``data`` (a caller that already holds it, e.g. on a label subset).
    ``run_dir`` must be new or empty, or hold a run that ``overwrite`` replaces or ``resume`` continues;
    every check that can refuse the run comes before its first file is written (tlcore.run_dirs).
    ``config.folds`` >= 2 trains a grouped K-fold ensemble instead (tlcore.training.folds)."""
    if config.folds == 1:
        raise ConfigError("folds=1 is one fold: there is nothing to cross-validate", "use folds=0 (off) or 2 and more")
    # The run's loggers (an unknown name or a missing package fails here, before any work); one process reports.
    tracker = open_tracker(host, config, run_dir)
    if not distributed.current().is_main:
        tracker = Tracker([])
    if config.folds >= 2:
        if prepared is not None:
            raise ConfigError("folds cannot be combined with data prepared by the caller", "set folds=0")
        return tracker.ensemble(run_folds)(
            host, config, data, run_dir, preset, run_training, resume=resume, overwrite=overwrite, recipe=recipe
        )
    run = _open(host, config, data, run_dir, preset, resume, prepared, overwrite)
    run.recipe = dict(recipe) if recipe is not None else run.recipe
    _begin(run)
    run.tracker = tracker
    tracker.start(config, run_dir, resumed=resume)
    with tracker.closing():  # an error ends the tracked run as FAILED, Ctrl-C as KILLED
        fitted = _fit_features(run) if config.technique == "feature-extraction" else _fine_tune(run)
        if fitted is None:
            return {}  # the other torchrun processes are done: rank 0 evaluates and writes the run
        val_proba, test_proba = _score_saved_model(run)
        report = build_report(run, fitted, val_proba, test_proba)
        _write(run, report, val_proba, test_proba)
    tracker.finish(run_dir, report)  # after the run is complete: a logger can never leave it unfinished
    return report


@dataclass
class TrainingRun:
    """What every step of one run shares, all known before its first file is written."""

    host: PluginHost
    config: RunConfig
    data: str  # as the user named it (config.yaml records it)
    run_dir: Path
    preset: str | None
    resume: bool
    overwrite: bool
    run_id: str
    started: float  # perf_counter at the start: timing's origin
    started_at: datetime
    prepared: PreparedData
    pipe: Pipeline
    objective: Objective
    y: dict[str, np.ndarray]  # targets per split
    state: dict[str, Any] | None  # the checkpoint a fine-tuning resume continues from
    timing: dict[str, Any] = field(default_factory=dict)
    tracker: Tracker = field(default_factory=lambda: Tracker([]))  # the run's loggers (tlcore.training.tracking)
    recipe: dict[str, Any] | None = None  # the recipe file's path and SHA-256 (config.yaml, report.json)


@dataclass
class Fitted:
    """What fitting adds to the report: its ``training`` section and the covariate-shift check."""

    training: dict[str, Any]
    shift: dict[str, Any] | None


# -- open: every check that can refuse the run, before anything is written ---------------------------


def _open(
    host: PluginHost,
    config: RunConfig,
    data: str,
    run_dir: Path,
    preset: str | None,
    resume: bool,
    prepared: PreparedData | None,
    overwrite: bool,
) -> TrainingRun:
    started, started_at = time.perf_counter(), datetime.now(UTC)
    saved = read_run_config(run_dir) if resume else {}
    if resume:
        check_same_settings(run_dir, saved, config.model_dump())
        run_id = check_resume(run_dir, saved, config.technique, config.epochs)
    else:
        check_new_run(run_dir, overwrite)
        run_id = run_dirs.new_run_id()
    seed_everything(config.seed)
    if prepared is None:
        prepared = prepare_data(host, data, config, check_leakage=True)
    if not resume:
        check_outside_data(run_dir, prepared.root)
    task, classes = prepared.dataset.task, prepared.dataset.classes
    y = {s: target_array(task, r, len(classes)) for s, r in prepared.dataset.splits.items()}
    objective = Objective.for_training(task, classes, config, y["train"])
    _warn_about_data(prepared, objective)
    pipe = Pipeline(host, config, prepared)
    pipe.run_id = run_id
    first_head = pipe.new_head()  # a head that does not support the task says so now, before any work
    state: dict[str, Any] | None = None
    if resume:  # a resume that would fail or mix two runs' files is refused before anything is written
        check_same_data(run_dir, saved, task, classes, pipe.in_chans)
        if config.technique == "fine-tuning":
            state = load_resume_state(run_dir)
            if state is not None:
                check_state_fits(TransferModel(pipe.backbone, first_head), state, run_dir)
    # Advice, not a problem with the input: said once the run is known to go ahead.
    small_val = small_val_warning(prepared.small_val, prepared.dataset)
    if small_val:
        warn(small_val)
    run = TrainingRun(
        host, config, data, run_dir, preset, resume, overwrite, run_id, started, started_at, prepared, pipe,
        objective, y, state,
    )  # fmt: skip
    run.timing["setup_s"] = time.perf_counter() - started
    run.recipe = saved.get("recipe")  # a resumed run keeps the recipe it was started from
    return run


def _warn_about_data(prepared: PreparedData, objective: Objective) -> None:
    if objective.monitor_note:
        warn(objective.monitor_note)
    if prepared.skipped:
        warn(f"skipped {len(prepared.skipped)} unreadable image(s); listed in report.json")
    if prepared.leakage is not None and prepared.leakage.found:
        warn(f"{prepared.leakage.summary()} (listed in report.json; --strict fails)")
    for change in prepared.changes():  # left out, merged, de-duplicated, a class missing from a split
        warn(change.warning())


# -- begin: the run directory, once data and model are known to be usable ---------------------------


def _begin(run: TrainingRun) -> None:
    """The unfinished marker, config.yaml and the train images' digests (rank 0 alone under torchrun):
    a failed start leaves no run directory behind."""
    distributed.current().sum(0.0)  # every process has checked run_dir before rank 0 writes to it
    if not distributed.current().is_main:
        return
    run_dirs.begin(run.run_dir, run.run_id, replace=run.overwrite and not run.resume)  # the marker comes first
    dataset = run.prepared.dataset
    saved = {
        "run_id": run.run_id,
        "preset": run.preset,
        "data": run.data,
        "adapter": run.prepared.adapter,
        "started": run.started_at.isoformat(),  # wall clock at which this process began: elapsed_s's origin
        "task": dataset.task,
        "classes": dataset.classes,
        "in_chans": run.pipe.in_chans,
        "config": run.config.model_dump(),
    }
    if run.recipe is not None:
        saved["recipe"] = run.recipe
    io_atomic.write_text(run.run_dir / RUN_CONFIG, yaml.safe_dump(saved, sort_keys=False))
    # What this run trained on: `tl evaluate` warns when it scores any of these images.
    write_train_images(run.run_dir, dataset.splits["train"], dataset.reader)


# -- fit: frozen features and a head, or fine-tuning ------------------------------------------------


def _features(run: TrainingRun, split: str) -> np.ndarray:
    out = run.pipe.features(run.prepared.dataset.splits[split], label=f"features {split}")
    timing = run.timing
    timing["feature_extraction_s"] = timing.get("feature_extraction_s", 0.0) + out.seconds
    if out.cached:
        timing.setdefault("feature_cache_hits", []).append(split)
    if split == "train" and not out.cached:
        timing["backbone_epoch_s"] = out.seconds
    return out.features


def _augmented_views(run: TrainingRun) -> tuple[np.ndarray, np.ndarray]:
    """K augmented views of every training image, as extra feature rows (cached per view and seed)."""
    records = run.prepared.dataset.splits["train"]
    feats = []
    for view in range(run.config.feature_views):
        out = run.pipe.features(records, label=f"augmented view {view + 1}", augmented_view=view)
        run.timing["feature_extraction_s"] = run.timing.get("feature_extraction_s", 0.0) + out.seconds
        feats.append(out.features)
    return np.concatenate(feats), np.concatenate([run.y["train"]] * len(feats))


def _shift(run: TrainingRun, x: dict[str, np.ndarray]) -> dict[str, Any]:
    """The covariate-shift check on pretrained features (tlcore.metrics.shift), and its warning."""
    from tlcore.metrics.shift import shift_report, shift_warning

    start = time.perf_counter()
    dataset = run.prepared.dataset
    single_label = dataset.task == "classification"
    report = shift_report(
        x, run.y if single_label else None, dataset.classes if single_label else None, run.config.seed
    )
    report["seconds"] = time.perf_counter() - start
    warning = shift_warning(report)
    if warning and distributed.current().is_main:
        warn(warning)
    return report


def _probe(run: TrainingRun, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, head: Any) -> ProbeResult:
    classes, y_val = run.prepared.dataset.classes, run.y["val"]
    if isinstance(head, nn.Module):
        return fit_torch_head(head, x_train, y_train, x_val, y_val, classes, run.config, run.objective)
    return fit_sklearn_head(head, x_train, y_train, len(classes), run.objective)


def _fit_features(run: TrainingRun) -> Fitted:
    """Frozen backbone: features of every split (cached), a head fitted on train and chosen on val."""
    from tlcore.reports import run_outputs  # the size curve: a run output that never fails the run

    config, pipe, timing = run.config, run.pipe, run.timing
    x = {s: _features(run, s) for s in ("train", "val", "test")}
    shift = _shift(run, x) if config.shift_check else None
    x_train, y_train = x["train"], run.y["train"]
    if config.feature_views:
        xa, ya = _augmented_views(run)
        x_train, y_train = np.concatenate([x_train, xa]), np.concatenate([y_train, ya])
    result = _probe(run, x_train, y_train, x["val"], pipe.new_head())
    for row in result.history:  # a torch head's epochs (a scikit-learn head has none)
        run.tracker.epoch(row)
    timing["head_fit_s"] = result.fit_seconds
    timing["head_epoch_s"] = result.epoch_seconds
    training: dict[str, Any] = {"head_history": result.history}
    meta = pipe.meta("linear" if pipe.head_spec.kind == "sklearn" else config.head, run.objective)
    if result.head is not None:
        save_model(TransferModel(pipe.backbone, result.head), meta, run.run_dir)
    else:
        _save_estimator(result.estimator, run.run_dir)
        save_model(TransferModel(pipe.backbone, nn.Identity()), pipe.meta(config.head, run.objective), run.run_dir)
    if not result.history:
        # A scikit-learn head has no epochs: its learning curve is over the training-set size instead.
        training["head_size_curve"] = run_outputs.head_size_curve(
            lambda xs, ys: _probe(run, xs, ys, x["val"], pipe.new_head()),
            (x_train, y_train), (x["val"], run.y["val"]), run.objective.metrics, result, config.seed,
        )  # fmt: skip
    return Fitted(training, shift)


def _fine_tune(run: TrainingRun) -> Fitted | None:
    """Fine-tuning (after a linear probe with ``strategy=lp-ft``); None on the other torchrun processes."""
    config, pipe, timing, y = run.config, run.pipe, run.timing, run.y
    splits = run.prepared.dataset.splits
    head = pipe.new_head()
    model = TransferModel(pipe.backbone, head)
    resuming = run.state is not None
    training: dict[str, Any] = {}
    shift = None
    # Fine-tuning decodes every image once per epoch: decode once into the cache instead.
    every = [r for name in ("train", "val", "test") for r in splits[name]]
    training["decoded_cache"] = pipe.use_decoded_cache(every) if config.decode_cache else None
    if training["decoded_cache"] is not None:
        timing["decode_cache_s"] = training["decoded_cache"]["seconds"]
    if config.strategy == "lp-ft" and not resuming:
        # Linear probe first (on cached features), so fine-tuning starts from a good head and
        # the pretrained features are not distorted by a random one (Kumar et al., 2022).
        x = {s: _features(run, s) for s in ("train", "val")}
        if config.shift_check:  # before fine-tuning changes the backbone in place
            shift = _shift(run, {**x, "test": _features(run, "test")})
        classes = run.prepared.dataset.classes
        probe = fit_torch_head(head, x["train"], y["train"], x["val"], y["val"], classes, config, run.objective)
        timing["linear_probe_s"] = probe.fit_seconds
        timing["head_epoch_s"] = probe.epoch_seconds
        metric = "accuracy" if run.objective.task == "classification" else run.objective.monitor
        values = [h[f"val_{metric}"] for h in probe.history if h.get(f"val_{metric}") is not None]
        training[f"linear_probe_val_{metric}"] = best_of(metric)(values) if values else None
    model = prepare_model(model, pipe.device)
    for row in run.state["history"] if run.state is not None else []:  # a resumed run's earlier epochs
        run.tracker.epoch(row)
    fit = fine_tune(
        model,
        stage_groups(pipe.backbone),
        pipe.dataset(splits["train"], train=True),
        pipe.loader(splits["val"]),
        y["val"],
        run.prepared.dataset.classes,
        config,
        pipe.device,
        run.run_dir,
        resume=run.resume,
        workers=pipe.workers,
        objective=run.objective,
        run_started=run.started,
        state=run.state,
        on_epoch=run.tracker.epoch,
    )
    if not distributed.current().is_main:
        return None
    timing["train_s"] = fit.train_seconds
    timing["epochs_run"] = len(fit.history)
    timing["train_images_per_s"] = fit.images_seen / max(fit.train_seconds, 1e-9)
    training.update(best_epoch=fit.best_epoch, stopped_early=fit.stopped_early)
    save_model(model, pipe.meta(config.head, run.objective), run.run_dir)
    return Fitted(training, shift)


# -- score, report, write ---------------------------------------------------------------------------


def _score_saved_model(run: TrainingRun) -> tuple[np.ndarray, np.ndarray]:
    """Val and test outputs of the model as saved, through the path every command takes (tlcore.predict):
    report.json's scores are what `tl evaluate` reproduces. Images are read by the data's own reader, not
    the decoded-image cache (shrunk copies for the epochs), as `tl evaluate` and `tl predict` read them."""
    start = time.perf_counter()
    config, prepared = run.config, run.prepared
    model, meta = load_model(run.host, run.run_dir, finished=False)
    predictor = Predictor.configured(model, meta, config, prepared.adapter, config.adapter_options)
    splits, reader = prepared.dataset.splits, prepared.dataset.reader
    val, test = (predictor.predict([r.path for r in splits[s]], reader) for s in ("val", "test"))
    run.timing["score_s"] = time.perf_counter() - start
    return val, test


def build_report(run: TrainingRun, fitted: Fitted, val_proba: np.ndarray, test_proba: np.ndarray) -> dict[str, Any]:
    """report.json: what was trained on which data with which weights, its scores, and how long it took."""
    config, pipe, prepared, y, timing = run.config, run.pipe, run.prepared, run.y, run.timing
    if "backbone_epoch_s" in timing and timing.get("head_epoch_s"):
        # One epoch of head training on cached features vs one epoch recomputing the backbone.
        timing["feature_cache_speedup_per_epoch"] = timing["backbone_epoch_s"] / timing["head_epoch_s"]
    elif "backbone_epoch_s" in timing and timing.get("head_fit_s"):
        # scikit-learn heads have no epochs: the whole fit vs one backbone pass.
        timing["head_fit_vs_backbone_epoch"] = timing["backbone_epoch_s"] / timing["head_fit_s"]
    total, trainable = count_parameters(pipe.backbone)
    timing["total_s"] = time.perf_counter() - run.started
    report = {
        "run_id": run.run_id,
        "tlcore_version": tlcore.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "preset": run.preset,
        "recipe": run.recipe,
        "technique": config.technique,
        "strategy": config.strategy if config.technique == "fine-tuning" else None,
        "task": run.objective.summary(),
        "val": run.objective.metrics(y["val"], val_proba),
        "test": run.objective.metrics(y["test"], test_proba),
        "model": {
            "backbone": pipe.backbone_spec.name,
            "timm_name": pipe.backbone_spec.timm_name,
            "weights": _weights_dict(pipe.weights),
            "head": config.head,
            "in_chans": pipe.in_chans,
            "preprocessing": pipe.pre.as_dict(),
            "input_stats": pipe.input_stats,
            "parameters": {"backbone_total": total, "backbone_trainable_at_end": trainable},
            "file": MODEL_FILE,
        },
        "data": prepared.summary(),
        "leakage": prepared.leakage.as_dict() if prepared.leakage is not None else None,
        "shift": fitted.shift,
        "training": fitted.training,
        "timing": timing,
        "environment": _environment(pipe.device, pipe.precision),
        "config": config.model_dump(),
    }
    classes = prepared.dataset.classes
    if prepared.dataset.task == "classification":
        # Binary: a threshold chosen on val and applied to test; all: bootstrap intervals of test metrics.
        report.update(
            evaluation_sections(
                y["val"], val_proba, y["test"], test_proba, classes, config.operating_point,
                config.positive_class, config.bootstrap, config.seed,
            )
        )  # fmt: skip
    elif prepared.dataset.task == "multilabel" and config.bootstrap:
        report["intervals"] = multilabel_intervals(
            y["test"], test_proba, classes, n_boot=config.bootstrap, seed=config.seed
        )
    return report


def _write(run: TrainingRun, report: dict[str, Any], val_proba: np.ndarray, test_proba: np.ndarray) -> None:
    """report.json, predictions.csv and the plots; the unfinished marker goes last."""
    from tlcore.reports import run_outputs  # predictions.csv, plots: none of them fails the run

    io_atomic.write_text(run.run_dir / REPORT, json.dumps(report, indent=2, default=_json_default))
    splits = run.prepared.dataset.splits
    paths = {s: [r.path for r in splits[s]] for s in ("val", "test")}
    run_outputs.write_run_outputs(run.run_dir, report, paths, run.y, {"val": val_proba, "test": test_proba})
    run_dirs.finish(run.run_dir)  # the last step: from here on the run is finished


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """``run_dir/config.yaml`` of the run to resume."""
    path = run_dir / RUN_CONFIG
    if not path.is_file() and run_dirs.is_unfinished(run_dir):
        raise ConfigError(
            f"{run_dir} was interrupted before its training began: nothing to resume", "train it again with --overwrite"
        )
    if not path.is_file():
        raise ConfigError(f"{run_dir} has no {RUN_CONFIG}: nothing to resume", "pass the --output of a run")
    try:
        saved = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}".splitlines()[0], "train the run again") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise ConfigError(f"{path} is not a tlcore run configuration", "train the run again")
    return saved


def _weights_dict(w: WeightsSource) -> dict[str, Any]:
    hub = {"hub": hub_models.summary(w.hub)} if w.hub else {}
    return {"source": w.kind, "origin": w.origin, "pretrained": w.pretrained, **hub}


def _environment(device: torch.device, precision: str) -> dict[str, Any]:
    import timm

    return {
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "precision": precision,  # as resolved for the device: bf16, fp16 (with loss scaling) or fp32
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "processes": distributed.current().world_size,  # > 1 under torchrun (batch_size is the global batch)
        "platform": platform.platform(),
        "cpu_memory": cpu_memory.state(),  # glibc malloc tuned for CPU training, or why not
    }


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _save_estimator(estimator: Any, run_dir: Path) -> None:
    import skops.io as sio

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            sio.dump(estimator, fh)

    io_atomic.atomic_write(run_dir / "head.skops", write)
