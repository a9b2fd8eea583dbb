"""``predictions.csv``: every val and test sample with its target, the model's outputs and its decision.

The plots, the HTML report's error gallery and anyone with a spreadsheet read the same file. Columns:

* classification: ``split, path, target, proba_<class>..., prediction`` (target and prediction are class names);
* multilabel: ``split, path, target_<label>... (1, 0 or empty when unknown), proba_<label>..., prediction``
  (the labels at probability >= 0.5, joined with ``;``);
* regression: ``split, path, target_<name>..., pred_<name>...`` in the targets' own units.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tlcore.errors import TlcoreError
from tlcore.metrics.multilabel import THRESHOLD

PREDICTIONS = "predictions.csv"


@dataclass
class SplitPredictions:
    """One split's rows. ``targets``: ``(n,)`` class indices or ``(n, k)`` values (NaN unknown);
    ``outputs``: ``(n, k)`` probabilities, or predictions in the targets' units for regression."""

    task: str
    classes: list[str]
    paths: list[str]
    targets: np.ndarray
    outputs: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def decisions(self) -> np.ndarray:
        """Classification: predicted class index per row; multilabel: ``(n, k)`` 0/1; regression: outputs."""
        if self.task == "classification":
            return self.outputs.argmax(axis=1)
        if self.task == "multilabel":
            return (self.outputs >= THRESHOLD).astype(np.int64)
        return self.outputs


def _as_2d(values: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(len(values), k)


def _cell(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6g}"


def write_predictions(
    path: Path,
    task: str,
    classes: Sequence[str],
    paths: Mapping[str, Sequence[str]],
    targets: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
) -> None:
    """Write one row per sample of every split in ``outputs`` (split order kept)."""
    k = len(classes)
    if task == "classification":
        header = ["split", "path", "target", *(f"proba_{c}" for c in classes), "prediction"]
    elif task == "multilabel":
        header = ["split", "path", *(f"target_{c}" for c in classes), *(f"proba_{c}" for c in classes), "prediction"]
    else:
        header = ["split", "path", *(f"target_{c}" for c in classes), *(f"pred_{c}" for c in classes)]
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for split, out in outputs.items():
            y, p = np.asarray(targets[split]), _as_2d(out, k)
            for i, sample in enumerate(paths[split]):
                if task == "classification":
                    row = [classes[int(y[i])], *(f"{v:.6g}" for v in p[i]), classes[int(p[i].argmax())]]
                elif task == "multilabel":
                    truth = _as_2d(y, k)[i]
                    chosen = ";".join(c for c, v in zip(classes, p[i], strict=True) if v >= THRESHOLD)
                    row = [*(_cell(v) for v in truth), *(f"{v:.6g}" for v in p[i]), chosen]
                else:
                    row = [*(_cell(v) for v in _as_2d(y, k)[i]), *(f"{v:.6g}" for v in p[i])]
                writer.writerow([split, sample, *row])
    tmp.replace(path)


def read_predictions(path: Path, task: str, classes: Sequence[str]) -> dict[str, SplitPredictions]:
    """The rows of ``path`` grouped by split; raises :class:`TlcoreError` when the columns do not fit."""
    if not path.is_file():
        raise TlcoreError(f"{path} is missing", "runs trained before tlcore wrote predictions need `tl train` again")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    k = len(classes)
    output_prefix = "pred_" if task == "regression" else "proba_"
    expected = [f"{output_prefix}{c}" for c in classes]
    if rows and any(col not in rows[0] for col in expected):
        raise TlcoreError(f"{path} does not have the columns {expected}", "it belongs to another run")
    by_split: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_split.setdefault(row["split"], []).append(row)
    out: dict[str, SplitPredictions] = {}
    for split, group in by_split.items():
        outputs = np.array([[float(r[col]) for col in expected] for r in group], dtype=np.float64).reshape(-1, k)
        targets: np.ndarray
        if task == "classification":
            index = {c: i for i, c in enumerate(classes)}
            targets = np.array([index[r["target"]] for r in group], dtype=np.int64)
        else:
            targets = np.array(
                [[float(r[f"target_{c}"]) if r[f"target_{c}"] != "" else np.nan for c in classes] for r in group],
                dtype=np.float64,
            ).reshape(-1, k)
        out[split] = SplitPredictions(task, list(classes), [r["path"] for r in group], targets, outputs)
    return out


@dataclass(frozen=True)
class Mistake:
    """One test sample the model got wrong, and the output Grad-CAM should explain."""

    path: str
    explain_index: int  # the class, label or target whose output the heatmap explains
    truth: str
    predicted: str
    score: float  # how sure the model was of its wrong answer (or how far off, for regression)


def confident_mistakes(preds: SplitPredictions, limit: int) -> list[Mistake]:
    """The ``limit`` most confident errors: wrong classes with the highest probability, multilabel
    decisions furthest from 0.5 on the wrong side, or the largest regression errors."""
    found: list[Mistake] = []
    classes = preds.classes
    if preds.task == "classification":
        pred = preds.decisions()
        for i in np.flatnonzero(pred != preds.targets):
            c, t = int(pred[i]), int(preds.targets[i])
            found.append(Mistake(preds.paths[i], c, classes[t], classes[c], float(preds.outputs[i, c])))
    elif preds.task == "multilabel":
        wrong = (preds.decisions() != preds.targets) & ~np.isnan(preds.targets)
        sureness = np.where(wrong, np.abs(preds.outputs - 0.5) + 0.5, -1.0)
        for i in np.flatnonzero(wrong.any(axis=1)):
            j = int(sureness[i].argmax())
            said = "present" if preds.outputs[i, j] >= THRESHOLD else "absent"
            truth = "present" if preds.targets[i, j] == 1 else "absent"
            found.append(
                Mistake(preds.paths[i], j, f"{classes[j]} {truth}", f"{classes[j]} {said}", float(sureness[i, j]))
            )
    else:
        error = np.abs(preds.outputs - preds.targets)
        for row in range(len(preds)):
            if np.all(np.isnan(error[row])):
                continue
            worst = int(np.nanargmax(error[row]))
            truth, said, off = preds.targets[row, worst], preds.outputs[row, worst], float(error[row, worst])
            found.append(Mistake(preds.paths[row], worst, f"{classes[worst]} {truth:.4g}", f"{said:.4g}", off))
    found.sort(key=lambda m: m.score, reverse=True)
    return found[:limit]
