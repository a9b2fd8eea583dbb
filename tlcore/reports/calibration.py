"""Calibration: does a predicted 0.9 come true nine times in ten?

The expected calibration error (ECE, Guo et al. 2017) bins predictions by confidence into equal-width
bins and averages ``|accuracy - mean confidence|`` over the bins, weighted by how many predictions
each bin holds. For single-label classification the confidence is the top class's probability and a
prediction is right when that class is the true one; for multilabel every known (sample, label)
probability is a binary prediction of "present".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reliability:
    """Per bin: its edges, the number of predictions, their mean confidence and how often they were right."""

    edges: np.ndarray  # (bins + 1,)
    counts: np.ndarray  # (bins,)
    confidence: np.ndarray  # (bins,), NaN for empty bins
    accuracy: np.ndarray  # (bins,), NaN for empty bins

    @property
    def ece(self) -> float:
        total = self.counts.sum()
        if total == 0:
            return float("nan")
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(np.sum(self.counts[filled] / total * gaps))


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> Reliability:
    """Bin ``confidence`` (in [0, 1]) into ``bins`` equal-width bins; ``correct`` is 1 where it came true.

    Bins are closed on the right (``(0.9, 1.0]``), so a confidence of exactly 1 falls into the last bin
    and 0 into the first.
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    hit = np.asarray(correct, dtype=np.float64).ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=conf, minlength=bins) / counts
        mean_hit = np.bincount(index, weights=hit, minlength=bins) / counts
    return Reliability(edges, counts, mean_conf, mean_hit)


def classification_reliability(targets: np.ndarray, proba: np.ndarray, bins: int = 10) -> Reliability:
    """Top-label calibration of class probabilities ``(n, k)`` against integer ``targets``."""
    pred = proba.argmax(axis=1)
    return reliability(proba.max(axis=1), pred == targets, bins)


def multilabel_reliability(targets: np.ndarray, proba: np.ndarray, bins: int = 10) -> Reliability:
    """Every known (sample, label) probability of "present" against whether the label is present."""
    known = ~np.isnan(targets)
    return reliability(proba[known], targets[known] == 1, bins)
