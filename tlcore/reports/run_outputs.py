"""What ``tl train`` writes after ``report.json``: ``predictions.csv`` and the PNG plots.

Called at the very end of a run. Nothing here may fail the run: the model and its report are
already on disk, so a problem becomes a warning (``tlcore.runtime.warn``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tlcore.reports.predictions import PREDICTIONS, read_predictions, write_predictions
from tlcore.reports.size_curve import training_size_curve


def write_run_outputs(
    run_dir: Path,
    report: dict[str, Any],
    paths: Mapping[str, Sequence[str]],
    targets: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray | None],
) -> list[Path]:
    """Write ``predictions.csv`` for every split in ``outputs`` and every plot that applies.

    ``outputs``: class probabilities (classification), label probabilities (multilabel) or predictions
    in the targets' units (regression), as the run evaluated them. Returns the files written.
    """
    from tlcore.runtime import console, warn

    started = time.perf_counter()
    data = report.get("data") or {}
    task, classes = str(data.get("task", "classification")), list(data.get("classes") or [])
    written: list[Path] = []
    try:
        available = {split: out for split, out in outputs.items() if out is not None}
        write_predictions(run_dir / PREDICTIONS, task, classes, paths, targets, available)
        written.append(run_dir / PREDICTIONS)
        from tlcore.reports.plots import write_plots

        plots, warnings = write_plots(run_dir, report, read_predictions(run_dir / PREDICTIONS, task, classes))
        written.extend(plots)
    except Exception as exc:  # the run itself succeeded; say what is missing and move on
        warnings = [f"{type(exc).__name__}: {exc}"]
    for warning in warnings:
        warn(f"report plots: {warning} (the run itself is complete)")
    if written:
        console.print(
            f"wrote {PREDICTIONS} and {len(written) - 1} plot(s) in {time.perf_counter() - started:.1f} s; "
            f"`tl report {run_dir}` makes an HTML page of them"
        )
    return written


def head_size_curve(
    fit: Callable[[np.ndarray, np.ndarray], Any],
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    metrics: Callable[[np.ndarray, np.ndarray], dict[str, Any]],
    full: Any,
    seed: int,
) -> list[dict[str, Any]]:
    """:func:`training_size_curve` for ``report.json``; a failure is a warning and an empty curve."""
    from tlcore.runtime import warn

    try:
        return training_size_curve(fit, *train, *val, metrics, full=full, seed=seed)
    except Exception as exc:  # the learning curve is a nicety; the head is already trained
        warn(f"learning curve over training-set size skipped: {type(exc).__name__}: {exc}")
        return []
