"""95% percentile-bootstrap intervals for classification metrics.

Test sets in small-data work are a few hundred images, so a point estimate alone overstates what is
known. Resampling is stratified (each class is resampled within itself), so every resample keeps
the test set's class counts and AUC, sensitivity and specificity stay defined. The seed is fixed, so
a report is reproducible.

Sensitivity and specificity: for two classes, of the positive class at the given decision (argmax,
or a probability threshold); for more classes, one-vs-rest and macro-averaged over classes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

METRICS = ("accuracy", "balanced_accuracy", "auc", "sensitivity", "specificity")
# Resampled index matrices are processed in chunks of about this many entries (bounded memory).
_CHUNK_ENTRIES = 2_000_000


def stratified_resamples(y: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` indices; column block of class c only ever holds indices of class c."""
    out = np.empty((n_boot, len(y)), dtype=np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        out[:, idx] = idx[rng.integers(0, len(idx), size=(n_boot, len(idx)))]
    return out


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row-wise ROC AUC (Mann-Whitney U with average ranks for ties); NaN where a row has one class."""
    ranks = rankdata(scores, axis=1)
    n_pos = positive.sum(axis=1)
    n_neg = positive.shape[1] - n_pos
    rank_sum = np.where(positive, ranks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg), np.nan)


def _rate(hit: np.ndarray, of: np.ndarray) -> np.ndarray:
    total = of.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (hit & of).sum(axis=1) / total, np.nan)


def _metrics(y: np.ndarray, proba: np.ndarray, pred: np.ndarray, positive: int) -> dict[str, np.ndarray]:
    """Every metric for each row of the resampled ``(b, n)`` arrays ``y`` and ``pred`` (``proba``: ``(b, n, k)``)."""
    k = proba.shape[2]
    recalls = np.stack([_rate(pred == c, y == c) for c in range(k)])
    specificities = np.stack([_rate(pred != c, y != c) for c in range(k)])
    aucs = np.stack([_binary_auc(y == c, proba[:, :, c]) for c in range(k)])
    out = {
        "accuracy": (y == pred).mean(axis=1),
        "balanced_accuracy": np.nanmean(recalls, axis=0),
    }
    if k == 2:
        out["auc"] = aucs[positive]
        out["sensitivity"] = recalls[positive]
        out["specificity"] = specificities[positive]
    else:
        out["auc"] = aucs.mean(axis=0)  # NaN when a class is absent, like sklearn's undefined macro AUC
        out["sensitivity"] = np.nanmean(recalls, axis=0)
        out["specificity"] = np.nanmean(specificities, axis=0)
        for c in range(k):
            out[f"auc/{c}"] = aucs[c]
    return out


def _decide(proba: np.ndarray, threshold: float | None, positive: int) -> np.ndarray:
    if threshold is None or proba.shape[1] != 2:
        return proba.argmax(axis=1)
    return np.where(proba[:, positive] >= threshold, positive, 1 - positive)


def _interval(estimate: float, samples: np.ndarray, level: float) -> dict[str, float | None]:
    finite = samples[np.isfinite(samples)]
    if not np.isfinite(estimate) or len(finite) == 0:
        return {"estimate": None, "low": None, "high": None}
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return {"estimate": float(estimate), "low": float(low), "high": float(high)}


def bootstrap_intervals(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    classes: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    threshold: float | None = None,
    positive: int = 1,
) -> dict[str, Any]:
    """Percentile-bootstrap intervals for accuracy, balanced accuracy, AUC, sensitivity and specificity.

    ``threshold`` (two classes only): predict ``positive`` when its probability is at least this;
    default argmax, the decision the report's point metrics use. Multi-class runs add one-vs-rest AUC
    per class. Each metric is ``{"estimate", "low", "high"}`` (``None`` where undefined).
    """
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    y = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    pred = _decide(proba, threshold, positive)
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_ENTRIES // max(1, len(y) * proba.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean over classes absent from the test split
        point = _metrics(y[None], proba[None], pred[None], positive)
        samples: dict[str, list[np.ndarray]] = {name: [] for name in point}
        for start in range(0, n_boot, step):
            idx = stratified_resamples(y, min(step, n_boot - start), rng)
            for name, values in _metrics(y[idx], proba[idx], pred[idx], positive).items():
                samples[name].append(values)
    result = {
        name: _interval(float(point[name][0]), np.concatenate(samples[name]), level)
        for name in point
        if "/" not in name
    }
    per_class = {
        classes[int(name.split("/")[1])]: _interval(float(point[name][0]), np.concatenate(samples[name]), level)
        for name in point
        if name.startswith("auc/")
    }
    binary_threshold = threshold is not None and proba.shape[1] == 2
    out: dict[str, Any] = {
        "method": "percentile bootstrap, resampled within each class",
        "level": level,
        "n_boot": n_boot,
        "seed": seed,
        "decision": f"p({classes[positive]}) >= {threshold:.6g}" if binary_threshold else "argmax",
        "metrics": result,
    }
    if per_class:
        out["per_class_auc"] = per_class
    return out


def _masked_auc(positive: np.ndarray, scores: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Row-wise AUC over the known entries only (missing labels get no rank)."""
    ranks = rankdata(np.where(known, scores, np.nan), axis=1, nan_policy="omit")
    pos = positive & known
    n_pos = pos.sum(axis=1)
    n_neg = (known & ~positive).sum(axis=1)
    rank_sum = np.where(pos, ranks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg), np.nan)


def multilabel_intervals(
    y_true: np.ndarray,
    proba: np.ndarray,
    labels: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Percentile-bootstrap intervals of each label's AUC and of their macro mean (NaN labels left out).

    Images are resampled as a whole (all their labels together), so the macro AUC's interval reflects
    that labels of one image are correlated.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    y = np.asarray(y_true, dtype=np.float64).reshape(len(proba), len(labels))
    p = np.asarray(proba, dtype=np.float64).reshape(y.shape)
    known, positive = ~np.isnan(y), np.nan_to_num(y) >= 0.5
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_ENTRIES // max(1, y.size))

    def aucs(idx: np.ndarray) -> np.ndarray:  # (labels, rows of idx)
        return np.stack([_masked_auc(positive[idx, j], p[idx, j], known[idx, j]) for j in range(len(labels))])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # labels with one class in a resample: NaN
        point = aucs(np.arange(len(y))[None])[:, 0]
        chunks = [aucs(rng.integers(0, len(y), size=(min(step, n_boot - s), len(y)))) for s in range(0, n_boot, step)]
        samples = np.concatenate(chunks, axis=1)
        macro = np.nanmean(samples, axis=0)
        macro_point = float(np.nanmean(point)) if np.isfinite(point).any() else float("nan")
    return {
        "method": "percentile bootstrap, images resampled with all their labels",
        "level": level,
        "n_boot": n_boot,
        "seed": seed,
        "metrics": {"auc": _interval(macro_point, macro, level)},
        "per_label_auc": {name: _interval(float(point[j]), samples[j], level) for j, name in enumerate(labels)},
    }
