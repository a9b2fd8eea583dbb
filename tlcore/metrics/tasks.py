"""Metrics and model-selection monitors for every task, behind one interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tlcore.metrics.classification import classification_metrics, monitor_value
from tlcore.metrics.multilabel import multilabel_metrics
from tlcore.metrics.regression import regression_metrics

#: Per task: the monitor ``auto`` picks first, then every other monitor that applies.
MONITORS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "balanced_accuracy", "macro_f1", "auc", "loss"),
    "multilabel": ("auc", "map", "macro_f1", "loss"),
    "regression": ("r2", "rmse", "loss"),
}
LOWER_IS_BETTER = frozenset({"loss", "rmse"})


def task_metrics(task: str, y_true: np.ndarray, outputs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Classification: ``outputs`` are class probabilities; multilabel: per-label probabilities;
    regression: predictions in the targets' units."""
    if task == "multilabel":
        return multilabel_metrics(y_true, outputs, classes)
    if task == "regression":
        return regression_metrics(y_true, outputs, classes)
    return classification_metrics(y_true, outputs, classes)


def resolve_monitor(task: str, monitor: str) -> tuple[str, str | None]:
    """The monitor to use and, when the setting was replaced, why.

    ``auto`` becomes the task's default. A monitor that does not apply to the task (a classification
    preset's ``accuracy`` on a regression dataset) also falls back to the default, with a note.
    """
    options = MONITORS[task]
    if monitor == "auto":
        return options[0], None
    if monitor not in options:
        note = f"monitor={monitor} does not apply to {task}: using {options[0]} (options: {', '.join(options)})"
        return options[0], note
    return monitor, None


def monitor_score(task: str, metrics: dict[str, Any], monitor: str) -> float:
    """The value to maximise for model selection (losses and errors are negated).

    An undefined value (AUC with one class present) falls back to the negated loss, so epochs stay comparable.
    """
    if task == "classification":
        return monitor_value(metrics, monitor)
    loss = metrics.get("loss", metrics.get("log_loss"))
    fallback = -float(loss) if loss is not None else -np.inf
    key = "loss" if monitor == "loss" and "loss" in metrics else ("log_loss" if monitor == "loss" else monitor)
    value = metrics.get(key)
    if value is None:
        return fallback
    return -float(value) if monitor in LOWER_IS_BETTER else float(value)
