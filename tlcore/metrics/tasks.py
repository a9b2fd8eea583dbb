"""Metrics and model-selection monitors for every task, behind one interface."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tlcore.metrics.classification import classification_metrics, monitor_value
from tlcore.metrics.multilabel import multilabel_metrics
from tlcore.metrics.regression import regression_metrics


@dataclass(frozen=True)
class TaskMetrics:
    """What every consumer of a task's metrics reads: training, the command line, plots, the HTML
    report and ``tl stress``. One table, so they cannot disagree about a task."""

    headline: str  # printed first and plotted when the run's monitor has no curve
    balanced: str  # the headline a majority-class model cannot game: what ``tl stress`` judges a change by
    monitors: tuple[str, ...]  # what ``monitor`` may be for the task; ``auto`` picks the first
    summary: tuple[str, ...]  # the scores printed by ``tl train``/``tl evaluate`` and shown as report cards


TASKS: dict[str, TaskMetrics] = {
    "classification": TaskMetrics(
        headline="accuracy",
        balanced="balanced_accuracy",
        monitors=("accuracy", "balanced_accuracy", "macro_f1", "auc", "loss"),
        summary=("accuracy", "balanced_accuracy", "macro_f1", "auc", "log_loss"),
    ),
    "multilabel": TaskMetrics(
        headline="auc",
        balanced="auc",
        monitors=("auc", "map", "macro_f1", "loss"),
        summary=("auc", "micro_auc", "map", "macro_f1", "subset_accuracy"),
    ),
    "regression": TaskMetrics(
        headline="r2",
        balanced="r2",
        monitors=("r2", "rmse", "loss"),
        summary=("r2", "rmse", "mae"),
    ),
}
#: Metrics where smaller is better, whatever the task.
LOWER_IS_BETTER = frozenset({"loss", "log_loss", "rmse", "mae", "ece"})


def task_table(task: str) -> TaskMetrics:
    """The task's row; a report from a task this version does not know reads as classification."""
    return TASKS.get(task, TASKS["classification"])


def best_of(metric: str) -> Any:
    """``min`` for a metric where smaller is better, else ``max``."""
    return min if metric in LOWER_IS_BETTER else max


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
    options = TASKS[task].monitors
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
