"""Regression metrics in the targets' own units; NaN targets are left out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm


def _one_target(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    m = ~np.isnan(y)
    y, pred = y[m], pred[m]
    if not len(y):
        return {"n": 0, "rmse": None, "mae": None, "r2": None}
    # R² needs two or more distinct values; with one it is undefined, not 0 or -inf.
    r2 = float(skm.r2_score(y, pred)) if len(y) > 1 and np.ptp(y) > 0 else None
    return {
        "n": len(y),
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "mae": float(skm.mean_absolute_error(y, pred)),
        "r2": r2,
        "mean_true": float(y.mean()),
        "mean_predicted": float(pred.mean()),
    }


def regression_metrics(y_true: np.ndarray, pred: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """RMSE, MAE and R² per target and averaged over targets (``n`` rows; ``(n, k)`` arrays)."""
    k = len(names)
    y = np.asarray(y_true, dtype=np.float64).reshape(-1, k)
    p = np.asarray(pred, dtype=np.float64).reshape(-1, k)
    per_target = {name: _one_target(y[:, j], p[:, j]) for j, name in enumerate(names)}

    def mean(key: str) -> float | None:
        values = [s[key] for s in per_target.values() if s[key] is not None]
        return float(np.mean(values)) if values else None

    return {"n": len(y), "rmse": mean("rmse"), "mae": mean("mae"), "r2": mean("r2"), "per_target": per_target}
