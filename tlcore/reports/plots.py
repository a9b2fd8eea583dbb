"""PNG plots of a run, written next to ``report.json``.

Figures are drawn on :class:`matplotlib.figure.Figure` objects (the Agg canvas, no pyplot), so
plotting never touches a global backend or opens a window, and works on headless machines and in threads.
matplotlib comes with the ``reports`` extra and is imported only when a plot is drawn: this module's names
(:data:`PLOTS`, :func:`reliability_of`) work without it, and :func:`write_plots` raises
:class:`~tlcore.errors.MissingExtraError` up front when it is missing.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tlcore.extras import require
from tlcore.metrics.tasks import task_table
from tlcore.reports.calibration import Reliability, classification_reliability, multilabel_reliability
from tlcore.reports.predictions import SplitPredictions

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
#: The monitor each task falls back to when the run's own has no column in the history.
METRIC_NAMES = {"auc": "AUC", "map": "mAP", "r2": "R²", "rmse": "RMSE", "mae": "MAE", "macro_f1": "Macro F1"}


@dataclass(frozen=True)
class Plot:
    file: str
    title: str
    caption: str


#: Every plot a run can have, in report order (a run has those that apply to its task and head).
PLOTS: dict[str, Plot] = {
    "learning_curves": Plot(
        "learning_curves.png",
        "Learning curves",
        "Loss and the monitored metric on train and val, per epoch; for heads without epochs (scikit-learn), "
        "per training-set size, the head refitted on nested subsets. A val loss that rises while the train "
        "loss keeps falling, or a wide train-val gap, is overfitting. An epoch's train loss includes label "
        "smoothing / mixup when used.",
    ),
    "confusion_matrix": Plot(
        "confusion_matrix.png",
        "Confusion matrix (test)",
        "Rows: true class; columns: predicted class. Each cell shows the count and the share of its row.",
    ),
    "roc": Plot(
        "roc.png",
        "ROC curves (test)",
        "One-vs-rest per class (two classes: the positive class). The dashed diagonal is chance.",
    ),
    "precision_recall": Plot(
        "precision_recall.png",
        "Precision-recall curves (test)",
        "One-vs-rest per class, with average precision (AP); a dotted line marks each class's prevalence.",
    ),
    "calibration": Plot(
        "calibration.png",
        "Calibration (test)",
        "Reliability diagram: blue bars, how often the predictions in each confidence bin were right; red "
        "ticks, their mean confidence; n, how many predictions the bin holds (also the histogram below). On "
        "the diagonal, confidence equals accuracy. ECE, the expected calibration error, is the mean gap "
        "between bar and tick, weighted by n. Bins holding one or two predictions say little.",
    ),
    "predicted_vs_true": Plot(
        "predicted_vs_true.png",
        "Predicted vs true (test)",
        "Each dot is one test sample; on the diagonal the prediction equals the target.",
    ),
}


def require_matplotlib(feature: str = "drawing the run's plots") -> None:
    """The one-line :class:`~tlcore.errors.MissingExtraError` naming the ``reports`` extra when matplotlib is
    missing; call it before drawing several plots, so that a missing package is one message, not one per plot."""
    require("matplotlib", "reports", feature)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def _save(fig: Figure, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=DPI, format="png")
    tmp.replace(path)
    return path


# -- learning curves ---------------------------------------------------------------------------


def read_history(run_dir: Path, report: dict[str, Any]) -> tuple[list[dict[str, float]], str]:
    """The rows of the learning curve and their x column: per epoch (``metrics.csv`` of a fine-tuning run,
    or a torch head's history), else per training-set size (a scikit-learn head's ``head_size_curve``)."""
    rows: list[dict[str, Any]]
    x = "epoch"
    training = report.get("training") or {}
    metrics_csv = run_dir / "metrics.csv"
    if report.get("technique") == "fine-tuning" and metrics_csv.is_file():
        with metrics_csv.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    elif training.get("head_history"):
        rows = list(training["head_history"])
    else:
        rows, x = list(training.get("head_size_curve") or []), "train_images"

    def number(value: Any) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan

    return [{k: number(v) for k, v in row.items()} for row in rows], x


def monitored_metric(report: dict[str, Any], history: Sequence[dict[str, float]]) -> str | None:
    """The val metric to plot: the run's monitor when the history has it, else the task's default."""
    task = (report.get("data") or {}).get("task", "classification")
    config_monitor = (report.get("config") or {}).get("monitor")
    objective = report.get("task")  # the run's objective: {"task", "loss", "monitor", ...}
    objective_monitor = objective.get("monitor") if isinstance(objective, dict) else None
    for name in (objective_monitor, config_monitor, task_table(task).headline, "accuracy"):
        column = f"val_{name}"
        if name and name != "loss" and any(not math.isnan(row.get(column, math.nan)) for row in history):
            return str(name)
    return None


def plot_learning_curves(
    history: Sequence[dict[str, float]], x: str, metric: str | None, best_epoch: int | None, path: Path
) -> Path | None:
    """Loss and the monitored metric, train and val, against epochs or training-set size (``x``)."""
    if not history:
        return None
    xs = [row.get(x, i + 1) for i, row in enumerate(history)]
    xlabel = "epoch" if x == "epoch" else "training images (head refitted on a subset)"
    fig = _figure(10, 3.8)
    loss_ax, metric_ax = fig.subplots(1, 2)

    def curve(ax: Axes, column: str, label: str, style: str, colour: str) -> None:
        values = [row.get(column, math.nan) for row in history]
        if any(not math.isnan(v) for v in values):
            ax.plot(xs, values, style, markersize=3, label=label, color=colour)

    curve(loss_ax, "train_loss", "train", "-o", "tab:blue")
    curve(loss_ax, "val_loss", "val", "-s", "tab:orange")
    loss_ax.set(xlabel=xlabel, ylabel="loss", title="Loss")
    if metric:
        curve(metric_ax, f"train_{metric}", f"train {metric}", "-o", "tab:blue")
        curve(metric_ax, f"val_{metric}", f"val {metric}", "-s", "tab:orange")
        name = METRIC_NAMES.get(metric, metric.replace("_", " ").capitalize())
        metric_ax.set(xlabel=xlabel, ylabel=name, title=name)
    else:
        metric_ax.set_axis_off()
    for ax in (loss_ax, metric_ax):
        if not ax.has_data():
            continue
        if best_epoch and x == "epoch":
            ax.axvline(best_epoch, color="0.5", linestyle="--", linewidth=1, label=f"kept: epoch {best_epoch}")
        if x != "epoch":
            ax.set_xscale("log")
            ax.set_xticks(xs, [f"{v:.0f}" for v in xs])
            ax.minorticks_off()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


# -- classification ----------------------------------------------------------------------------


def plot_confusion_matrix(matrix: np.ndarray, classes: Sequence[str], path: Path) -> Path:
    from sklearn.metrics import ConfusionMatrixDisplay

    k = len(classes)
    size = min(3.5 + 0.6 * k, 14)
    fig = _figure(size + 1, size)
    ax = fig.subplots()
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=np.float64), where=rows > 0)
    display = ConfusionMatrixDisplay(share, display_labels=list(classes))
    display.plot(ax=ax, cmap="Blues", colorbar=True, include_values=False, xticks_rotation=45 if k > 4 else 0)
    display.im_.set_clim(0, 1)
    if k <= 25:
        for i in range(k):
            for j in range(k):
                colour = "white" if share[i, j] > 0.5 else "black"
                text = f"{int(matrix[i, j])}\n{share[i, j]:.0%}"
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=9 if k <= 8 else 6)
    ax.set_title(f"test, n={int(matrix.sum())} (colour: share of the true class)")
    return _save(fig, path)


def _binary_columns(preds: SplitPredictions, report: dict[str, Any]) -> list[int]:
    """Which one-vs-rest curves to draw: every class, or only the positive class of a two-class run."""
    if preds.task == "classification" and len(preds.classes) == 2:
        positive = ((report.get("operating_point") or {}).get("positive_class")) or preds.classes[1]
        return [preds.classes.index(positive)] if positive in preds.classes else [1]
    return list(range(len(preds.classes)))


def _truth(preds: SplitPredictions, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary truth and scores for class/label ``j`` (unknown multilabel entries left out)."""
    if preds.task == "classification":
        return (preds.targets == j).astype(int), preds.outputs[:, j]
    known = ~np.isnan(preds.targets[:, j])
    return (preds.targets[known, j] == 1).astype(int), preds.outputs[known, j]


def _curves(
    preds: SplitPredictions,
    report: dict[str, Any],
    path: Path,
    draw: Callable[[Axes, np.ndarray, np.ndarray, str], bool],
    setup: Callable[[Axes], None],
) -> Path | None:
    fig = _figure(6.2, 5.2)
    ax = fig.subplots()
    drawn = 0
    for j in _binary_columns(preds, report):
        y, score = _truth(preds, j)
        if 0 < y.sum() < len(y) and draw(ax, y, score, preds.classes[j]):
            drawn += 1
    if not drawn:
        return None  # every class is absent or alone in the test split: the curves are undefined
    setup(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right" if len(preds.classes) <= 12 else "best")
    return _save(fig, path)


def plot_roc(preds: SplitPredictions, report: dict[str, Any], path: Path) -> Path | None:
    from sklearn.metrics import roc_auc_score, roc_curve

    def draw(ax: Axes, y: np.ndarray, score: np.ndarray, name: str) -> bool:
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, score):.3f})")
        return True

    def setup(ax: Axes) -> None:
        ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1)
        ax.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (sensitivity)")
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), title=f"ROC, test (n={len(preds)})")

    return _curves(preds, report, path, draw, setup)


def plot_precision_recall(preds: SplitPredictions, report: dict[str, Any], path: Path) -> Path | None:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    def draw(ax: Axes, y: np.ndarray, score: np.ndarray, name: str) -> bool:
        precision, recall, _ = precision_recall_curve(y, score)
        (line,) = ax.step(recall, precision, where="post", label=f"{name} (AP {average_precision_score(y, score):.3f})")
        ax.axhline(y.mean(), color=line.get_color(), linestyle=":", linewidth=1)
        return True

    def setup(ax: Axes) -> None:
        ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", xlim=(-0.01, 1.01), ylim=(-0.01, 1.05))
        ax.set_title(f"Precision-recall, test (n={len(preds)})")

    return _curves(preds, report, path, draw, setup)


def reliability_of(preds: SplitPredictions, bins: int = 10) -> Reliability:
    if preds.task == "multilabel":
        return multilabel_reliability(preds.targets, preds.outputs, bins)
    return classification_reliability(preds.targets, preds.outputs, bins)


def plot_calibration(preds: SplitPredictions, path: Path, bins: int = 10) -> Path | None:
    rel = reliability_of(preds, bins)
    if rel.counts.sum() == 0:
        return None
    multilabel = preds.task == "multilabel"
    fig = _figure(6.2, 6.2)
    diagram, histogram = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    centres = (rel.edges[:-1] + rel.edges[1:]) / 2
    width = rel.edges[1] - rel.edges[0]
    filled = rel.counts > 0
    x, observed, expected = centres[filled], rel.accuracy[filled], rel.confidence[filled]
    diagram.bar(x, observed, width=width * 0.9, color="tab:blue", alpha=0.75, label="observed")
    # The mean confidence of each bin as a red tick: the vertical distance to the bar top is the gap.
    diagram.hlines(
        expected,
        x - width * 0.45,
        x + width * 0.45,
        colors="tab:red",
        linewidth=2.5,
        label=f"mean {'probability' if multilabel else 'confidence'}",
    )
    diagram.vlines(x, observed, expected, colors="tab:red", linewidth=1, linestyles=":")
    for xi, top, n in zip(x, np.maximum(observed, expected), rel.counts[filled], strict=True):
        diagram.text(xi, top + 0.015, f"n={n}", ha="center", va="bottom", fontsize=7, color="0.25")
    diagram.plot([0, 1], [0, 1], "--", color="0.4", linewidth=1, label="perfect calibration")
    what = "label present" if preds.task == "multilabel" else "accuracy"
    diagram.set(ylabel=f"observed ({what})", xlim=(0, 1), ylim=(0, 1.08), yticks=np.linspace(0, 1, 6))
    counted = f"{int(rel.counts.sum())} known labels of {len(preds)} images" if multilabel else f"n={len(preds)}"
    diagram.set_title(f"Reliability, test ({counted}): ECE {rel.ece:.3f}")
    diagram.legend(fontsize=8, loc="upper left")
    diagram.grid(alpha=0.3)
    histogram.bar(centres, rel.counts, width=width * 0.9, color="0.5")
    xlabel = "predicted probability" if preds.task == "multilabel" else "confidence (top-class probability)"
    histogram.set(xlabel=xlabel, ylabel="predictions")
    return _save(fig, path)


# -- regression --------------------------------------------------------------------------------


def plot_predicted_vs_true(test: SplitPredictions, val: SplitPredictions | None, path: Path) -> Path | None:
    from sklearn.metrics import mean_absolute_error, r2_score

    k = len(test.classes)
    columns = min(k, 3)
    rows = math.ceil(k / columns)
    fig = _figure(4.6 * columns, 4.4 * rows)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    drawn = 0
    for j, name in enumerate(test.classes):
        ax = axes[j]
        for split, alpha, marker in ((val, 0.35, "x"), (test, 0.8, "o")):
            if split is None:
                continue
            known = ~np.isnan(split.targets[:, j])
            ax.scatter(
                split.targets[known, j], split.outputs[known, j], s=14, alpha=alpha, marker=marker,
                label="val" if split is val else "test",
            )  # fmt: skip
        known = ~np.isnan(test.targets[:, j])
        y, p = test.targets[known, j], test.outputs[known, j]
        if not len(y):
            ax.set_axis_off()
            continue
        drawn += 1
        lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        pad = (hi - lo) * 0.05 or 1.0
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "--", color="0.4", linewidth=1)
        r2 = f"R² {r2_score(y, p):.3f}, " if len(y) > 1 and np.ptp(y) > 0 else ""
        ax.set_title(f"{name}: {r2}MAE {mean_absolute_error(y, p):.3g} (test n={len(y)})", fontsize=10)
        ax.set(xlabel=f"true {name}", ylabel=f"predicted {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[k:]:
        ax.set_axis_off()
    return _save(fig, path) if drawn else None


# -- stress test -------------------------------------------------------------------------------


def plot_stress(report: dict[str, Any], path: Path) -> Path:
    """One horizontal bar per change (the headline metric under it), the clean score as a line; flagged red."""
    key = report["metric"]
    rows = [r for r in report["perturbations"] if r[key] is not None]
    fig = _figure(6.5, 0.32 * len(rows) + 1.4)
    ax = fig.add_subplot()
    names = [r["name"] for r in rows][::-1]
    values = [r[key] for r in rows][::-1]
    colours = ["#c0392b" if r["flagged"] else "#2e86c1" for r in rows][::-1]
    ax.barh(names, values, color=colours)
    base = report["clean"][key]
    if base is not None:
        ax.axvline(base, color="black", linestyle="--", linewidth=1, label=f"clean {base:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    shown = [*values, *([base] if base is not None else [])]
    low, high = min(shown) - 0.05, min(1.0, max(shown) + 0.02)
    # balanced accuracy and AUC live in [0, 1]; R² falls below 0 when a change ruins the fit
    ax.set_xlim(low if key == "r2" else max(0.0, low), high)
    ax.set_xlabel(f"{key.replace('_', ' ')} on the {report['split']} split (red: flagged)")
    ax.set_title("Stress test: the same images acquired differently", fontsize=10)
    return _save(fig, path)


# -- all of them -------------------------------------------------------------------------------


def write_plots(
    run_dir: Path, report: dict[str, Any], predictions: dict[str, SplitPredictions]
) -> tuple[list[Path], list[str]]:
    """Every plot that applies to the run. Returns the files written and one warning per plot that failed:
    a plot is never worth failing a run for. Without matplotlib (the ``reports`` extra), one
    :class:`~tlcore.errors.MissingExtraError` before anything is drawn."""
    require_matplotlib()
    task = (report.get("data") or {}).get("task", "classification")
    test, val = predictions.get("test"), predictions.get("val")
    jobs: dict[str, Callable[[Path], Path | None]] = {}
    history, x = read_history(run_dir, report)
    best = (report.get("training") or {}).get("best_epoch")
    metric = monitored_metric(report, history)
    jobs["learning_curves"] = lambda p: plot_learning_curves(history, x, metric, best, p)
    if test is not None and len(test):
        if task == "classification":
            matrix = (report.get("test") or {}).get("confusion_matrix")
            if matrix is not None:
                jobs["confusion_matrix"] = lambda p: plot_confusion_matrix(np.asarray(matrix), test.classes, p)
        if task in ("classification", "multilabel"):
            jobs["roc"] = lambda p: plot_roc(test, report, p)
            jobs["precision_recall"] = lambda p: plot_precision_recall(test, report, p)
            jobs["calibration"] = lambda p: plot_calibration(test, p)
        if task == "regression":
            jobs["predicted_vs_true"] = lambda p: plot_predicted_vs_true(test, val, p)
    written, warnings = [], []
    for name, job in jobs.items():
        target = run_dir / PLOTS[name].file
        try:
            path = job(target)
        except Exception as exc:  # a broken plot must not cost the user a finished run
            warnings.append(f"plot {name} failed: {type(exc).__name__}: {exc}")
            continue
        if path is not None:
            written.append(path)
        elif target.exists():
            target.unlink()  # a stale plot from an earlier run in the same directory
    return written, warnings
