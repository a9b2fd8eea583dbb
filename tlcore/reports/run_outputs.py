"""What ``tl train`` writes after ``report.json``: ``predictions.csv`` and the PNG plots.

Called at the very end of a run. Nothing here may fail the run: the model and its report are
already on disk, so a problem becomes a warning (``tlcore.runtime.warn``). Without matplotlib (the
``reports`` extra) the plots are skipped with one warning, and ``report.json`` records it under
:data:`SKIPPED_OUTPUTS`.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tlcore.reports.predictions import PREDICTIONS, read_predictions, write_predictions
from tlcore.reports.size_curve import training_size_curve

#: The ``report.json`` key that says which outputs a run skipped and why: ``{"plots": "<the reason>"}``. Present
#: only when something was skipped.
SKIPPED_OUTPUTS = "skipped_outputs"
#: How the one warning of a run that skipped its plots begins.
PLOTS_SKIPPED = "report plots skipped"


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
    Without matplotlib, no plot: one warning, and ``report`` (in memory and in ``report.json``) gets
    :data:`SKIPPED_OUTPUTS`.
    """
    from tlcore.errors import MissingExtraError
    from tlcore.runtime import console, warn

    started = time.perf_counter()
    data = report.get("data") or {}
    task, classes = str(data.get("task", "classification")), list(data.get("classes") or [])
    written: list[Path] = []
    skipped: dict[str, str] = {}
    problems: list[str] = []
    try:
        available = {split: out for split, out in outputs.items() if out is not None}
        write_predictions(run_dir / PREDICTIONS, task, classes, paths, targets, available)
        written.append(run_dir / PREDICTIONS)
        from tlcore.reports.plots import write_plots

        plots, problems = write_plots(run_dir, report, read_predictions(run_dir / PREDICTIONS, task, classes))
        written.extend(plots)
    except MissingExtraError as exc:  # an install without the `reports` extra: no plots, said once
        skipped["plots"] = str(exc)
        warn(f"{PLOTS_SKIPPED}: {exc} (the run itself is complete)")
    except Exception as exc:  # the run itself succeeded; say what is missing and move on
        problems = [f"{type(exc).__name__}: {exc}"]
    for problem in problems:
        warn(f"report plots: {problem} (the run itself is complete)")
    if skipped:
        _record_skipped(run_dir, report, skipped)
    if written:
        plotted = f" and {len(written) - 1} plot(s)" if not skipped else ""
        hint = f"; `tl report {run_dir}` makes an HTML page of them" if not skipped else ""
        console.print(f"wrote {PREDICTIONS}{plotted} in {time.perf_counter() - started:.1f} s{hint}")
    return written


@contextlib.contextmanager
def plot_skips_unsaid() -> Iterator[None]:
    """Inside, a run that skips its plots does not warn (it still records it in its ``report.json``): for the runs
    a command trains on its way, fold members or ``tl compare``'s runs, where the command says it once."""
    from tlcore.errors import TlcoreWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape(PLOTS_SKIPPED), category=TlcoreWarning)
        yield


def _record_skipped(run_dir: Path, report: dict[str, Any], skipped: Mapping[str, str]) -> None:
    """Add ``skipped`` to ``report`` and to the ``report.json`` already on disk (a failure is a warning)."""
    from tlcore import io_atomic
    from tlcore.reports.run_dir import REPORT
    from tlcore.runtime import warn

    report[SKIPPED_OUTPUTS] = dict(skipped)
    path = run_dir / REPORT
    if not path.is_file():
        return
    try:
        on_disk = json.loads(path.read_text(encoding="utf-8"))
        on_disk[SKIPPED_OUTPUTS] = dict(skipped)
        io_atomic.write_text(path, json.dumps(on_disk, indent=2))
    except Exception as exc:  # the run itself is complete; report.json just lacks the note
        warn(f"{REPORT}: could not record the skipped outputs: {type(exc).__name__}: {exc}")


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
