"""The pieces every command that trains or extracts needs, built once from a config: the data's reader
(or the decoded-image cache), the backbone and its preprocessing, the train transform and the one eval
view (tlcore.predict), the head, and backbone features through the on-disk feature cache."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

import tlcore
from tlcore.config import RunConfig
from tlcore.data.dataset import ImageDataset, as_model_input, channel_stats
from tlcore.data.decoded_cache import decoded_reader, reader_identity
from tlcore.data.prepare import PreparedData
from tlcore.data.transforms import check_eval_half
from tlcore.errors import ConfigError, DataError
from tlcore.models.backbones import Preprocessing, create_backbone, feature_dim
from tlcore.models.objective import Objective
from tlcore.models.transfer import ModelMeta
from tlcore.models.weights import cache_root
from tlcore.plugins import PluginHost, guarded
from tlcore.predict import InputView, eval_view
from tlcore.runtime import loader_options, pick_device, prepare_model, resolve_precision, resolve_workers
from tlcore.specs import AugmentationContext, Backbone, HeadContext, Record
from tlcore.training.features import Extraction, FeatureCache


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
        self.precision = resolve_precision(config.precision, self.device)  # bf16 | fp16 | fp32, or a ConfigError
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
                "precision": self.precision,
                # only when set, so caches of uint8 datasets keep their keys
                **({"input_stats": self.input_stats} if self.input_stats is not None else {}),
            },
        )

    def features(self, records: list[Record], label: str = "features", augmented_view: int | None = None) -> Extraction:
        """Backbone features of ``records`` through the feature cache: the eval view, or with
        ``augmented_view`` the train transform with its own seed (one cache entry per view and seed)."""
        if augmented_view is None:
            dataset, suffix = self.dataset(records), ""
        else:
            dataset = self.dataset(records, train=True)
            if hasattr(dataset.transform, "set_random_seed"):
                dataset.transform.set_random_seed(self.config.seed * 100 + augmented_view)
            # a plugin's augmentation is named owner/name: a "/" in a cache file name would be a folder
            suffix = f"-aug{self.config.augmentation.replace('/', '--')}-s{self.config.seed}-v{augmented_view}"
        return self.feature_cache().extract(
            self.backbone,
            records,
            dataset,
            self.device,
            self.config.batch_size,
            self.workers,
            view=suffix,
            label=label,
            show_progress=self.config.progress,
            precision=self.precision,
        )

    def feature_arrays(self) -> dict[str, np.ndarray]:
        """Every split's features, targets and paths, and the class names: what ``tl extract`` saves."""
        arrays = {"classes": np.array(self.data.dataset.classes)}
        for split, records in self.data.dataset.splits.items():
            arrays[f"{split}_features"] = self.features(records, label=f"features {split}").features
            arrays[f"{split}_targets"] = np.array([r.target for r in records])
            arrays[f"{split}_paths"] = np.array([r.path for r in records])
        return arrays

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
            hub=self.weights.hub,
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
