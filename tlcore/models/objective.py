"""What a task trains and measures: target arrays, loss, output activation, target scaling, metrics, monitor.

One :class:`Objective` per run, so probes, fine-tuning, evaluation and prediction agree on all of it:

* classification: integer targets, cross-entropy, softmax.
* multilabel: ``(n, k)`` 0/1 targets with NaN for missing labels, masked BCE-with-logits, sigmoid.
* regression: ``(n, k)`` float targets, standardised with the train split's mean/std for training
  (Huber or MSE on the standardised values), predictions turned back into the targets' units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tlcore.errors import ConfigError, DataError
from tlcore.metrics.tasks import monitor_score, resolve_monitor, task_metrics
from tlcore.specs import Record

LOSSES: dict[str, tuple[str, ...]] = {
    "classification": ("ce",),
    "multilabel": ("bce",),
    "regression": ("huber", "mse"),
}


def target_array(task: str, records: Sequence[Record], k: int) -> np.ndarray:
    """Targets in their own units: ``(n,)`` int64 for classification, ``(n, k)`` float32 otherwise."""
    if task == "classification":
        return np.array([r.target for r in records], dtype=np.int64)
    out = np.full((len(records), k), np.nan, dtype=np.float32)
    for i, record in enumerate(records):
        row = np.atleast_1d(np.asarray(record.target, dtype=np.float32))
        if row.shape != (k,):
            raise DataError(
                f"{record.path}: target {record.target!r} has {row.size} value(s), the dataset names {k}",
                "one value per entry of LabeledDataset.classes",
            )
        out[i] = row
    return out


@dataclass(frozen=True)
class TargetScaler:
    """Standardises regression targets with the train split's mean and std (per target)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, y: np.ndarray) -> TargetScaler:
        with np.errstate(all="ignore"):
            mean = np.nanmean(y, axis=0) if len(y) else np.zeros(y.shape[1])
            std = np.nanstd(y, axis=0) if len(y) else np.ones(y.shape[1])
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)  # a constant target keeps its units
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def transform(self, y: np.ndarray) -> np.ndarray:
        return ((y - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return (z * np.asarray(self.std) + np.asarray(self.mean)).astype(np.float32)

    def as_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetScaler:
        return cls(tuple(float(m) for m in d["mean"]), tuple(float(s) for s in d["std"]))


def _balanced_class_weights(y: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(y, minlength=k).astype(np.float64)
    return len(y) / (k * np.maximum(counts, 1))


def _pos_weight(y: np.ndarray) -> np.ndarray:
    """Per label: negatives / positives among the known labels (1 where a label has no positives)."""
    pos = np.nansum(y, axis=0)
    neg = np.sum(~np.isnan(y), axis=0) - pos
    return np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)


class Objective:
    """Loss, activation, target scaling, metrics and monitor of one task."""

    def __init__(
        self,
        task: str,
        classes: Sequence[str],
        loss: str = "auto",
        monitor: str = "auto",
        label_smoothing: float = 0.0,
        weight: np.ndarray | None = None,
        scaler: TargetScaler | None = None,
    ) -> None:
        if task not in LOSSES:
            raise ConfigError(f"unknown task {task!r}", "classification, multilabel or regression")
        self.task, self.classes, self.k = task, list(classes), len(classes)
        self.loss_name = LOSSES[task][0] if loss == "auto" else loss
        if self.loss_name not in LOSSES[task]:
            raise ConfigError(
                f"loss={loss} does not apply to {task}", f"use loss=auto or one of {', '.join(LOSSES[task])}"
            )
        self.monitor, self.monitor_note = resolve_monitor(task, monitor)
        self.label_smoothing = label_smoothing if task != "regression" else 0.0
        # classification: class weights; multilabel: BCE pos_weight per label.
        self.weight = torch.tensor(weight, dtype=torch.float32) if weight is not None else None
        if task == "regression" and scaler is None:
            scaler = TargetScaler((0.0,) * self.k, (1.0,) * self.k)
        self.scaler = scaler

    @classmethod
    def for_training(cls, task: str, classes: Sequence[str], config: Any, y_train: np.ndarray) -> Objective:
        """From the run configuration and the train targets (class weights, pos_weight, target scaling)."""
        weight = None
        if config.class_weights == "balanced":
            if task == "regression":
                raise ConfigError("class_weights=balanced does not apply to regression", "set class_weights=none")
            weight = (
                _balanced_class_weights(y_train, len(classes)) if task == "classification" else _pos_weight(y_train)
            )
        if task != "classification" and (config.mixup > 0 or config.cutmix > 0):
            raise ConfigError(f"mixup/cutmix apply to classification only, not {task}", "set mixup=0 cutmix=0")
        if task != "classification" and config.balanced_sampling:
            raise ConfigError(f"balanced_sampling applies to classification only, not {task}")
        scaler = TargetScaler.fit(y_train) if task == "regression" else None
        return cls(task, classes, config.loss, config.monitor, config.label_smoothing, weight, scaler)

    @classmethod
    def from_meta(cls, meta: Any) -> Objective:
        """For a trained model (``model.json``): the same loss, scaling and monitor as its run."""
        norm = getattr(meta, "target_norm", None)
        return cls(
            meta.task,
            meta.classes,
            loss=getattr(meta, "loss", None) or "auto",
            scaler=TargetScaler.from_dict(norm) if norm else None,
        )

    # -- targets ---------------------------------------------------------------------------

    def targets(self, records: Sequence[Record]) -> np.ndarray:
        return target_array(self.task, records, self.k)

    def fit_targets(self, y: np.ndarray) -> np.ndarray:
        """Targets as the head learns them: standardised for regression, unchanged otherwise."""
        return self.scaler.transform(y) if self.scaler is not None else y

    def batch_targets(self, y: torch.Tensor) -> torch.Tensor:
        """A DataLoader's target batch (targets in their own units) as the loss expects it."""
        if self.task == "classification":
            return y.long()
        y = y.float().reshape(len(y), self.k)
        if self.scaler is not None:
            mean = torch.tensor(self.scaler.mean, device=y.device)
            std = torch.tensor(self.scaler.std, device=y.device)
            y = (y - mean) / std
        return y

    # -- loss and outputs ------------------------------------------------------------------

    def loss(self, logits: torch.Tensor, y: torch.Tensor, smoothing: bool = True) -> torch.Tensor:
        """Loss of a batch; ``y`` from :meth:`batch_targets` (or :meth:`fit_targets`). NaN targets are masked."""
        logits = logits.float()
        weight = self.weight.to(logits.device) if self.weight is not None else None
        eps = self.label_smoothing if smoothing else 0.0
        if self.task == "classification":
            return F.cross_entropy(logits, y, weight=weight, label_smoothing=eps)
        known = ~torch.isnan(y)
        target = torch.where(known, y, torch.zeros_like(y))
        if self.task == "multilabel":
            target = target * (1 - eps) + eps / 2
            each = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight, reduction="none")
        elif self.loss_name == "mse":
            each = F.mse_loss(logits, target, reduction="none")
        else:
            each = F.huber_loss(logits, target, reduction="none", delta=1.0)
        mask = known.float()
        return (each * mask).sum() / mask.sum().clamp_min(1.0)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """Head output -> class probabilities, per-label probabilities, or standardised values."""
        if self.task == "classification":
            return torch.softmax(logits.float(), dim=1)
        if self.task == "multilabel":
            return torch.sigmoid(logits.float())
        return logits.float()

    def to_units(self, outputs: np.ndarray) -> np.ndarray:
        """Activated outputs -> what a user reads: regression values back in the targets' units."""
        return self.scaler.inverse(outputs) if self.scaler is not None else outputs

    # -- metrics ---------------------------------------------------------------------------

    def metrics(self, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, Any]:
        """Metrics from targets and outputs in their own units; regression adds the standardised ``loss``."""
        m = task_metrics(self.task, y_true, outputs, self.classes)
        if self.task == "regression" and self.scaler is not None:
            z_true, z_pred = self.scaler.transform(y_true.reshape(-1, self.k)), self.scaler.transform(outputs)
            known = ~np.isnan(z_true)
            with torch.no_grad():
                loss = self.loss(torch.from_numpy(z_pred), torch.from_numpy(z_true))
            m = {**m, "loss": float(loss) if known.any() else None}
        elif self.task == "multilabel":
            m = {**m, "loss": m["log_loss"]}
        return m

    def score(self, metrics: dict[str, Any]) -> float:
        return monitor_score(self.task, metrics, self.monitor)

    def history_row(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """The validation columns of ``metrics.csv`` (classification keeps its historical columns)."""
        if self.task == "classification":
            keys = {"val_loss": "log_loss", "val_accuracy": "accuracy", "val_balanced_accuracy": "balanced_accuracy"}
            keys.update(val_macro_f1="macro_f1", val_auc="auc")
        elif self.task == "multilabel":
            keys = {"val_loss": "loss", "val_auc": "auc", "val_micro_auc": "micro_auc", "val_map": "map"}
            keys.update(val_macro_f1="macro_f1", val_subset_accuracy="subset_accuracy")
        else:
            keys = {"val_loss": "loss", "val_rmse": "rmse", "val_mae": "mae", "val_r2": "r2"}
        return {column: metrics.get(key) for column, key in keys.items()}

    def summary(self) -> dict[str, Any]:
        """For ``report.json`` and ``model.json``."""
        out: dict[str, Any] = {"task": self.task, "loss": self.loss_name, "monitor": self.monitor}
        if self.scaler is not None:
            out["target_norm"] = self.scaler.as_dict()
        return out
