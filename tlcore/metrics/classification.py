"""Classification metrics from predicted probabilities (scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm


def _auc(y_true: np.ndarray, proba: np.ndarray, k: int) -> float | None:
    present = np.unique(y_true)
    if len(present) < 2:
        return None  # AUC is undefined with one class present
    if k == 2:
        return float(skm.roc_auc_score(y_true, proba[:, 1]))
    if len(present) < k:
        return None
    return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro"))


def classification_metrics(
    y_true: Sequence[int] | np.ndarray, proba: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro F1, AUC (one-vs-rest macro), per-class scores, confusion matrix."""
    y = np.asarray(y_true, dtype=int)
    k = len(classes)
    pred = proba.argmax(axis=1)
    labels = list(range(k))
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    per_class: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(classes):
        binary = (y == i).astype(int)
        auc = float(skm.roc_auc_score(binary, proba[:, i])) if 0 < binary.sum() < len(binary) else None
        per_class[name] = {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "auc": auc,
        }
    eps = 1e-12
    nll = float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], eps, 1.0)))) if len(y) else None
    return {
        "n": len(y),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
        "macro_f1": float(skm.f1_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "auc": _auc(y, proba, k),
        "log_loss": nll,
        "per_class": per_class,
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=labels).tolist(),
    }


def monitor_value(metrics: dict[str, Any], monitor: str) -> float:
    """The value to maximise for model selection (loss is negated).

    On small validation sets accuracy saturates (several epochs at 1.0); a tiny log-loss term breaks
    such ties in favour of the better-calibrated epoch without ever outweighing one more correct image.
    """
    loss = float(metrics["log_loss"] or 0.0)
    if monitor == "loss":
        return -loss
    value = metrics.get(monitor)
    primary = float(value) if value is not None else float(metrics["accuracy"])
    return primary - 1e-4 * min(loss, 10.0)
