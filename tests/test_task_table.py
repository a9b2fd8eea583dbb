"""The one per-task table (tlcore.metrics.tasks.TASKS) agrees with the metrics each task computes,
with the settings a user may give, and with every consumer that reads it."""

from __future__ import annotations

import typing

import numpy as np
import pytest

from tlcore.config import RunConfig
from tlcore.metrics.tasks import LOWER_IS_BETTER, TASKS, best_of, monitor_score, resolve_monitor, task_metrics

rng = np.random.default_rng(0)
EXAMPLES = {  # y_true, outputs, classes: small but with every class and label present
    "classification": (np.array([0, 1, 2, 0, 1, 2]), rng.dirichlet(np.ones(3), 6), ["a", "b", "c"]),
    "multilabel": (np.array([[1, 0], [0, 1], [1, 1], [0, 0]]), rng.random((4, 2)), ["x", "y"]),
    "regression": (np.array([[1.0], [2.0], [3.0], [4.0]]), np.array([[1.1], [1.9], [3.2], [3.7]]), ["yield"]),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_name_in_the_table_is_a_metric_the_task_computes(task: str) -> None:
    row = TASKS[task]
    metrics = task_metrics(task, *EXAMPLES[task])
    named = {row.headline, row.balanced, *row.summary, *(m for m in row.monitors if m != "loss")}
    assert named <= set(metrics), f"{task}: {sorted(named - set(metrics))} are not computed"
    assert row.headline in row.summary and row.balanced in row.summary


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_monitor_is_a_setting_and_auto_picks_the_first(task: str) -> None:
    allowed = set(typing.get_args(RunConfig.model_fields["monitor"].annotation))
    assert set(TASKS[task].monitors) <= allowed
    assert resolve_monitor(task, "auto") == (TASKS[task].monitors[0], None)
    other = next(m for m in sorted(allowed - {"auto"}) if m not in TASKS[task].monitors)
    chosen, note = resolve_monitor(task, other)
    assert chosen == TASKS[task].monitors[0] and note and other in note


def test_lower_is_better_metrics_are_negated_for_selection_and_minimised() -> None:
    metrics = {"r2": 0.5, "rmse": 2.0, "loss": 3.0}
    assert monitor_score("regression", metrics, "rmse") == -2.0
    assert monitor_score("regression", metrics, "r2") == 0.5
    assert best_of("rmse")([3.0, 1.0, 2.0]) == 1.0 and best_of("r2")([0.1, 0.9]) == 0.9
    assert {"loss", "log_loss", "rmse", "mae", "ece"} == LOWER_IS_BETTER


def test_the_report_and_the_stress_table_read_the_same_row() -> None:
    from tlcore.reports.html import headline_cards
    from tlcore.reports.stress import summarise

    y, outputs, classes = EXAMPLES["regression"]
    metrics = task_metrics("regression", y, outputs, classes)
    cards = headline_cards({"test": metrics}, "regression", None)
    assert [c["name"] for c in cards] == [name.replace("_", " ") for name in TASKS["regression"].summary]
    stress = summarise("regression", metrics, outputs, [])
    assert stress["metric"] == TASKS["regression"].balanced
