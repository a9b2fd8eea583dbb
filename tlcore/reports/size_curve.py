"""A learning curve over the training-set size, for heads that have no epochs (scikit-learn heads).

The head is refitted on growing, nested subsets of the cached training features (10 %, 25 %, 50 %, all)
and scored on that subset and on val. A wide gap between the train and val curves is overfitting; a
val curve still rising at 100 % says more labelled images would help. On cached features a refit takes
seconds, so this costs little next to the feature extraction itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def _nested_order(y: np.ndarray, seed: int) -> np.ndarray:
    """A row order whose every prefix keeps the class mix (classification) or is a plain shuffle."""
    rng = np.random.default_rng(seed)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        return rng.permutation(len(y))
    # Interleave the shuffled classes by rank within class: any prefix is close to stratified.
    position = np.empty(len(y), dtype=np.float64)
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        position[rows] = (np.arange(len(rows)) + rng.random()) / len(rows)
    return np.argsort(position, kind="stable")


def _loss(metrics: dict[str, Any]) -> Any:
    return metrics.get("loss", metrics.get("log_loss"))


def training_size_curve(
    fit: Callable[[np.ndarray, np.ndarray], Any],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    metrics: Callable[[np.ndarray, np.ndarray], dict[str, Any]],
    full: Any | None = None,
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rows ``{"train_images", "train_loss", "val_loss", "train_<metric>", "val_<metric>", "seconds"}``.

    ``fit(x, y)`` returns a fitted probe with ``predict_proba``; ``full``, when given, is the run's own fit
    on all rows (reused instead of refitting). ``metrics(y, outputs)`` is the run's metric function.
    Returns an empty list when the training set is too small to subsample or a refit fails.
    """
    order = _nested_order(np.asarray(y_train), seed)
    n_classes = len(np.unique(y_train)) if np.asarray(y_train).ndim == 1 else 1
    rows: list[dict[str, Any]] = []
    for fraction in fractions:
        n = len(order) if fraction >= 1 else max(2 * n_classes, round(fraction * len(order)))
        if rows and n <= rows[-1]["train_images"]:
            continue
        subset = order[:n]
        t0 = time.perf_counter()
        try:
            probe = full if full is not None and n == len(order) else fit(x_train[subset], y_train[subset])
            on_train = metrics(y_train[subset], probe.predict_proba(x_train[subset]))
            on_val = metrics(y_val, probe.predict_proba(x_val))
        except ValueError:  # a subset a head cannot fit (one class only): the curve starts later
            continue
        row: dict[str, Any] = {"train_images": int(n), "train_loss": _loss(on_train), "val_loss": _loss(on_val)}
        for name, value in on_val.items():
            scalar = isinstance(value, (int, float)) and not isinstance(value, bool)
            if scalar and name not in ("n", "loss", "log_loss"):
                row[f"train_{name}"], row[f"val_{name}"] = on_train.get(name), value
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return rows
