"""One training run, end to end: data -> backbone -> (features | fine-tuning) -> evaluation -> report."""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.markup import escape
from torch import nn
from torch.utils.data import DataLoader

import tlcore
from tlcore import io_atomic, run_dirs
from tlcore.config import RunConfig
from tlcore.data.dataset import ImageDataset, as_model_input, channel_stats
from tlcore.data.decoded_cache import decoded_reader, reader_identity
from tlcore.data.prepare import PreparedData, prepare_data
from tlcore.data.train_images import write_train_images
from tlcore.data.transforms import check_eval_half
from tlcore.errors import ConfigError, DataError
from tlcore.metrics.intervals import multilabel_intervals
from tlcore.metrics.operating_point import evaluation_sections
from tlcore.models.backbones import Preprocessing, count_parameters, create_backbone, feature_dim, stage_groups
from tlcore.models.objective import Objective, target_array
from tlcore.models.transfer import MODEL_FILE, ModelMeta, TransferModel, load_model, save_model
from tlcore.models.weights import WeightsSource, cache_root
from tlcore.plugins import PluginHost, guarded
from tlcore.predict import InputView, Predictor, eval_view
from tlcore.run_dirs import (
    RUN_CONFIG,
    check_new_run,
    check_outside_data,
    check_resume,
    check_same_data,
    check_same_settings,
)
from tlcore.runtime import (
    console,
    loader_options,
    pick_device,
    prepare_model,
    resolve_workers,
    seed_everything,
)
from tlcore.specs import AugmentationContext, Backbone, HeadContext, Record
from tlcore.train import distributed
from tlcore.train.features import FeatureCache
from tlcore.train.finetune import check_state_fits, fine_tune, load_resume_state
from tlcore.train.folds import run_folds
from tlcore.train.probe import ProbeResult, fit_sklearn_head, fit_torch_head

REPORT = "report.json"


class Pipeline:
    """The pieces every command needs: data, backbone, preprocessing and transforms, built from a config."""

    def __init__(self, host: PluginHost, config: RunConfig, data: PreparedData) -> None:
        self.host, self.config, self.data = host, config, data
        self.backbone_spec: Backbone = host.backbone(config.backbone)
        self.in_chans = config.in_chans or data.dataset.channels
        self.input_stats = _input_stats(data, self.in_chans)
        self.backbone, self.weights, pre = create_backbone(
            self.backbone_spec, config.weights, self.in_chans, config.drop_path_rate
        )
        if config.image_size or config.crop_pct:
            size = (config.image_size, config.image_size) if config.image_size else pre.input_size
            pre = Preprocessing(size, pre.mean, pre.std, pre.interpolation, config.crop_pct or pre.crop_pct)
        self.pre = pre
        self.device = pick_device(config.device)
        self.backbone = prepare_model(self.backbone, self.device)
        self.workers = resolve_workers(config.num_workers, self.device)
        augmentation = host.augmentations.get(config.augmentation)
        ctx = dict(
            image_size=pre.input_size,
            interpolation=pre.interpolation,
            crop_pct=pre.crop_pct,
            channels=self.in_chans,
            params=config.augmentation_params,
        )
        owner = host.augmentations.entry(augmentation.name).plugin
        build = guarded(f"augmentation {augmentation.name!r}", owner, augmentation.build)
        self.train_transform = build(AugmentationContext(train=True, **ctx))  # type: ignore[arg-type]
        # Every run scores through the one eval view (tlcore.predict); an augmentation whose eval half
        # differs would train for a view that no command shows the model, so it is refused here.
        eval_ctx = AugmentationContext(train=False, **ctx)  # type: ignore[arg-type]
        check_eval_half(augmentation.name, owner, build(eval_ctx), eval_ctx)
        self.inputs = InputView(eval_view(pre, self.in_chans), self.in_chans, *self.normalization())
        self.eval_transform = self.inputs.transform
        if hasattr(self.train_transform, "set_random_seed"):
            self.train_transform.set_random_seed(config.seed)
        self.head_spec = host.heads.get(config.head)
        if config.technique == "fine-tuning" and self.head_spec.kind != "torch":
            raise ConfigError(
                f"head {config.head!r} is a scikit-learn head: it cannot be fine-tuned",
                "use head=linear or head=mlp with fine-tuning, or technique=feature-extraction",
            )
        self.num_features = feature_dim(self.backbone)
        self.reader = data.dataset.reader  # replaced by the decoded-image cache when that is in use
        self.decoded: dict[str, Any] | None = None
        self.run_id: str | None = None  # set by run_training: model.json names the run it belongs to

    def use_decoded_cache(self, records: list[Record]) -> dict[str, Any] | None:
        """Read ``records`` from the memory-mapped decoded-image cache (built on first use).

        Returns what the report records about it, or None when the reader's output cannot be cached."""
        short_side = self.config.decode_cache_size or round(1.5 * max(self.pre.input_size) / self.pre.crop_pct)
        root = Path(self.config.decode_cache_dir) if self.config.decode_cache_dir else cache_root() / "decoded"
        start = time.perf_counter()
        cached = decoded_reader(
            records,
            self.data.dataset.reader,
            root,
            short_side,
            os.cpu_count() or 1,  # threads: decoding is all the machine does meanwhile
            self.config.progress,
        )
        if cached is None:
            return None
        self.reader = cached
        self.decoded = {
            "short_side": short_side,
            "images": len(cached.rows),
            "mib": round(cached.nbytes / 2**20, 1),
            "folder": str(cached.folder),
            "seconds": time.perf_counter() - start,
        }
        return self.decoded

    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...], float]:
        """Band statistics of the train split for non-uint8 data, else the weights' mean/std (0-1 pixels)."""
        if self.input_stats is not None:
            return tuple(self.input_stats["mean"]), tuple(self.input_stats["std"]), 1.0
        return self.pre.mean, self.pre.std, 255.0

    def dataset(self, records: list[Record], train: bool = False) -> ImageDataset:
        if not train:
            return self.inputs.dataset(records, self.reader)
        return ImageDataset(records, self.reader, self.train_transform, *self.normalization())

    def loader(self, records: list[Record]) -> DataLoader[Any]:
        return DataLoader(
            self.dataset(records),
            batch_size=self.config.batch_size * 2,
            shuffle=False,
            generator=torch.Generator(),  # evaluation leaves the run's random stream alone
            **loader_options(self.workers, self.device),
        )

    def feature_cache(self) -> FeatureCache:
        root = Path(self.config.cache_dir) if self.config.cache_dir else cache_root() / "features"
        return FeatureCache(
            root,
            {
                "timm_name": self.backbone_spec.timm_name,
                "weights": self.weights.origin,
                "weights_file": self.weights.file.name if self.weights.file else None,
                "preprocessing": self.pre.as_dict(),
                "in_chans": self.in_chans,
                "transform": repr(self.eval_transform),
                "reader": reader_identity(self.data.dataset.reader) or repr(self.data.dataset.reader),
                # images shrunk once into the decoded cache differ (slightly) from ones decoded each time
                **({"decoded_short_side": self.decoded["short_side"]} if self.decoded else {}),
                "precision": "bf16" if self.device.type == "cuda" else "fp32",
                # only when set, so caches of uint8 datasets keep their keys
                **({"input_stats": self.input_stats} if self.input_stats is not None else {}),
            },
        )

    def new_head(self) -> Any:
        params = {"dropout": self.config.drop_rate, **self.config.head_params}
        if self.head_spec.kind == "sklearn" and self.config.class_weights == "balanced":
            params.setdefault("class_weight", "balanced")
        owner = self.host.heads.entry(self.head_spec.name).plugin
        build = guarded(f"head {self.head_spec.name!r}", owner, self.head_spec.build)
        return build(HeadContext(self.num_features, len(self.data.dataset.classes), self.data.dataset.task, params))

    def meta(self, head_name: str, objective: Objective | None = None) -> ModelMeta:
        return ModelMeta(
            backbone=self.backbone_spec.name,
            timm_name=self.backbone_spec.timm_name,
            in_chans=self.in_chans,
            head=head_name,
            head_params={"dropout": self.config.drop_rate, **self.config.head_params},
            classes=self.data.dataset.classes,
            task=self.data.dataset.task,
            preprocessing=self.pre.as_dict(),
            weights_origin=self.weights.origin,
            tlcore_version=tlcore.__version__,
            tta=self.config.tta and self.config.technique == "fine-tuning",
            input_stats=self.input_stats,
            target_norm=objective.scaler.as_dict() if objective and objective.scaler else None,
            loss=objective.loss_name if objective else None,
            run_id=self.run_id,
        )


def _input_stats(data: PreparedData, in_chans: int) -> dict[str, Any] | None:
    """uint8 images: None (the pretrained mean/std apply). Other data (float32, uint16 bands): the train
    split's per-channel mean/std from a bounded sample, which then replace the pretrained ones."""
    ds = data.dataset
    train = ds.splits.get("train") or []
    if not train:
        return None
    raw = ds.reader(train[0].path)
    first = as_model_input(raw)
    if first.shape[2] != in_chans:
        raise DataError(
            f"{train[0].path} has {first.shape[2]} channel(s), the model expects {in_chans}",
            "set LabeledDataset.channels (or --set in_chans=N) to the reader's channel count",
        )
    if first.dtype == np.uint8:
        return None
    return {**channel_stats(train, ds.reader), "dtype": str(raw.dtype)}


def _targets(records: list[Record], task: str = "classification", k: int = 0) -> np.ndarray:
    return target_array(task, records, k)


def _features(pipe: Pipeline, cache: FeatureCache, split: str, timing: dict[str, Any]) -> np.ndarray:
    records = pipe.data.dataset.splits[split]
    out = cache.extract(
        pipe.backbone,
        records,
        pipe.dataset(records),
        pipe.device,
        pipe.config.batch_size,
        pipe.workers,
        label=f"features {split}",
        show_progress=pipe.config.progress,
    )
    timing.setdefault("feature_extraction_s", 0.0)
    timing["feature_extraction_s"] += out.seconds
    if out.cached:
        timing.setdefault("feature_cache_hits", []).append(split)
    if split == "train" and not out.cached:
        timing["backbone_epoch_s"] = out.seconds
    return out.features


def _shift(pipe: Pipeline, x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict[str, Any]:
    """The covariate-shift check on pretrained features (tlcore.metrics.shift), and its console warning."""
    from tlcore.metrics.shift import shift_report, shift_warning

    start = time.perf_counter()
    single_label = pipe.data.dataset.task == "classification"
    report = shift_report(
        x, y if single_label else None, pipe.data.dataset.classes if single_label else None, pipe.config.seed
    )
    report["seconds"] = time.perf_counter() - start
    warning = shift_warning(report)
    if warning and distributed.current().is_main:
        console.print(f"[yellow]warning: {escape(warning)}")
    return report


def _augmented_views(pipe: Pipeline, cache: FeatureCache, timing: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """K augmented views of every training image, as extra feature rows (cached per view and seed)."""
    records = pipe.data.dataset.splits["train"]
    feats, ys = [], []
    for view in range(pipe.config.feature_views):
        ds = pipe.dataset(records, train=True)
        if hasattr(ds.transform, "set_random_seed"):
            ds.transform.set_random_seed(pipe.config.seed * 100 + view)
        out = cache.extract(
            pipe.backbone,
            records,
            ds,
            pipe.device,
            pipe.config.batch_size,
            pipe.workers,
            # a plugin's augmentation is named owner/name: a "/" in a cache file name would be a folder
            view=f"-aug{pipe.config.augmentation.replace('/', '--')}-s{pipe.config.seed}-v{view}",
            label=f"augmented view {view + 1}",
            show_progress=pipe.config.progress,
        )
        timing["feature_extraction_s"] = timing.get("feature_extraction_s", 0.0) + out.seconds
        feats.append(out.features)
        ys.append(_targets(records, pipe.data.dataset.task, len(pipe.data.dataset.classes)))
    return np.concatenate(feats), np.concatenate(ys)


def _probe(
    pipe: Pipeline,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    head: Any,
    objective: Objective,
) -> ProbeResult:
    classes = pipe.data.dataset.classes
    if isinstance(head, nn.Module):
        return fit_torch_head(head, x_train, y_train, x_val, y_val, classes, pipe.config, objective)
    return fit_sklearn_head(head, x_train, y_train, len(classes), objective)


def run_training(
    host: PluginHost,
    config: RunConfig,
    data: str,
    run_dir: Path,
    preset: str | None,
    resume: bool = False,
    prepared: PreparedData | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train, evaluate on val and test, and write the run directory. Returns the report.

    ``prepared`` skips loading ``data`` (a caller that already holds it, e.g. on a label subset).
    ``run_dir`` must be new or empty, or hold a run that ``overwrite`` replaces or ``resume`` continues;
    every check that can refuse the run comes before its first file is written (tlcore.run_dirs).
    ``config.folds`` >= 2 trains a grouped K-fold ensemble instead (tlcore.train.folds)."""
    if config.folds == 1:
        raise ConfigError("folds=1 is one fold: there is nothing to cross-validate", "use folds=0 (off) or 2 and more")
    if config.folds >= 2:
        if prepared is not None:
            raise ConfigError("folds cannot be combined with data prepared by the caller", "set folds=0")
        return run_folds(host, config, data, run_dir, preset, run_training, resume=resume, overwrite=overwrite)
    started, started_at = time.perf_counter(), datetime.now(UTC)
    saved = read_run_config(run_dir) if resume else {}
    if resume:
        check_same_settings(run_dir, saved, config.model_dump())
        run_id = check_resume(run_dir, saved, config.technique, config.epochs)
    else:
        check_new_run(run_dir, overwrite)
        run_id = run_dirs.new_run_id()
    seed_everything(config.seed)
    timing: dict[str, Any] = {}
    t0 = time.perf_counter()
    if prepared is None:
        prepared = prepare_data(host, data, config, check_leakage=True)
    if not resume:
        check_outside_data(run_dir, prepared.root)
    task, classes = prepared.dataset.task, prepared.dataset.classes
    y = {s: _targets(r, task, len(classes)) for s, r in prepared.dataset.splits.items()}
    objective = Objective.for_training(task, classes, config, y["train"])
    if objective.monitor_note:
        console.print(f"[yellow]{objective.monitor_note}")
    if prepared.skipped:
        console.print(f"[yellow]skipped {len(prepared.skipped)} unreadable image(s); listed in report.json")
    if prepared.leakage is not None and prepared.leakage.found:
        console.print(f"[yellow]warning: {escape(prepared.leakage.summary())} (listed in report.json; --strict fails)")
    for change in prepared.changes():  # left out, merged, de-duplicated, a class missing from a split
        console.print(f"[yellow]warning: {escape(change.warning())}", soft_wrap=True)  # one line, for grep
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
    distributed.current().sum(0.0)  # every process has checked run_dir before rank 0 writes to it
    # Only once data and model are known to be usable: a failed start leaves no run directory behind.
    if distributed.current().is_main:  # under torchrun, rank 0 alone writes the run directory
        run_dirs.begin(run_dir, run_id, replace=overwrite and not resume)  # the unfinished marker comes first
        io_atomic.write_text(
            run_dir / RUN_CONFIG,
            yaml.safe_dump(
                # wall clock at which this process began the run: elapsed_s's origin unless resumed
                {
                    "run_id": run_id,
                    "preset": preset,
                    "data": data,
                    "adapter": prepared.adapter,
                    "started": started_at.isoformat(),
                    "task": task,
                    "classes": classes,
                    "in_chans": pipe.in_chans,
                    "config": config.model_dump(),
                },
                sort_keys=False,
            ),
        )
        # What this run trained on: `tl evaluate` warns when it scores any of these images.
        write_train_images(run_dir, prepared.dataset.splits["train"], prepared.dataset.reader)
    timing["setup_s"] = time.perf_counter() - t0
    splits = prepared.dataset.splits
    cache = pipe.feature_cache()
    extra: dict[str, Any] = {}
    test_proba: np.ndarray | None = None

    shift: dict[str, Any] | None = None
    if config.technique == "feature-extraction":
        x = {s: _features(pipe, cache, s, timing) for s in ("train", "val", "test")}
        if config.shift_check:
            shift = _shift(pipe, x, y)
        x_train, y_train = x["train"], y["train"]
        if config.feature_views:
            xa, ya = _augmented_views(pipe, cache, timing)
            x_train, y_train = np.concatenate([x_train, xa]), np.concatenate([y_train, ya])
        result = _probe(pipe, x_train, y_train, x["val"], y["val"], pipe.new_head(), objective)
        timing["head_fit_s"] = result.fit_seconds
        timing["head_epoch_s"] = result.epoch_seconds
        extra["head_history"] = result.history
        if result.head is not None:
            model = TransferModel(pipe.backbone, result.head)
            head_name = "linear" if pipe.head_spec.kind == "sklearn" else config.head
            save_model(model, pipe.meta(head_name, objective), run_dir)
        else:
            _save_estimator(result.estimator, run_dir)
            save_model(TransferModel(pipe.backbone, nn.Identity()), pipe.meta(config.head, objective), run_dir)
    else:
        head = pipe.new_head()
        model = TransferModel(pipe.backbone, head)
        resuming = state is not None
        # Fine-tuning decodes every image once per epoch: decode once into the cache instead.
        every = [r for name in ("train", "val", "test") for r in splits[name]]
        extra["decoded_cache"] = pipe.use_decoded_cache(every) if config.decode_cache else None
        if extra["decoded_cache"] is not None:
            timing["decode_cache_s"] = extra["decoded_cache"]["seconds"]
        if config.strategy == "lp-ft" and not resuming:
            # Linear probe first (on cached features), so fine-tuning starts from a good head and
            # the pretrained features are not distorted by a random one (Kumar et al., 2022).
            x_train, x_val = _features(pipe, cache, "train", timing), _features(pipe, cache, "val", timing)
            if config.shift_check:  # before fine-tuning changes the backbone in place
                x_test = _features(pipe, cache, "test", timing)
                shift = _shift(pipe, {"train": x_train, "val": x_val, "test": x_test}, y)
            probe = fit_torch_head(head, x_train, y["train"], x_val, y["val"], classes, config, objective)
            timing["linear_probe_s"] = probe.fit_seconds
            timing["head_epoch_s"] = probe.epoch_seconds
            column = "val_accuracy" if task == "classification" else f"val_{objective.monitor}"
            values = [h[column] for h in probe.history if h.get(column) is not None]
            best = min if objective.monitor in ("loss", "rmse") else max
            extra[f"linear_probe_{column}"] = best(values) if values else None
        model = prepare_model(model, pipe.device)
        groups = stage_groups(pipe.backbone)
        val_loader = pipe.loader(splits["val"])
        fit = fine_tune(
            model,
            groups,
            pipe.dataset(splits["train"], train=True),
            val_loader,
            y["val"],
            classes,
            config,
            pipe.device,
            run_dir,
            resume=resume,
            workers=pipe.workers,
            objective=objective,
            run_started=started,
            state=state,
        )
        if not distributed.current().is_main:
            return {}  # the other torchrun processes are done: rank 0 evaluates and writes the run
        timing["train_s"] = fit.train_seconds
        timing["epochs_run"] = len(fit.history)
        timing["train_images_per_s"] = fit.images_seen / max(fit.train_seconds, 1e-9)
        extra.update(best_epoch=fit.best_epoch, stopped_early=fit.stopped_early)
        save_model(model, pipe.meta(config.head, objective), run_dir)

    val_proba, test_proba = _score_saved_model(host, run_dir, config, prepared, timing)
    if "backbone_epoch_s" in timing and timing.get("head_epoch_s"):
        # One epoch of head training on cached features vs one epoch recomputing the backbone.
        timing["feature_cache_speedup_per_epoch"] = timing["backbone_epoch_s"] / timing["head_epoch_s"]
    elif "backbone_epoch_s" in timing and timing.get("head_fit_s"):
        # scikit-learn heads have no epochs: the whole fit vs one backbone pass.
        timing["head_fit_vs_backbone_epoch"] = timing["backbone_epoch_s"] / timing["head_fit_s"]
    total, trainable = count_parameters(pipe.backbone)
    timing["total_s"] = time.perf_counter() - started
    report = {
        "run_id": run_id,
        "tlcore_version": tlcore.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "preset": preset,
        "technique": config.technique,
        "strategy": config.strategy if config.technique == "fine-tuning" else None,
        "task": objective.summary(),
        "val": objective.metrics(y["val"], val_proba),
        "test": objective.metrics(y["test"], test_proba),
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
        "shift": shift,
        "training": extra,
        "timing": timing,
        "environment": _environment(pipe.device),
        "config": config.model_dump(),
    }
    if prepared.dataset.task == "classification" and test_proba is not None:
        # Binary: a threshold chosen on val and applied to test; all: bootstrap intervals of test metrics.
        report.update(
            evaluation_sections(
                y["val"],
                val_proba,
                y["test"],
                test_proba,
                classes,
                config.operating_point,
                config.positive_class,
                config.bootstrap,
                config.seed,
            )
        )
    elif prepared.dataset.task == "multilabel" and test_proba is not None and config.bootstrap:
        report["intervals"] = multilabel_intervals(
            y["test"], test_proba, classes, n_boot=config.bootstrap, seed=config.seed
        )
    from tlcore.reports import run_outputs  # learning curve, predictions.csv, plots: none of them fails the run

    if config.technique == "feature-extraction" and not extra["head_history"]:
        # A scikit-learn head has no epochs: its learning curve is over the training-set size instead.
        extra["head_size_curve"] = run_outputs.head_size_curve(
            lambda xs, ys: _probe(pipe, xs, ys, x["val"], y["val"], pipe.new_head(), objective),
            (x_train, y_train), (x["val"], y["val"]), objective.metrics, result, config.seed,
        )  # fmt: skip
    io_atomic.write_text(run_dir / REPORT, json.dumps(report, indent=2, default=_json_default))
    paths = {s: [r.path for r in splits[s]] for s in ("val", "test")}
    run_outputs.write_run_outputs(run_dir, report, paths, y, {"val": val_proba, "test": test_proba})
    run_dirs.finish(run_dir)  # the last step: from here on the run is finished
    return report


def _score_saved_model(
    host: PluginHost, run_dir: Path, config: RunConfig, prepared: PreparedData, timing: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Val and test outputs of the model as saved, through the path every command takes (tlcore.predict):
    report.json's scores are what `tl evaluate` reproduces. Images are read by the data's own reader, not
    the decoded-image cache (shrunk copies for the epochs), as `tl evaluate` and `tl predict` read them."""
    start = time.perf_counter()
    model, meta = load_model(host, run_dir, finished=False)
    predictor = Predictor.configured(model, meta, config, prepared.adapter, config.adapter_options)
    splits, reader = prepared.dataset.splits, prepared.dataset.reader
    val, test = (predictor.predict([r.path for r in splits[s]], reader) for s in ("val", "test"))
    timing["score_s"] = time.perf_counter() - start
    return val, test


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
    return {"source": w.kind, "origin": w.origin, "pretrained": w.pretrained}


def _environment(device: torch.device) -> dict[str, Any]:
    import timm

    return {
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "processes": distributed.current().world_size,  # > 1 under torchrun (batch_size is the global batch)
        "platform": platform.platform(),
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
