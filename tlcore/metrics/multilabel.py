"""Multi-label metrics from per-label probabilities (scikit-learn); NaN labels are left out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

#: A label is predicted when its probability is at least this: the metrics, predictions.csv, `tl predict`
#: and the Python API all decide with it.
THRESHOLD = 0.5


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def _both_present(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < len(y)


def multilabel_metrics(y_true: np.ndarray, proba: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Per-label AUC, average precision, precision/recall/F1 at 0.5; macro/micro AUC, mAP, subset accuracy.

    ``y_true`` is ``(n, k)`` of 0/1 with NaN where a label is missing; those entries count nowhere.
    AUC and AP are ``None`` for a label whose known values are all one class.
    """
    y = np.asarray(y_true, dtype=np.float64).reshape(len(proba), len(labels))
    p = np.asarray(proba, dtype=np.float64).reshape(y.shape)
    known = ~np.isnan(y)
    pred = p >= THRESHOLD
    per_label: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(labels):
        m = known[:, j]
        yj, pj = y[m, j].astype(int), p[m, j]
        precision, recall, f1, _ = (
            skm.precision_recall_fscore_support(yj, pj >= THRESHOLD, average="binary", zero_division=0)
            if m.any()
            else (0.0, 0.0, 0.0, None)
        )
        per_label[name] = {
            "auc": float(skm.roc_auc_score(yj, pj)) if _both_present(yj) else None,
            "average_precision": float(skm.average_precision_score(yj, pj)) if yj.sum() > 0 else None,
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "positives": int(yj.sum()),
            "labelled": int(m.sum()),
        }
    flat_y, flat_p = y[known].astype(int), p[known]
    rows = known.any(axis=1)
    exact = np.all((pred == (np.nan_to_num(y) >= 0.5)) | ~known, axis=1)
    eps = 1e-12
    clipped = np.clip(flat_p, eps, 1 - eps)
    bce = -(flat_y * np.log(clipped) + (1 - flat_y) * np.log(1 - clipped))
    with_labels = [s for s in per_label.values() if s["labelled"]]
    return {
        "n": len(y),
        "auc": _mean([s["auc"] for s in per_label.values()]),  # macro over labels where it is defined
        "micro_auc": float(skm.roc_auc_score(flat_y, flat_p)) if _both_present(flat_y) else None,
        "map": _mean([s["average_precision"] for s in per_label.values()]),
        "macro_f1": _mean([s["f1"] for s in with_labels]),
        "micro_f1": float(skm.f1_score(flat_y, flat_p >= THRESHOLD, zero_division=0)) if len(flat_y) else None,
        "subset_accuracy": float(exact[rows].mean()) if rows.any() else None,
        "log_loss": float(bce.mean()) if len(bce) else None,
        "missing_labels": int((~known).sum()),
        "per_label": per_label,
    }
