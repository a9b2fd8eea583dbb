"""``tl stress``: how a trained run's predictions move when the same images are acquired differently.

A model can score well on a validation split that shares the training set's quirks (one device's sharpness,
one site's framing or JPEG quality) and fail on the next site. Re-scoring the validation images under small,
named acquisition changes shows which quirks the model leans on, without touching the test split: a change
that flips many predictions is a cue to add to the augmentation (or to remove from the data) before the
test set is ever looked at.

Every perturbation acts on the model's input view (after the run's resize and crop), so its strength means
the same at any source resolution. Grey levels are handled on the image's own range: ``[0, 255]`` for uint8
images, the image's min-max for other data (bands, windowed scans), which is mapped back afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tlcore import io_atomic
from tlcore.data.perturbations import CHANGES
from tlcore.errors import PluginError
from tlcore.metrics.tasks import task_table
from tlcore.plugins import DEFAULT_PLUGINS, guarded
from tlcore.registry import Entry, Registry
from tlcore.specs import Perturbation

if TYPE_CHECKING:
    from tlcore.predict import SplitInputs

#: A result is flagged when the headline metric falls by this much ...
DROP_WARN = 0.03
#: ... or when this share of predictions changes and some class's recall falls by RECALL_WARN: calls
#: that merely wobble near the decision boundary (no class loses) are noise on a small val split.
CHANGED_WARN = 0.05
RECALL_WARN = 0.05


def select(
    registry: Registry[Perturbation], names: Sequence[str] | None, extra: Sequence[str] = ()
) -> list[Entry[Perturbation]]:
    """The changes named; without names, the core's and ``extra`` (the run's ``stress_perturbations``: a
    plugin's change fits its modality only, so speckle is not run on radiographs unless asked for). The
    core's come in their catalogue order (resolution, compression, noise, exposure, framing), then the rest."""
    if not names:
        names = [e.name for e in registry if e.plugin in DEFAULT_PLUGINS] + list(extra)
    chosen = [registry.entry(n) for n in dict.fromkeys(names)]
    order = list(CHANGES)

    def key(entry: Entry[Perturbation]) -> tuple[int, int, str]:
        own = entry.plugin in DEFAULT_PLUGINS and entry.name in order
        return (0, order.index(entry.name), "") if own else (1, 0, entry.name)

    return sorted(chosen, key=key)


class Perturbed:
    """An albumentations-style transform (``t(image=...)["image"]``): the run's eval view, then a change."""

    def __init__(self, view: Callable[..., dict[str, Any]], entry: Entry[Perturbation]) -> None:
        self.view = view
        self.entry = entry

    def __call__(self, image: np.ndarray) -> dict[str, Any]:
        return {"image": perturb(self.view(image=image)["image"], self.entry)}


def perturb(image: np.ndarray, entry: Entry[Perturbation]) -> np.ndarray:
    """Apply on the image's own grey-level range and return the same dtype and shape.

    A plugin's change that crashes or returns another shape fails with one line naming the plugin."""
    if image.dtype == np.uint8:
        lo, span = 0.0, 255.0
    else:
        lo, hi = float(image.min()), float(image.max())
        span = hi - lo if hi > lo else 1.0
    u = (image.astype(np.float32) - lo) / span
    changed = np.asarray(guarded(f"perturbation {entry.name!r}", entry.plugin, entry.item.apply)(u), dtype=np.float32)
    if changed.shape != u.shape:
        raise PluginError(
            f"perturbation {entry.name!r} from plugin {entry.plugin!r} turned a {u.shape} image into {changed.shape}",
            "a change keeps the image's shape",
        )
    out = np.clip(changed, 0.0, 1.0) * span + lo
    if image.dtype == np.uint8:
        return np.round(out).astype(np.uint8)
    return out.astype(image.dtype)


def _changed(task: str, clean: np.ndarray, moved: np.ndarray) -> float | None:
    """Share of decisions that differ: the top class, or each label's 0.5 cut; none for regression."""
    if task == "classification":
        return float(np.mean(clean.argmax(axis=1) != moved.argmax(axis=1)))
    if task == "multilabel":
        return float(np.mean((clean >= 0.5) != (moved >= 0.5)))
    return None


def _class_recalls(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(row["recall"]) for name, row in metrics.get("per_class", {}).items()}


def summarise(
    task: str,
    clean_metrics: dict[str, Any],
    clean_outputs: np.ndarray,
    results: Sequence[tuple[Entry[Perturbation], dict[str, Any], np.ndarray]],
) -> dict[str, Any]:
    """The machine-readable stress report: per perturbation, the headline metric and its change, the share of
    changed decisions, and (classification) each class's recall and the class whose recall fell most."""
    key = task_table(task).balanced
    kept = task_table(task).summary  # the scores kept, clean and per change
    base = clean_metrics.get(key)
    base_recall = _class_recalls(clean_metrics)
    rows = []
    for entry, metrics, outputs in results:
        value = metrics.get(key)
        drop = float(base - value) if base is not None and value is not None else None
        changed = _changed(task, clean_outputs, outputs)
        row: dict[str, Any] = {
            "name": entry.name,
            "description": entry.item.description,
            "plugin": entry.plugin,
            key: value,
            "drop": drop,
            "changed": changed,
        }
        recalls = _class_recalls(metrics)
        recall_fall = None
        if recalls:
            worst = min(recalls, key=lambda c: recalls[c] - base_recall[c])
            row["worst_class"] = {"class": worst, "recall": recalls[worst], "clean_recall": base_recall[worst]}
            row["recall"] = recalls
            recall_fall = base_recall[worst] - recalls[worst]
        moved = changed is not None and changed >= CHANGED_WARN and (recall_fall is None or recall_fall >= RECALL_WARN)
        row["flagged"] = moved or (drop is not None and drop >= DROP_WARN)
        row["metrics"] = {k: metrics[k] for k in kept if k in metrics}
        rows.append(row)
    return {
        "metric": key,
        "clean": {
            key: base,
            "metrics": {k: clean_metrics[k] for k in ("n", *kept) if k in clean_metrics},
            **({"recall": base_recall} if base_recall else {}),
        },
        "thresholds": {"drop": DROP_WARN, "changed": CHANGED_WARN, "class_recall_fall": RECALL_WARN},
        "perturbations": rows,
        "flagged": [r["name"] for r in rows if r["flagged"]],
    }


def stress_split(
    scoring: SplitInputs, chosen: Sequence[Entry[Perturbation]], split: str, show_progress: bool = True
) -> dict[str, Any]:
    """Score the split's images as they are, then under each change in ``chosen`` (one progress bar over
    all of them, labelled with ``split``); returns :func:`summarise`'s report."""
    from tlcore.runtime import progress

    objective = scoring.predictor.objective
    targets = objective.targets(scoring.records)
    results = []
    with progress(show_progress) as bar:
        task = bar.add_task(f"stress ({len(scoring.records)} {split} images)", total=len(chosen) + 1, info="clean")
        clean = scoring.predict()
        bar.advance(task)
        for entry in chosen:
            bar.update(task, info=entry.name)
            outputs = scoring.predict(view=partial(Perturbed, entry=entry))
            results.append((entry, objective.metrics(targets, outputs), outputs))
            bar.advance(task)
        bar.update(task, info="done")
    return summarise(scoring.predictor.meta.task, objective.metrics(targets, clean), clean, results)


def warning_lines(report: dict[str, Any]) -> list[str]:
    """One line per flagged perturbation, in words a user acts on."""
    lines = []
    key = report["metric"]
    for row in report["perturbations"]:
        if not row["flagged"]:
            continue
        parts = []
        if row["changed"] is not None:
            parts.append(f"changes {row['changed']:.0%} of predictions")
        if row["drop"] is not None:
            parts.append(f"{key.replace('_', ' ')} {report['clean'][key]:.3f} -> {row[key]:.3f}")
        worst = row.get("worst_class")
        if worst and worst["recall"] < worst["clean_recall"]:
            parts.append(f"{worst['class']} recall {worst['clean_recall']:.2f} -> {worst['recall']:.2f}")
        lines.append(
            f"warning: {row['name']} ({row['description']}) {', '.join(parts)}: "
            "the model leans on it; add it to the augmentation or check how the data was collected"
        )
    return lines


def stress_run(
    host: Any,
    run_dir: Path,
    data: str | None = None,
    split: str = "val",
    only: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    show_progress: bool = True,
) -> tuple[dict[str, Any], Path | None]:
    """``tl stress``: ``split`` re-scored under each acquisition change (``only`` these; default the core's
    and the run's ``stress_perturbations``). Writes ``stress-SPLIT.json`` and ``stress-SPLIT.png`` in the
    run folder and returns the report and the plot's path: None, with one warning, without matplotlib
    (the ``reports`` extra)."""
    from tlcore.errors import MissingExtraError
    from tlcore.predict import split_inputs
    from tlcore.reports.plots import plot_stress, require_matplotlib
    from tlcore.runtime import warn

    scoring = split_inputs(host, run_dir, data, split, overrides)
    for line in scoring.warnings:
        warn(line)
    chosen = select(host.perturbations, list(only) if only else None, scoring.config.stress_perturbations)
    report = stress_split(scoring, chosen, split, show_progress=show_progress)
    report = {"run": str(run_dir), "data": scoring.prepared.summary(), "split": split, **report}
    io_atomic.write_text(run_dir / f"stress-{split}.json", json.dumps(report, indent=2))
    try:
        require_matplotlib("drawing the stress plot")
    except MissingExtraError as exc:
        warn(f"stress-{split}.png skipped: {exc}")
        (run_dir / f"stress-{split}.png").unlink(missing_ok=True)  # an earlier one would not match this json
        return report, None
    return report, plot_stress(report, run_dir / f"stress-{split}.png")
